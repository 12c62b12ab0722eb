"""The results store: one ``metrics.json`` per run, written atomically."""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import textwrap
from collections.abc import Iterable, Mapping, Sequence
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from experiments.run_folder import atomic_text_file
from lightning_modules.inference import DEFAULT_SCALES

if TYPE_CHECKING:
    from matplotlib.figure import Figure

PACKAGES = ("torch", "torchvision", "lightning", "torchmetrics", "timm", "segmentation-models-pytorch")


def write_json_atomic(path: str | os.PathLike, payload: Any) -> None:
    """Write ``payload`` as JSON so that ``path`` holds either the old or the new file, never half of one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_text_file(path) as handle:
        json.dump(payload, handle, indent=2, sort_keys=True)


def git_state() -> dict[str, Any]:
    """Commit and dirty flag of the checkout the code runs from (``None`` outside a git checkout)."""
    root = Path(__file__).resolve().parent.parent
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = bool(
            subprocess.run(
                ["git", "status", "--porcelain", "--untracked-files=no"],
                cwd=root,
                capture_output=True,
                text=True,
                check=True,
            ).stdout.strip()
        )
    except (OSError, subprocess.CalledProcessError):
        return {"sha": None, "dirty": None}
    return {"sha": sha, "dirty": dirty}


def cpu_name() -> str:
    """The processor's name as the platform reports it, else the machine type."""
    return platform.processor() or platform.machine() or "CPU"


def environment() -> dict[str, Any]:
    """Package versions and the hardware a number was measured on."""
    versions = {}
    for package in PACKAGES:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"
    return {
        "packages": versions,
        "python": platform.python_version(),
        "hardware": {
            "device": device,
            "cpu": cpu_name(),
            "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
        },
    }


REQUIRED_KEYS = ("experiment", "variant", "profile", "recipe", "metrics", "per_class", "hardware", "timings")


class CorruptRecordError(ValueError):
    """A ``metrics.json`` that is not valid JSON or lacks fields (e.g. written by a killed process)."""


def read_record(path: str | os.PathLike) -> dict[str, Any]:
    """The record in ``path``; raises :class:`CorruptRecordError` naming the file and the problem."""
    path = Path(path)
    try:
        record = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise CorruptRecordError(f"{path} is not valid JSON ({err}); it is corrupt or half-written.") from err
    if not isinstance(record, dict):
        raise CorruptRecordError(f"{path} holds a {type(record).__name__}, not a run record.")
    missing = [key for key in REQUIRED_KEYS if key not in record]
    if missing:
        raise CorruptRecordError(f"{path} lacks the fields {missing}; it is corrupt or from another program.")
    return record


def load_records(runs_dir: str | os.PathLike, experiment: str) -> tuple[list[dict[str, Any]], list[str]]:
    """Every valid record of ``experiment`` under ``runs_dir``, and one message per corrupt file."""
    records, problems = [], []
    for path in sorted(Path(runs_dir, experiment).glob("*/*/metrics.json")):
        try:
            records.append(read_record(path))
        except CorruptRecordError as err:
            problems.append(str(err))
    return records, problems


RUNS_DIR_VARIABLE = "EXPERIMENTS_RUNS_DIR"


def notebook_runs_dir() -> Path:
    """The results store the notebooks read: ``$EXPERIMENTS_RUNS_DIR`` when set, else ``runs/`` at the repository root.

    That is where ``python -m experiments run`` writes when started from the root (its ``--runs-dir runs`` is
    relative to the working directory), whichever folder Jupyter starts a notebook in (its own, ``notebooks/``).
    The root is the checkout this package is imported from (``pip install -e .`` or ``PYTHONPATH``).

    Raises:
        FileNotFoundError: when the package is installed outside a checkout and the variable is not set.
    """
    if os.environ.get(RUNS_DIR_VARIABLE):
        return Path(os.environ[RUNS_DIR_VARIABLE]).expanduser()
    root = Path(__file__).resolve().parents[1]
    if not (root / "setup.cfg").is_file():  # site-packages holds the package but not the repository's files
        raise FileNotFoundError(
            f"experiments is imported from {root}, not from a checkout of the repository, so the notebooks cannot "
            f"find its runs/: set the environment variable {RUNS_DIR_VARIABLE} to the results store."
        )
    return root / "runs"


