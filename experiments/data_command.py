"""``python -m experiments data list | download NAME | prepare NAME | verify NAME`` (:mod:`datamodules.store`).

Imports nothing heavy at module level: ``--help`` builds the parser without torch.
"""

from __future__ import annotations

import argparse
import os

from experiments.choices import DATA_ROOT_ENV, DOWNLOAD_DIR_ENV


def add_data_root_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data-root",
        metavar="DIR",
        help=f"the folder holding one folder per dataset (default: ${DATA_ROOT_ENV}, else data in the cache folder, "
        "~/.cache/attention-papers/data or $ATTENTION_PAPERS_CACHE/data); `--set root=DIR` still names one "
        "dataset's folder",
    )


def add_data_parser(commands: argparse._SubParsersAction) -> None:
    data = commands.add_parser("data", help="datasets under the data root: list, download, prepare, verify")
    actions = data.add_subparsers(dest="action", required=True)
    listing = actions.add_parser("list", help="every dataset: present and valid?, size, terms, how to get it")
    add_data_root_option(listing)
    for action, text in (
        (
            "download",
            "fetch the published files (checksums, resume), unpack, prepare and check; for a dataset behind "
            "a login, say what to fetch",
        ),
        (
            "prepare",
            "install from files already downloaded, run the conversions the DataModule needs (idempotent), "
            "check, write MANIFEST.tsv",
        ),
        ("verify", "layout, split counts, every image / label header and every checksum; reports each problem"),
    ):
        sub = actions.add_parser(action, help=text)
        sub.add_argument("name", help="dataset name, see `data list`")
        add_data_root_option(sub)
        if action != "verify":
            sub.add_argument(
                "--download-dir",
                metavar="DIR",
                help=f"where archives are (or go when downloaded); default ${DOWNLOAD_DIR_ENV}, else "
                "~/.cache/attention-papers/downloads",
            )
        sub.add_argument("--no-progress", action="store_true", help="no progress bars")


def apply_data_root(args: argparse.Namespace) -> None:
    """``--data-root`` / ``--download-dir`` into the environment, where every process of the command reads them."""
    if getattr(args, "data_root", None):
        os.environ[DATA_ROOT_ENV] = os.path.abspath(os.path.expanduser(args.data_root))
    if getattr(args, "download_dir", None):
        os.environ[DOWNLOAD_DIR_ENV] = os.path.abspath(os.path.expanduser(args.download_dir))


def human_size(size: int | None) -> str:
    if size is None:
        return "-"
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if size < 1000 or unit == "TB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{size:.1f} TB"


def list_datasets() -> str:
    """``data list``: a markdown table of every dataset under the data root."""
    from datamodules.store.catalog import DATASETS
    from datamodules.store.install import status
    from datamodules.store.root import data_root, data_root_origin

    root = data_root()
    lines = [
        f"data root: {root} ({data_root_origin()})",
        "",
        "| dataset | state | size on disk | how to get it | terms |",
        "|---|---|---:|---|---|",
    ]
    for spec in DATASETS.values():
        state = status(spec, root)
        shown = state.state + (f": {state.detail}" if state.detail else "")
        if spec.manual is None:
            how = f"automatic: `data download {spec.name}` ({', '.join(s.size for s in spec.sources)})"
        else:
            where = spec.sources[0].url if spec.sources else "see `data download " + spec.name + "`"
            how = f"by hand ({where}), then `data prepare {spec.name}`"
        lines.append(f"| {spec.name} | {shown} | {human_size(state.size)} | {how} | {spec.licence} |")
    return "\n".join(lines)


def run_data_command(args: argparse.Namespace) -> int:
    """Carry out ``data <action>``; returns the exit code (1: ``verify`` found problems)."""
    from datamodules.store.install import command, download, get_spec, prepare, verify
    from datamodules.store.root import data_root, download_dir

    if args.action == "list":
        print(list_datasets())
        return 0
    spec = get_spec(args.name)
    progress = not args.no_progress
    if args.action in ("download", "prepare"):
        try:
            (download if args.action == "download" else prepare)(spec, progress=progress)
        except KeyboardInterrupt:
            again = command(args.action, spec, data_root(), download_dir())
            kept = (
                "no dataset folder was installed; a partial download is kept in the download folder"
                if args.action == "download"
                else "conversions done so far are kept"
            )
            print(f"\ninterrupted: {kept}. This continues:\n  {again}", flush=True)
            return 130
    else:
        problems = verify(spec, progress=progress)
        for problem in problems:
            print(f"  {problem}")
        if problems:
            print(f"{spec.name}: {len(problems)} problem(s).")
            return 1
        print(f"{spec.name}: verified.")
    return 0
