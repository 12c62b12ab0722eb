"""``python -m experiments table NAME --summary``: one table per experiment for a README, from the results store.

One line per row and recipe (the runs of a row that differ only in their seed are one line): the paper's headline
number of the row (mIoU or top-1; ``table`` without ``--summary`` names its source), the number of seeds n, the
scores (mean ± standard deviation over the seeds when n > 1, the value alone when n = 1), with ``--baseline ROW``
the test-mIoU difference to that row's line of the same settings, with its 95 % paired-bootstrap interval
(:mod:`experiments.compare`), and what the runs cost (:mod:`experiments.cost`). Settings shared by every line
(profile, data, backbone, ``--set`` overrides, precision, test protocol, evaluation size, hardware, kind of memory)
are printed once above the table, those that differ as columns, so that each number still carries the profile and
hardware it was measured with.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from experiments.results import (
    eval_json_path,
    first_boundary_f,
    fit_time,
    mean_sd,
    protocol_text,
    read_eval,
    recipe_changes,
    seed_groups,
    table_metrics,
)

Record = Mapping[str, Any]
# Settings of a line: a caption above the table when every line shares them, else a column.
CONTEXT = (
    "profile",
    "data",
    "backbone",
    "settings",
    "precision",
    "test protocol",
    "boundary F tolerance",
    "evaluation size",
    "hardware",
    "memory",
)
COST = ("params (M)", "GMACs / image", "train img/s", "inference img/s", "peak memory (MiB)", "fit (min)")
TEXT_COLUMNS = ("row", "paper", "seeds", "delta", *CONTEXT)
NOT_RECORDED = "—"


def hardware_label(record: Record) -> str:
    """What a run's costs were measured on: ``"4 × NVIDIA H200"``, ``"2-core x86_64 CPU, 1 thread"``.

    The device is the one the run's ``run_cost`` names (where the fit ran), else the record's first device.
    """
    hardware = record["hardware"]
    cost = record.get("run_cost") or {}
    on_cpu = cost["hardware"].startswith("cpu") if cost.get("hardware") else hardware["device"] == "cpu"
    if on_cpu:
        threads = hardware.get("torch_threads")
        plural = "" if threads == 1 else "s"
        return f"{hardware.get('cpu_count')}-core {hardware.get('cpu')} CPU, {threads} thread{plural}"
    device = cost.get("hardware") or hardware["device"]
    world = record.get("world_size", 1)
    return f"{world} × {device}" if world > 1 else device


ScoreColumn = tuple[str, Callable[[Record, Mapping[str, Any]], "float | None"]]


def _score_columns(kind: str) -> list[ScoreColumn]:
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
        ("test boundary F", lambda record, test: first_boundary_f(test)),
    ]


def _crop_columns(evaluations: Iterable[Mapping[str, Any]]) -> list[ScoreColumn]:
    """A test-mIoU column per distance-based crop factor (px removed from top and bottom) that one of the
    ``evaluations`` (``eval-test.json`` records) measured (``eval --crop-factors``), factor 0 (the whole image, the
    test mIoU column) left out."""
    factors = {factor for test in evaluations for factor in test.get("crop_factor_mIoU", {}) if float(factor) != 0}
    return [
        (
            f"test mIoU, crop {factor} px",
            lambda record, test, factor=factor: test.get("crop_factor_mIoU", {}).get(factor),
        )
        for factor in sorted(factors, key=float)
    ]


def _mean_cell(values: Sequence[float | None], digits: int) -> str:
    """The mean of the values present, ``(n = k)`` when some runs lack one, "—" when all do."""
    present = [value for value in values if value is not None]
    if not present:
        return NOT_RECORDED
    cell = f"{statistics.fmean(present):,.{digits}f}"
    return cell + (f" (n = {len(present)})" if len(present) < len(values) else "")


def cost_cells(runs: Sequence[Record]) -> list[str]:
    """Parameters (M) and GMACs / image (the same for every seed), training and inference images/s (mean over the
    runs), peak memory (MiB, the largest) and fit time (min, mean); "—" where no run recorded one."""
    costs = [record.get("run_cost") or {} for record in runs]
    params = next((cost["params"] / 1e6 for cost in costs if cost.get("params") is not None), None)
    macs = next((cost["macs_per_image"] / 1e9 for cost in costs if cost.get("macs_per_image") is not None), None)
    memory = [cost["peak_memory_mib"] for cost in costs if cost.get("peak_memory_mib") is not None]
    fits = [None if "rescores" in record else record["timings"]["fit_seconds"] / 60 for record in runs]
    return [
        NOT_RECORDED if params is None else f"{params:.2f}",
        NOT_RECORDED if macs is None else f"{macs:.2f}",
        _mean_cell([cost.get("train_images_per_s") for cost in costs], 1),
        _mean_cell([cost.get("inference_images_per_s") for cost in costs], 1),
        f"{max(memory):,.0f}" if memory else NOT_RECORDED,
        _mean_cell(fits, 0) if any(fit is not None for fit in fits) else fit_time(runs[0]),
    ]


@dataclass
class Line:
    """One line of the summary: a row's runs of one recipe, and its cells by column."""

    variant: str
    runs: Sequence[Record]
    settings: str
    cells: dict[str, str]