PROFILE_ORDER = {"smoke": 0, "small": 1, "paper": 2}
# (metric, its label) pairs shown in tables: segmentation runs record mIoU, classification runs top-1.
HEADLINES = {
    "segmentation": (("mIoU", "mIoU"), ("pixel_acc", "pixel acc")),
    "classification": (("top1", "top-1"), ("top5", "top-5")),
}


def headline_metrics(records: list[dict[str, Any]]) -> tuple[tuple[str, str], tuple[str, str]]:
    """The two metrics a table shows: top-1 / top-5 for classification runs, else mIoU / pixel accuracy."""
    classification = any("val/top1" in record["metrics"] for record in records)
    return HEADLINES["classification" if classification else "segmentation"]


def table_metrics(experiment: Any, records: list[dict[str, Any]]) -> tuple[tuple[str, str], tuple[str, str]]:
    """:func:`headline_metrics` of the runs; without any run, those of the paper's numbers (top-1 or mIoU)."""
    if records:
        return headline_metrics(records)
    published = {number.metric for variant in experiment.variants() for number in variant.paper}
    return HEADLINES["classification" if "top1" in published else "segmentation"]


def percent(value: float | None, digits: int = 1) -> str:
    """A score in [0, 1] as the command line prints it, in % with ``digits`` decimals; ``"—"`` for None."""
    return "—" if value is None else f"{100 * value:.{digits}f}"


def per_class_family(metric: str) -> tuple[str, str] | None:
    """``(family, class)`` of a per-class metric name, ``None`` for a scalar one.

    Per-class metrics are ``IoU/<class>`` (as runs log ``val/IoU/<class>``) and ``boundary_F/<threshold>/<class>``
    (``val/boundary_F/<threshold>/<class>``); ``boundary_F/<threshold>`` alone is the mean over classes.
    """
    family, _, name = metric.rpartition("/")
    if family == "IoU" or (family.startswith("boundary_F/") and family.count("/") == 1):
        return family, name
    return None


def describe_paper_numbers(numbers: Sequence[Any]) -> str:
    """``"metric value (source); ..."`` of a row's :class:`~experiments.base.PaperNumber` s, or ``"—"``.

    Per-class numbers (:func:`per_class_family`) are summarised as their count and source per family, so that a
    table cell stays readable; :func:`per_class_table` lists them.
    """
    parts = [f"{n.metric} {n.value} ({n.source})" for n in numbers if per_class_family(n.metric) is None]
    families: dict[str, list[Any]] = {}
    for number in numbers:
        family = per_class_family(number.metric)
        if family is not None:
            families.setdefault(family[0], []).append(number)
    for family, members in families.items():
        sources = "; ".join(dict.fromkeys(n.source for n in members))
        parts.append(f"{family} of {len(members)} classes ({sources})")
    return "; ".join(parts) or "—"


def _cells(values: Iterable[str]) -> str:
    """Table cells appended to a row that ends with ``|``: ``" a | b |"``, or nothing without values."""
    return "".join(f" {value} |" for value in values)


def paper_cell(numbers: Sequence[Any], shown: Sequence[str]) -> str:
    """The main table's paper cell: the numbers of the ``shown`` metrics (:func:`describe_paper_numbers`), and how
    many more the tables below list (:func:`metric_table`, :func:`per_class_table`)."""
    headline = [n for n in numbers if n.metric in shown]
    more = len(numbers) - len(headline)
    cell = describe_paper_numbers(headline) if headline else ""
    if more:
        cell = f"{cell}; {more} more below" if cell else f"{more} numbers below"
    return cell or "—"


