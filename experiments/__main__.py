"""Command line: ``python -m experiments list | run NAME | table NAME | eval --ckpt PATH | submit | data ...``."""

from __future__ import annotations

import argparse
import ast
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

# Only the choices at import: `--help` answers without loading torch; each command imports what it runs.
from experiments.choices import COMBINES, PROFILES, WANDB_MODES
from experiments.data_command import add_data_parser, add_data_root_option, apply_data_root, run_data_command
from experiments.run_folder import RunFolderBusyError


def parse_assignment(text: str) -> tuple[str, Any]:
    """``"lr=0.01"`` → ``("lr", 0.01)``; values are Python literals, anything else a string."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(
            f"--set expects key=value, got {text!r}. --set takes every word after it: put the experiment's name "
            "first (run NAME --set key=value ...)."
        )
    try:
        return key, ast.literal_eval(value)
    except (ValueError, SyntaxError):
        return key, value


def add_set_option(parser: argparse.ArgumentParser, help: str) -> None:
    """``--set KEY=VALUE ...`` into ``overrides``: several pairs after one ``--set``, and ``--set`` repeatable."""
    parser.add_argument(
        "--set",
        dest="overrides",
        action="extend",
        nargs="+",
        default=[],
        type=parse_assignment,
        metavar="KEY=VALUE",
        help=help,
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m experiments",
        description="Reproduce the papers' tables: list the experiments, run them, tabulate and evaluate the runs.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("list", help="experiments, their variants and the paper's numbers")
    run = commands.add_parser("run", help="train and validate the variants of an experiment")
    run.add_argument("name", help="experiment name, see `list`")
    run.add_argument("--variant", action="append", help="run only this variant (repeatable)")
    run.add_argument("--profile", default="small", choices=PROFILES, help="budget (default: small)")
    run.add_argument("--runs-dir", default="runs", help="results store (default: ./runs)")
    add_data_root_option(run)
    seeds = run.add_mutually_exclusive_group()
    seeds.add_argument("--seed", type=int, default=0, help="random seed of the run (default: 0; part of its run id)")
    seeds.add_argument(
        "--seeds",
        type=int,
        nargs="+",
        metavar="SEED",
        help="train each variant once per seed, each into its own run folder; `table` shows mean ± sd over them",
    )
    run.add_argument("--devices", default="auto", type=_devices, help="devices per node (Lightning DDP when > 1)")
    run.add_argument("--num-nodes", type=int, default=1, help="nodes (SLURM: one task per device)")
    run.add_argument("--wandb", default="offline", choices=WANDB_MODES, help="Weights & Biases mode (default: offline)")
    add_set_option(run, "override recipe settings, e.g. --set max_epochs=2 lr=0.02 (repeatable)")
    run.add_argument(
        "--restart",
        action="store_true",
        help="train unfinished variants from scratch instead of resuming them: their checkpoint, CSV log and W&B id "
        "are moved aside (<file>.restart-<time>; an unreadable checkpoint last.ckpt.corrupt-<time>). "
        "Finished variants are still skipped",
    )
    run.add_argument(
        "--wait",
        action="store_true",
        help="when another command is running a variant (same run folder), wait for it to end instead of stopping "
        "with an error",
    )
    table = commands.add_parser("table", help="paper vs measured: markdown to stdout and a PNG bar chart")
    table.add_argument("name", help="experiment name, see `list`")
    table.add_argument("--runs-dir", default="runs", help="results store (default: ./runs)")
    table.add_argument(
        "--baseline",
        metavar="ROW",
        help="add the summary table (--summary) with each line's Δ test mIoU vs this row's line of the same settings "
        "and its 95 %% paired-bootstrap interval",
    )
    table.add_argument(
        "--summary",
        action="store_true",
        help="print only one table for a README: a line per row and recipe with n seeds, mean ± sd of the scores, "
        "the Δ of --baseline and the cost columns; shared settings and hardware once above it",
    )
    evaluate = commands.add_parser("eval", help="score a checkpoint: mIoU, pixel accuracy, per-class IoU, boundary F")
    evaluate.add_argument(
        "--ckpt", required=True, help="a checkpoint written by `run` (runs/.../checkpoints/last.ckpt)"
    )
    evaluate.add_argument("--data", help="dataset name (default: the run's own DataModule and its settings)")
    evaluate.add_argument(
        "--root", help="dataset folder (default: the run's, or with another --data its folder under the data root)"
    )
    add_data_root_option(evaluate)
    evaluate.add_argument("--split", default="test", choices=("val", "test"), help="split to score (default: test)")
    evaluate.add_argument("--multi-scale", action="store_true", help="scales 0.5..1.75")
    evaluate.add_argument("--flip", action="store_true", help="average with the horizontally flipped image")
    evaluate.add_argument(
        "--combine",
        default="softmax",
        choices=COMBINES,
        help="how --multi-scale / --flip passes combine: average probabilities (mmsegmentation, default), "
        "average logits, or exp_sum, DANet's official rule (sum over scales of exp(logits + flipped logits))",
    )
    evaluate.add_argument("--sliding", action="store_true", help="sliding window of the training crop size")
    evaluate.add_argument("--window", type=int, nargs=2, metavar=("H", "W"), help="sliding window size")
    evaluate.add_argument(
        "--crop-factors",
        type=int,
        nargs="*",
        default=[],
        metavar="PX",
        help="Gated-SCNN's distance-based evaluation: pixels removed from the top and bottom of the evaluated image "
        "(the sides in proportion), e.g. 0 200 300 400 at Cityscapes' 1024 rows, 0 47 70 94 at 240 rows",
    )
    evaluate.add_argument("--device", help="cpu or cuda (default: cuda when available)")
    add_set_option(evaluate, "change the run's data settings, e.g. --set eval_short_side=None (default: its recipe)")
    submit = commands.add_parser(
        "submit", help="Cityscapes test-server submission of a checkpoint: one label-id PNG per test image"
    )
    submit.add_argument("--ckpt", required=True, help="a checkpoint of a Cityscapes run (runs/.../checkpoints/*.ckpt)")
    submit.add_argument("--out", required=True, help="folder of the PNGs (an interrupted submission resumes)")
    submit.add_argument("--root", help="the Cityscapes folder (default: the run's)")
    add_data_root_option(submit)
    submit.add_argument("--split", default="test", choices=("val", "test"), help="split to predict (default: test)")
    submit.add_argument("--device", help="cpu or cuda (default: cuda when available)")
    compare = commands.add_parser(
        "compare", help="is a difference real? paired bootstrap of two rows' test scores over the images"
    )
    compare.add_argument("name", help="experiment name, see `list`")
    compare.add_argument("row_a", help="variant A")
    compare.add_argument("row_b", help="variant B")
    compare.add_argument("--split", default="test", choices=("val", "test"), help="evaluated split (default: test)")
    compare.add_argument(
        "--metric", default="mIoU", help="mIoU (default), pixel_acc or boundary_F/<threshold>, e.g. boundary_F/0.00375"
    )
    compare.add_argument("--runs-dir", default="runs", help="results store (default: ./runs)")
    compare.add_argument("--profile", choices=PROFILES, help="the runs' profile (needed when a row has several)")
    compare.add_argument("--resamples", type=int, default=2000, help="bootstrap resamples (default: 2000)")
    compare.add_argument("--seed", type=int, default=0, help="seed of the resampling (default: 0)")
    add_data_parser(commands)
    return parser


def _devices(text: str) -> int | str:
    return int(text) if text.lstrip("-").isdigit() else text


def list_experiments() -> None:
    from experiments.base import experiment_names, get_experiment
    from experiments.results import describe_paper_numbers

    for name in experiment_names():
        experiment = get_experiment(name)
        print(f"{name}: {experiment.paper}, {experiment.table} (profiles: {', '.join(experiment.recipes)})")
        if experiment.description:
            print(f"  {experiment.description}")
        for variant in experiment.variants():
            numbers = describe_paper_numbers(variant.paper) if variant.paper else "no paper number"
            notes = [f"{key}={value}" for key, value in variant.settings.items()]
            if variant.rescores is not None:
                notes.append(f"scores the network of {variant.rescores}")
            if variant.starts_from is not None:
                notes.append(f"starts from the weights of {variant.starts_from}")
            print(f"  - {variant.name}: {numbers}" + (f" ({'; '.join(notes)})" if notes else ""))


def format_table(records: Sequence[dict[str, Any]]) -> str:
    """A markdown table of the validation scores of finished runs."""
    from experiments.results import fit_time, headline_metrics, percent

    (first, first_label), (second, second_label) = headline_metrics(list(records))
    lines = [
        f"| experiment | variant | profile | val {first_label} (%) | val {second_label} (%) "
        "| fit time (s) | hardware |",
        "|---|---|---|---:|---:|---:|---|",
    ]
    for record in records:
        metrics = record["metrics"]
        lines.append(
            f"| {record['experiment']} | {record['variant']} | {record['profile']} "
            f"| {percent(metrics.get(f'val/{first}'))} | {percent(metrics.get(f'val/{second}'))} "
            f"| {fit_time(record)} | {record['hardware']['device']} |"
        )
    return "\n".join(lines)


def run(args: argparse.Namespace) -> None:
    from experiments.base import get_experiment
    from experiments.runner import run_variant

    experiment = get_experiment(args.name)
    variants = [experiment.variant(name) for name in args.variant] if args.variant else experiment.variants()
    overrides = dict(args.overrides)
    experiment.recipe(args.profile, overrides)
    records = []
    for seed, variant in ((seed, variant) for seed in (args.seeds or [args.seed]) for variant in variants):
        status, record = run_variant(
            experiment,
            variant,
            args.profile,
            args.runs_dir,
            overrides,
            seed,
            args.wandb,
            args.devices,
            args.num_nodes,
            restart=args.restart,
            wait=args.wait,
        )
        if status == "skipped":
            print(f"{experiment.name} / {variant.name}: finished before ({record['run_id']}), skipped.")
        records.append(record)
    print()
    print(format_table(records))


def table(args: argparse.Namespace) -> None:
    from experiments.base import get_experiment
    from experiments.results import load_records, paper_table, plot_paper_table

    experiment = get_experiment(args.name)
    records, problems = load_records(args.runs_dir, experiment.name)
    for problem in problems:
        print(f"warning: {problem} Left out of the table.", file=sys.stderr)
    if args.baseline is not None:
        experiment.variant(args.baseline)
    if args.summary:
        from experiments.summary import summary_table

        print(summary_table(experiment, records, args.runs_dir, args.baseline))
        return
    print(paper_table(experiment, records, args.runs_dir))
    from experiments.cost import format_cost_table

    cost = format_cost_table(records)
    if cost:
        print(f"\nCost of each run (experiments/cost.py: measured during the run, on its hardware):\n\n{cost}")
    path = plot_paper_table(experiment, records, Path(args.runs_dir) / experiment.name / "table.png")
    print(f"\nchart: {path}" if path else f"\nno chart: {experiment.name} has no run and no paper number to plot yet.")
    for chart in experiment.extra_charts(records, Path(args.runs_dir) / experiment.name):
        print(f"chart: {chart}")
    if args.baseline is not None:
        from experiments.summary import summary_table

        print()
        print(summary_table(experiment, records, args.runs_dir, args.baseline))


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    apply_data_root(args)
    from experiments.tracking import quiet_lightning

    quiet_lightning()
    try:
        if args.command == "list":
            list_experiments()
        elif args.command == "run":
            run(args)
        elif args.command == "table":
            table(args)
        elif args.command == "eval":
            from experiments.evaluate import evaluate_checkpoint, format_evaluation

            record = evaluate_checkpoint(
                args.ckpt,
                args.data,
                args.root,
                args.split,
                args.multi_scale,
                args.flip,
                args.sliding,
                args.window,
                args.crop_factors,
                args.device,
                args.combine,
                overrides=dict(args.overrides),
                announce=lambda line: print(line, flush=True),
            )
            print(format_evaluation(record))
        elif args.command == "compare":
            from experiments.base import get_experiment
            from experiments.compare import compare_rows, format_comparison

            experiment = get_experiment(args.name)
            for row in (args.row_a, args.row_b):
                experiment.variant(row)
            result = compare_rows(
                Path(args.runs_dir),
                experiment.name,
                args.row_a,
                args.row_b,
                args.split,
                args.metric,
                args.resamples,
                args.seed,
                args.profile,
            )
            print(format_comparison(experiment.name, args.row_a, args.row_b, args.split, result))
        elif args.command == "data":
            return run_data_command(args)
        elif args.command == "submit":
            from experiments.submission import write_submission

            counts = write_submission(args.ckpt, args.out, args.root, args.split, args.device)
            print(f"{counts['written']} PNGs written, {counts['skipped']} there before, in {args.out}")
    except (ValueError, FileNotFoundError, RunFolderBusyError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except RuntimeError as err:
        # Imported here, where the command has imported torch already: `--help` stays fast.
        from datamodules.store.fetch import DownloadError
        from datamodules.store.install import DatasetError
        from lightning_modules.pretrained_weights import PretrainedWeightsError

        if not isinstance(err, (PretrainedWeightsError, DatasetError, DownloadError)):
            raise
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
