"""``python -m experiments table NAME --summary``: one table per experiment for a README, from the results store.

One line per row and recipe (the runs of a row that differ only in their seed are one line): the paper's headline
number of the row (mIoU or top-1, with its source), the number of seeds n, the scores (mean ± standard deviation
over the seeds when n > 1, the value alone when n = 1), with ``--baseline ROW`` the test-mIoU difference to that
row with its 95 % paired-bootstrap interval (:mod:`experiments.compare`), and what the runs cost
(:mod:`experiments.cost`). Settings shared by every line (profile, ``--set`` overrides, test protocol, evaluation
size, hardware, kind of memory) are printed once above the table, those that differ as columns, so that each number
still carries the profile and hardware it was measured with.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from experiments.results import (
    _eval_path,
    _eval_record,
    _test_protocol,
    describe_paper_numbers,
    fit_time,
    mean_sd,
    recipe_changes,
    seed_groups,
    table_metrics,
)

Record = Mapping[str, Any]
# Settings of a line: a caption above the table when every line shares them, else a column.
CONTEXT = ("profile", "settings", "test protocol", "evaluation size", "hardware", "memory")
COST = ("params (M)", "GMACs / image", "train img/s", "inference img/s", "peak memory (MiB)", "fit (min)")
TEXT_COLUMNS = ("row", "paper", "seeds", "delta", *CONTEXT)


def hardware_label(record: Record) -> str:
    """What a run trained on, from its ``metrics.json``: ``"4 × NVIDIA H200"``, ``"2-core x86_64 CPU, 1 thread"``."""
    hardware = record["hardware"]
    if hardware["device"] != "cpu":
        world = record.get("world_size", 1)
        return f"{world} × {hardware['device']}" if world > 1 else hardware["device"]
    threads = hardware.get("torch_threads")
    return f"{hardware.get('cpu_count')}-core {hardware.get('cpu')} CPU, {threads} thread{'s' if threads != 1 else ''}"


def _first_boundary(test: Mapping[str, Any]) -> float | None:
    return next(iter(test["boundary_F"].values())) if test.get("boundary_F") else None


def _score_columns(kind: str) -> list[tuple[str, Callable[[Record, Mapping[str, Any]], float | None]]]:
    """(header, value of a run) of the score columns; a value takes the run's record and its ``eval-test.json``."""
    if kind == "top1":
        return [
            ("val top-1", lambda record, test: record["metrics"].get("val/top1")),
            ("test top-1", lambda record, test: record.get("test", {}).get("top1")),
            ("test top-5", lambda record, test: record.get("test", {}).get("top5")),
        ]
    return [
        ("val mIoU", lambda record, test: record["metrics"].get("val/mIoU")),
        ("test mIoU", lambda record, test: test.get("mIoU")),
        ("test pixel acc", lambda record, test: test.get("pixel_acc")),
        ("test boundary F", lambda record, test: _first_boundary(test)),
    ]


def _mean(values: Sequence[float | None]) -> float | None:
    present = [value for value in values if value is not None]
    return statistics.fmean(present) if present else None


def _number(value: float | None, digits: int) -> str:
    return "—" if value is None else f"{value:,.{digits}f}"


def cost_cells(runs: Sequence[Record]) -> list[str]:
    """Parameters (M), GMACs / image, training and inference images/s (mean over the runs), peak memory (MiB, the
    largest) and fit time (min, mean); "—" for runs that recorded no cost."""
    costs = [record.get("run_cost") or {} for record in runs]
    macs = costs[0].get("macs_per_image")
    params = costs[0].get("params")
    fits = [None if "rescores" in record else record["timings"]["fit_seconds"] / 60 for record in runs]
    memory = [cost.get("peak_memory_mib") for cost in costs if cost.get("peak_memory_mib") is not None]
    return [
        _number(None if params is None else params / 1e6, 2),
        _number(None if macs is None else macs / 1e9, 2),
        _number(_mean([cost.get("train_images_per_s") for cost in costs]), 1),
        _number(_mean([cost.get("inference_images_per_s") for cost in costs]), 1),
        _number(max(memory) if memory else None, 0),
        _number(_mean(fits), 0) if any(fit is not None for fit in fits) else fit_time(runs[0]),
    ]