def _by_variant(records: Sequence[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    grouped: dict[str, list[dict[str, Any]]] = {}
    for record in records:
        grouped.setdefault(record["variant"], []).append(record)
    return grouped


def _by_profile(records: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    return sorted(records, key=lambda r: PROFILE_ORDER.get(r["profile"], 3))


def per_class_table(variant: Any, records: Sequence[Mapping[str, Any]]) -> str:
    """Markdown: the row's published per-class numbers (%), one table per family (IoU, boundary F at each
    threshold), beside each run's per-class val numbers; ``""`` without any."""
    families: dict[str, dict[str, Any]] = {}
    for number in variant.paper:
        family = per_class_family(number.metric)
        if family is not None:
            families.setdefault(family[0], {})[family[1]] = number
    runs = _by_profile(records)
    tables = []
    for family, paper in families.items():
        sources = "; ".join(dict.fromkeys(n.source for n in paper.values()))
        lines = [
            f"#### {variant.name}: {family} per class (paper: {sources})",
            "",
            "| class | paper |" + _cells(f"measured val ({r['profile']}, {r['run_id']})" for r in runs),
            "|---|---:|" + "---:|" * len(runs),
        ]
        for name, number in paper.items():
            measured = (percent(r.get("per_class", {}).get(f"val/{family}", {}).get(name)) for r in runs)
            lines.append(f"| {name} | {number.value} |" + _cells(measured))
        tables.append("\n".join(lines))
    return "\n\n".join(tables)


def metric_table(variant: Any, records: Sequence[Mapping[str, Any]], shown: Sequence[str]) -> str:
    """Markdown: each published scalar metric of the row (%) that the main table does not show (``shown``), e.g.
    the boundary F at each threshold or the crop-factor mIoU, beside each run's val value; ``""`` without any."""
    numbers = [n for n in variant.paper if per_class_family(n.metric) is None and n.metric not in shown]
    if not numbers:
        return ""
    runs = _by_profile(records)
    lines = [
        f"#### {variant.name}: other published metrics",
        "",
        "| metric | paper | source |" + _cells(f"measured val ({r['profile']}, {r['run_id']})" for r in runs),
        "|---|---:|---|" + "---:|" * len(runs),
    ]
    for number in numbers:
        measured = (percent(r["metrics"].get(f"val/{number.metric}")) for r in runs)
        lines.append(f"| {number.metric} | {number.value} | {number.source} |" + _cells(measured))
    return "\n".join(lines)


TEST_PROTOCOL_NOTE = (
    "Test protocol: the flags `python -m experiments eval` ran with, and the evaluation size `eval-test.json` records "
    "(in a file written before it recorded one, the run's `eval_short_side`; full resolution without one)."
)


def _paper_value(variant: Any, metric: str) -> float | None:
    return next((n.value for n in variant.paper if n.metric == metric), None)


def evaluation_file(runs_dir: Path, record: Mapping[str, Any], name: str) -> Path:
    """The file ``name`` (``eval-test.json``, ``eval-val.npz``) in the folder of the run ``record`` in ``runs_dir``."""
    return runs_dir / record["experiment"] / record["variant"] / record["run_id"] / name


def eval_json_path(record: Mapping[str, Any], runs_dir: Path) -> Path:
    """The ``eval-test.json`` of the run ``record`` in ``runs_dir`` (it may not exist)."""
    return evaluation_file(runs_dir, record, "eval-test.json")


def first_boundary_f(tested: Mapping[str, Any]) -> float | None:
    """The boundary F at the first (smallest) tolerance of an evaluation record, None without one."""
    return next(iter(tested["boundary_F"].values())) if tested.get("boundary_F") else None


def recipe_digest(record: Mapping[str, Any]) -> str:
    """The hash of the run's recipe, the last part of its run id ``<profile>-seed<seed>-<hash>``."""
    return str(record["run_id"]).rsplit("-", 1)[-1]


def read_eval(path: Path) -> dict[str, Any] | None:
    """The evaluation record in ``path``, None when it is missing or not valid JSON."""
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError:
        return None


def describe_protocol(protocol: Mapping[str, Any], eval_short_side: int | None) -> str:
    """A test protocol in words, e.g. ``"flip + 6 scales (0.5–1.75), full resolution"``.

    Args:
        protocol: the ``"protocol"`` of an ``eval-<split>.json`` (:func:`experiments.evaluate.predict_kwargs`):
            ``mode`` ``"single"``, ``"sliding"`` (with ``window``) or ``"multiscale"`` (with ``flip``, optional
            ``scales`` (default :data:`~lightning_modules.inference.DEFAULT_SCALES`), ``window`` and ``combine``).
        eval_short_side: the shorter image side (px) images were resized to, or ``None`` for full resolution.

    Raises:
        ValueError: for another ``mode``.
    """
    mode = protocol.get("mode")
    window = protocol.get("window")
    sliding = f"sliding {window[0]}×{window[1]} window" if window else None
    if mode == "single":
        parts = ["single scale"]
    elif mode == "sliding":
        parts = [sliding]
    elif mode == "multiscale":
        scales = tuple(protocol.get("scales", DEFAULT_SCALES))
        passes = "single scale" if scales == (1.0,) else f"{len(scales)} scales ({min(scales):g}–{max(scales):g})"
        parts = [f"flip + {passes}" if protocol.get("flip") else passes, sliding]
        parts.append(f"{protocol['combine']} combine" if "combine" in protocol else None)
    else:
        raise ValueError(f"protocol mode {mode!r} is unknown; expected 'single', 'sliding' or 'multiscale'.")
    parts.append("full resolution" if eval_short_side is None else f"{eval_short_side} px short side")
    return ", ".join(part for part in parts if part)


def protocol_text(tested: Mapping[str, Any], record: Mapping[str, Any], path: Path) -> str:
    """:func:`describe_protocol` of the evaluation ``tested`` (read from ``path``) of the run ``record``.

    Raises:
        ValueError: naming ``path`` when its protocol is missing or unknown.
    """
    protocol = tested.get("protocol")
    if not isinstance(protocol, Mapping):
        raise ValueError(f"{path} has no 'protocol' object (found {protocol!r}); run `experiments eval` again.")
    try:
        size = tested["eval_short_side"] if "eval_short_side" in tested else record["recipe"].get("eval_short_side")
        return describe_protocol(protocol, size)
    except ValueError as err:
        raise ValueError(f"{path}: {err}") from err


def _listed(value: Any) -> Any:
    return list(value) if isinstance(value, (list, tuple)) else value


def _trained_by(experiment: Any, record: Mapping[str, Any]) -> Any:
    """The variant whose recipe trained the run's network: its own, or the one a rescoring row scores."""
    name = record.get("rescores", {}).get("variant", record.get("variant"))
    return next((variant for variant in experiment.variants() if variant.name == name), None)


def recipe_changes(experiment: Any, record: Mapping[str, Any]) -> str:
    """The settings of a run that differ from its profile's recipe and row (``--set`` overrides), as ``k=v`` text."""
    defaults = experiment.recipes.get(record["profile"], {})
    variant = _trained_by(experiment, record)
    if variant is not None:
        defaults = variant.configure(defaults)
    changed = []
    for key, value in record.get("recipe", {}).items():
        # JSON turns tuples into lists: compare sequences as lists.
        as_list = [_listed(defaults.get(key, value)), _listed(value)]
        if key != "profile" and as_list[0] != as_list[1]:
            changed.append(f"{key}={tuple(value) if isinstance(value, list) else value}")
    return ", ".join(changed) or "—"


def fit_time(record: Mapping[str, Any]) -> str:
    """A run's training time in seconds, or which row trained the network a rescoring row scores."""
    if "rescores" in record:
        return f"none: scores {record['rescores']['variant']}"
    return f"{record['timings']['fit_seconds']:.0f}"


def seed_groups(records: Sequence[Mapping[str, Any]]) -> list[list[Mapping[str, Any]]]:
    """Runs of one variant that differ only in their seed (same profile and recipe: the run id without its seed),
    in the order of their first run."""
    groups: dict[tuple[str, str], list[Mapping[str, Any]]] = {}
    for record in records:
        groups.setdefault((record["profile"], recipe_digest(record)), []).append(record)
    return list(groups.values())


def mean_sd(values: Sequence[float | None]) -> str:
    """``mean ± sd`` of the values (%; sd with n − 1) over the runs that have one, ``n = k`` when some lack it."""
    present = [value for value in values if value is not None]
    if not present:
        return "—"
    cell = f"{100 * statistics.fmean(present):.1f}"
    if len(present) > 1:
        cell += f" ± {100 * statistics.stdev(present):.1f}"
    return cell + (f" (n = {len(present)})" if len(present) != len(values) else "")


def seed_summary(
    variant: Any, paper: str, runs: Sequence[Mapping[str, Any]], shown: Sequence[str], runs_dir: Path, experiment: Any
) -> str:
    """The table line of the mean ± standard deviation over the seeds of ``runs`` (two or more)."""
    tested = [read_eval(eval_json_path(record, runs_dir)) or {} for record in runs]
    boundary = [first_boundary_f(test) for test in tested]
    seeds = ", ".join(str(record["seed"]) for record in runs)
    first = runs[0]
    return (
        f"| {variant.name}, mean ± sd of n = {len(runs)} seeds ({seeds}) | {paper} "
        f"| {mean_sd([record['metrics'].get(f'val/{shown[0]}') for record in runs])} "
        f"| {mean_sd([record['metrics'].get(f'val/{shown[1]}') for record in runs])} "
        f"| {mean_sd([test.get('mIoU') for test in tested])} | {mean_sd([test.get('pixel_acc') for test in tested])} "
        f"| {mean_sd(boundary)} | | {first['profile']} | {recipe_changes(experiment, first)} "
        f"| {first['hardware']['device']} | |"
    )


def paper_table(experiment: Any, records: list[dict[str, Any]], runs_dir: str | os.PathLike) -> str:
    """Markdown: each variant's paper numbers beside every measured run, with its profile and hardware.

    Paper mIoU and measured scores are percentages. A measured number is comparable with the paper
    only in the ``paper`` profile; the profile column says which one produced it, the settings column
    what the run changed in that profile's recipe. Test columns come from ``python -m experiments
    eval`` (``eval-test.json`` in the run folder), the test protocol column from its flags and the run's
    ``eval_short_side``; the boundary F-score is the one at the smallest tolerance (0.00088 of the image diagonal).

    Raises:
        ValueError: naming an ``eval-test.json`` whose protocol is not one ``eval`` writes.
    """
    runs_dir = Path(runs_dir)
    (first, first_label), (second, second_label) = table_metrics(experiment, records)
    if first == "top1":
        return classification_table(experiment, records)
    lines = [
        f"### {experiment.paper}: {experiment.table}",
        "",
        f"| variant | paper | measured val {first_label} | val {second_label} | test mIoU | test pixel acc "
        "| test boundary F | test protocol | profile | settings | hardware | fit time (s) |",
        "|---|---|---:|---:|---:|---:|---:|---|---|---|---|---:|",
    ]
    by_variant = _by_variant(records)
    for variant in experiment.variants():
        paper = paper_cell(variant.paper, (first, second))
        runs = _by_profile(by_variant.get(variant.name, []))
        if not runs:
            lines.append(f"| {variant.name} | {paper} | not run | | | | | | | | | |")
        for group in seed_groups(runs):
            if len(group) > 1:
                lines.append(seed_summary(variant, paper, group, (first, second), runs_dir, experiment))
        for record in runs:
            metrics = record["metrics"]
            path = eval_json_path(record, runs_dir)
            tested = read_eval(path) or {}
            boundary = first_boundary_f(tested)
            protocol = protocol_text(tested, record, path) if tested else "—"
            lines.append(
                f"| {variant.name} | {paper} | {percent(metrics.get(f'val/{first}'))} "
                f"| {percent(metrics.get(f'val/{second}'))} | {percent(tested.get('mIoU'))} "
                f"| {percent(tested.get('pixel_acc'))} | {percent(boundary)} | {protocol} | {record['profile']} "
                f"| {recipe_changes(experiment, record)} | {record['hardware']['device']} "
                f"| {fit_time(record)} |"
            )
    if any(eval_json_path(record, runs_dir).is_file() for record in records):
        lines += ["", TEST_PROTOCOL_NOTE]
    extra = [
        table
        for variant in experiment.variants()
        for table in (
            metric_table(variant, by_variant.get(variant.name, []), (first, second)),
            per_class_table(variant, by_variant.get(variant.name, [])),
        )
        if table
    ]
    return "\n\n".join(["\n".join(lines), *extra, *experiment.extra_tables(records)])


def classification_table(experiment: Any, records: list[dict[str, Any]]) -> str:
    """Markdown: each variant's paper numbers beside every measured run's val and test top-1 / top-5 (%), with its
    profile and hardware; the test scores are those a run records after its last validation (``test``), "—"
    where it records none. The experiment's :meth:`extra_tables` follow."""
    lines = [
        f"### {experiment.paper}: {experiment.table}",
        "",
        "| variant | paper | measured val top-1 | val top-5 | test top-1 | test top-5 | profile | settings "
        "| hardware | fit time (s) |",
        "|---|---|---:|---:|---:|---:|---|---|---|---:|",
    ]
    by_variant = _by_variant(records)
    for variant in experiment.variants():
        paper = paper_cell(variant.paper, ("top1", "top5"))
        runs = _by_profile(by_variant.get(variant.name, []))
        if not runs:
            lines.append(f"| {variant.name} | {paper} | not run | | | | | | | |")
        for record in runs:
            metrics, test = record["metrics"], record.get("test", {})
            lines.append(
                f"| {variant.name} | {paper} | {percent(metrics.get('val/top1'))} | {percent(metrics.get('val/top5'))} "
                f"| {percent(test.get('top1'))} | {percent(test.get('top5'))} | {record['profile']} "
                f"| {recipe_changes(experiment, record)} | {record['hardware']['device']} | {fit_time(record)} |"
            )
    extra = [metric_table(v, by_variant.get(v.name, []), ("top1", "top5")) for v in experiment.variants()]
    return "\n\n".join(["\n".join(lines), *[t for t in extra if t], *experiment.extra_tables(records)])


def paper_chart(experiment: Any, records: list[dict[str, Any]]) -> Figure | None:
    """A bar chart of the paper's headline metric (mIoU or top-1, %) beside the measured val one, per profile.

    One group of bars per variant: the paper's number, then the val score of each profile's run. The y axis
    runs from 0 to 100 %; the title (wrapped to the figure's width) and the y label name the metric and the
    split, and the legend sits to the right of the axes, off the bars. Returns ``None`` when there is nothing
    to draw: no paper number and no run.
    """
    from matplotlib.figure import Figure

    variants = experiment.variants()
    profiles = sorted({r["profile"] for r in records}, key=lambda p: PROFILE_ORDER.get(p, 3))
    (metric, label), _ = table_metrics(experiment, records)
    series = [("paper", [_paper_value(v, metric) for v in variants])]
    for profile in profiles:
        latest = {r["variant"]: r["metrics"].get(f"val/{metric}") for r in records if r["profile"] == profile}
        values = [None if latest.get(v.name) is None else 100 * latest[v.name] for v in variants]
        series.append((f"measured val ({profile} profile)", values))
    series = [(name, values) for name, values in series if any(value is not None for value in values)]
    if not series:
        return None
    width = 0.8 / len(series)
    figure = Figure(figsize=(min(12, max(6, 0.8 * len(variants) + 3)), 4.5), layout="constrained")
    axes = figure.add_subplot()
    for i, (name, values) in enumerate(series):
        xs = [j + i * width for j, value in enumerate(values) if value is not None]
        bars = axes.bar(xs, [value for value in values if value is not None], width, label=name)
        axes.bar_label(bars, fmt="%.1f", fontsize=7)
    centre = width * (len(series) - 1) / 2  # of each variant's group of bars, from its first bar
    # The axes take about 70 % of the figure's width (the legend the rest); 8-point text is about 0.075 in a character.
    slot = 0.7 * figure.get_figwidth() / len(variants)
    slanted = max(len(v.name) for v in variants) * 0.075 > 0.9 * slot
    axes.set_xticks(
        [j + centre for j in range(len(variants))],
        [v.name for v in variants],
        rotation=30 if slanted else 0,
        ha="right" if slanted else "center",
        fontsize=8,
    )
    axes.set_xlim(centre - 0.5, centre + len(variants) - 0.5)
    axes.set_ylim(0, 100)
    axes.set_ylabel(f"{label} (%), measured on val")
    # About 13 characters of 9-point text per inch of the axes.
    heading = textwrap.fill(f"{experiment.paper}: {experiment.table}", width=int(13 * 0.7 * figure.get_figwidth()))
    has_paper = any(name == "paper" for name, _ in series)
    compared = "the paper's number vs measured on the val split" if has_paper else "measured on the val split"
    axes.set_title(f"{heading}\n{label} (%): {compared}", fontsize=9)
    axes.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0, fontsize=8)
    return figure


def plot_paper_table(experiment: Any, records: list[dict[str, Any]], path: str | os.PathLike) -> Path | None:
    """Write :func:`paper_chart` to ``path`` as a PNG (atomically) and return ``path``; ``None``, writing
    nothing, when there is no paper number and no run to draw."""
    figure = paper_chart(experiment, records)
    if figure is None:
        return None
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.png")
    figure.savefig(tmp, dpi=120)
    os.replace(tmp, path)
    return path