def _joined(values: Sequence[str]) -> str:
    return "; ".join(sorted(set(values))) or NOT_RECORDED


def _line(
    experiment: Any,
    variant: Any,
    runs: Sequence[Record],
    evaluations: Mapping[Path, Mapping[str, Any]],
    runs_dir: Path,
    headline: str,
    scores: list[ScoreColumn],
) -> Line:
    """The cells of ``variant``'s runs ``runs`` (one recipe, one or more seeds); ``evaluations`` holds each run's
    ``eval-test.json`` record (empty when none) by path, ``headline`` the metric whose paper number the line shows."""
    paths = [eval_json_path(record, runs_dir) for record in runs]
    tested = [evaluations[path] for path in paths]
    costs = [record.get("run_cost") or {} for record in runs]
    evaluated = [(record, test, path) for record, test, path in zip(runs, tested, paths, strict=True) if test]
    settings = recipe_changes(experiment, runs[0])
    cells = {
        "row": variant.name,
        "paper": ", ".join(f"{number.value}" for number in variant.paper if number.metric == headline) or "—",
        "profile": runs[0]["profile"],
        "data": str(runs[0]["recipe"].get("data", NOT_RECORDED)),
        "backbone": str(runs[0]["recipe"].get("backbone", NOT_RECORDED)),
        "settings": "none: the profile's recipe" if settings == "—" else settings,
        "precision": _joined([str(record["precision"]) for record in runs if record.get("precision")]),
        "test protocol": _joined(
            [
                protocol_text(test, record, path)
                + (f", {Path(test['checkpoint']).name}" if "checkpoint" in test else "")
                for record, test, path in evaluated
            ]
        ),
        "boundary F tolerance": _joined(
            [
                f"{next(iter(test['boundary_F']))} of the image diagonal"
                for _, test, _ in evaluated
                if test.get("boundary_F")
            ]
        ),
        "evaluation size": _joined(["×".join(map(str, cost["eval_size"])) for cost in costs if cost.get("eval_size")]),
        "hardware": _joined([hardware_label(record) for record in runs]),
        "memory": _joined([cost["memory_kind"] for cost in costs if cost.get("memory_kind")]),
        "n": str(len(runs)),
        "seeds": ", ".join(str(record["seed"]) for record in runs),
    }
    for header, value in scores:
        cells[header] = mean_sd([value(record, test) for record, test in zip(runs, tested, strict=True)])
    cells.update(zip(COST, cost_cells(runs), strict=True))
    return Line(variant.name, runs, settings, cells)