def _delta_cell(runs_dir: Path, experiment: Any, variant: str, baseline: str, profile: str) -> str:
    """Δ test mIoU vs ``baseline`` (points) with its 95 % paired-bootstrap interval on the first seed both rows ran
    with, and the Welch t-interval of the seed means when both have two or more evaluated seeds."""
    from experiments.compare import MissingStatisticsError, compare_rows

    if variant == baseline:
        return "baseline"
    try:
        result = compare_rows(runs_dir, experiment.name, variant, baseline, "test", "mIoU", 2000, 0, profile, 1)
    except MissingStatisticsError:
        return "— (no per-image test statistics: `eval` the runs)"
    except (FileNotFoundError, ValueError) as err:
        return f"— ({str(err).split(':')[0]})"
    run_seed, pair = next(iter(result["pairs"].items()))
    cell = f"{100 * pair.difference:+.2f} [{100 * pair.low:+.2f}, {100 * pair.high:+.2f}] (seed {run_seed})"
    seeds = result["seeds"]
    if seeds is not None:
        cell += f"; seed means {100 * seeds.difference:+.2f} [{100 * seeds.low:+.2f}, {100 * seeds.high:+.2f}]"
    return cell


def summary_table(experiment: Any, records: Sequence[Record], runs_dir: str | Path, baseline: str | None = None) -> str:
    """Markdown: the summary of ``experiment``'s runs in ``runs_dir`` (module docstring); rows without a run are
    left out. Scores are percentages; parameters in millions, multiply-adds in 10^9 per image at the evaluation
    size, throughput in images/s, memory in MiB (CUDA ``max_memory_allocated`` or a CPU's peak resident memory),
    fit time in minutes.

    Raises:
        ValueError: no finished run of ``experiment`` in ``runs_dir``.
    """
    runs_dir = Path(runs_dir)
    if not records:
        raise ValueError(f"no finished run of {experiment.name} under {runs_dir}: nothing to summarise.")
    (first, _), _ = table_metrics(experiment, list(records))
    scores = _score_columns(first)
    by_variant: dict[str, list[Record]] = {}
    for record in records:
        by_variant.setdefault(record["variant"], []).append(record)
    lines: list[dict[str, str]] = []
    for variant in experiment.variants():
        for group in seed_groups(by_variant.get(variant.name, [])):
            tested = [_eval_record(_eval_path(record, runs_dir)) or {} for record in group]
            costs = [record.get("run_cost") or {} for record in group]
            sizes = {"×".join(map(str, cost["eval_size"])) for cost in costs if cost.get("eval_size")}
            line = {
                "row": variant.name,
                "paper": describe_paper_numbers([number for number in variant.paper if number.metric == first]),
                "profile": group[0]["profile"],
                "settings": recipe_changes(experiment, group[0]).replace("—", "none: the profile's recipe"),
                "test protocol": "; ".join(
                    sorted(
                        {
                            _test_protocol(test, record, _eval_path(record, runs_dir))
                            for record, test in zip(group, tested, strict=True)
                            if test
                        }
                    )
                )
                or "—",
                "evaluation size": ", ".join(sorted(sizes)) or "—",
                "hardware": "; ".join(sorted({hardware_label(record) for record in group})),
                "memory": "; ".join(sorted({cost["memory_kind"] for cost in costs if cost.get("memory_kind")})) or "—",
                "n": str(len(group)),
                "seeds": ", ".join(str(record["seed"]) for record in group),
            }
            for header, value in scores:
                line[header] = mean_sd([value(record, test) for record, test in zip(group, tested, strict=True)])
            if baseline is not None:
                line["delta"] = _delta_cell(runs_dir, experiment, variant.name, baseline, group[0]["profile"])
            line.update(zip(COST, cost_cells(group), strict=True))
            lines.append(line)
    # A setting no line has ("—" everywhere) is left out rather than captioned.
    shared = [key for key in CONTEXT if len({line[key] for line in lines}) == 1]
    columns = ["row", "paper", *(key for key in CONTEXT if key not in shared), "n", "seeds", *(h for h, _ in scores)]
    columns += ["delta"] * (baseline is not None) + list(COST)
    titles = {"delta": f"Δ test mIoU vs {baseline} [95 % CI]"}
    caption = [f"- {key}: {lines[0][key]}" for key in shared if lines[0][key] != "—"]
    out = [f"{experiment.name}: {experiment.paper}, {experiment.table}", "", *caption, ""]
    out.append("| " + " | ".join(titles.get(column, column) for column in columns) + " |")
    out.append("|" + "|".join("---" if column in TEXT_COLUMNS else "---:" for column in columns) + "|")
    out += ["| " + " | ".join(line[column] for column in columns) + " |" for line in lines]
    return "\n".join(out)