def delta_cell(line: Line, baseline: Line | None, runs_dir: Path) -> str:
    """Δ test mIoU of ``line`` vs ``baseline`` (the baseline row's line of the same settings) in points, with the
    95 % paired-bootstrap interval on the first seed both ran with, and the Welch t-interval of the seed means when
    both have two or more evaluated seeds; else why there is none."""
    from experiments.compare import MissingStatisticsError, ProtocolMismatchError, compare_runs, evaluation_path

    if baseline is None:
        return "— (no baseline run with these settings)"
    if baseline is line:
        return "baseline"
    seeds_a, seeds_b = (
        {int(r["seed"]): evaluation_path(runs_dir, r, "test") for r in x.runs} for x in (line, baseline)
    )
    try:
        result = compare_runs(seeds_a, seeds_b, (line.variant, baseline.variant), "mIoU", 2000, 0, max_pairs=1)
    except MissingStatisticsError:
        return "— (no per-image test statistics: `eval` the runs)"
    except ProtocolMismatchError:
        return "— (evaluated with another protocol than the baseline)"
    except ValueError:
        return "— (no seed in common with the baseline)"
    run_seed, pair = next(iter(result["pairs"].items()))
    cell = f"{100 * pair.difference:+.2f} [{100 * pair.low:+.2f}, {100 * pair.high:+.2f}] (seed {run_seed})"
    seeds = result["seeds"]
    if seeds is not None:
        cell += f"; seed means {100 * seeds.difference:+.2f} [{100 * seeds.low:+.2f}, {100 * seeds.high:+.2f}]"
    return cell


def summary_table(experiment: Any, records: Sequence[Record], runs_dir: str | Path, baseline: str | None = None) -> str:
    """Markdown: the summary of ``experiment``'s runs in ``runs_dir`` (module docstring); rows without a run are
    left out. Scores are percentages; parameters in millions, multiply-adds in 10^9 per image at the evaluation
    size, throughput in images/s (per device under DDP), memory in MiB (CUDA ``max_memory_allocated`` or a CPU's
    peak resident memory), fit time in minutes.

    Raises:
        ValueError: no finished run of ``experiment`` in ``runs_dir``, or a ``baseline`` for an experiment scored
            by top-1 (the difference is one of test mIoU).
    """
    runs_dir = Path(runs_dir)
    if not records:
        raise ValueError(f"no finished run of {experiment.name} under {runs_dir}: nothing to summarise.")
    (first, _), _ = table_metrics(experiment, list(records))
    if baseline is not None and first != "mIoU":
        raise ValueError(
            f"--baseline compares the test mIoU of segmentation runs; {experiment.name} is scored by {first}."
        )
    evaluations = {path: read_eval(path) or {} for path in (eval_json_path(record, runs_dir) for record in records)}
    scores = _score_columns(first) + _crop_columns(evaluations.values())
    by_variant: dict[str, list[Record]] = {}
    for record in records:
        by_variant.setdefault(record["variant"], []).append(record)
    lines = [
        _line(experiment, variant, group, evaluations, runs_dir, first, scores)
        for variant in experiment.variants()
        for group in seed_groups(by_variant.get(variant.name, []))
    ]
    if baseline is not None:
        for line in lines:
            match = [
                other
                for other in lines
                if other.variant == baseline
                and (other.cells["profile"], other.settings) == (line.cells["profile"], line.settings)
            ]
            line.cells["delta"] = delta_cell(line, match[0] if match else None, runs_dir)
    shared = [key for key in CONTEXT if len({line.cells[key] for line in lines}) == 1]
    columns = ["row", "paper", *(key for key in CONTEXT if key not in shared), "n", "seeds", *(h for h, _ in scores)]
    columns += ["delta"] * (baseline is not None) + list(COST)
    titles = {"delta": f"Δ test mIoU vs {baseline} [95 % CI]"}
    # A setting no line has ("—" everywhere) is left out rather than captioned.
    caption = [f"- {key}: {lines[0].cells[key]}" for key in shared if lines[0].cells[key] != NOT_RECORDED]
    out = [f"{experiment.name}: {experiment.paper}, {experiment.table}", "", *caption, ""]
    out.append("| " + " | ".join(titles.get(column, column) for column in columns) + " |")
    out.append("|" + "|".join("---" if column in TEXT_COLUMNS else "---:" for column in columns) + "|")
    out += ["| " + " | ".join(line.cells[column] for column in columns) + " |" for line in lines]
    return "\n".join(out)
