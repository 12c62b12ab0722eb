"""Plot the JSON files that ``training_step.py --json`` and ``inference.py --json`` write.

One figure with two panels: training images/s per model and variant (bars annotated with the MFU, %), and
inference images/s per model, variant and protocol (annotated with the peak memory, GiB). OOM rows are drawn
as empty bars marked "OOM". The figure's title names the device and the date of the files.

    python benchmarks/plot_benchmarks.py runs/gpu/training_step_*.json runs/gpu/inference.json -o docs/gpu.png
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.axes import Axes


def load(paths: Sequence[Path]) -> dict[str, list[dict[str, Any]]]:
    """Rows of every file, by benchmark (``"training_step"`` / ``"inference"``), with the file's device."""
    rows: dict[str, list[dict[str, Any]]] = {"training_step": [], "inference": []}
    for path in paths:
        try:
            payload = json.loads(Path(path).read_text())
        except (OSError, json.JSONDecodeError) as err:
            raise SystemExit(f"{path}: not a readable benchmark JSON file ({err}).") from err
        benchmark = payload.get("benchmark")
        if benchmark not in rows:
            raise SystemExit(f"{path}: field 'benchmark' is {benchmark!r}, expected 'training_step' or 'inference'.")
        rows[benchmark] += [{**row, "device": payload["device"]} for row in payload["rows"]]
    return rows


def missing(row: dict[str, Any]) -> str:
    """What a row without images/s shows: ``failed`` (a JSON ``error``), else ``OOM``."""
    return "failed" if row["measured"].get("error") else "OOM"


def inference_note(row: dict[str, Any]) -> str:
    """The peak memory of an inference row in GiB (none on a CPU), or why it has no value."""
    if row["images_per_second"] is None:
        return missing(row)
    peak = row["measured"]["peak_mib"]
    return "" if peak is None else f"{peak / 1024:.1f} GiB"


def bars(axes: Axes, labels: list[str], values: list[float | None], notes: list[str], title: str) -> None:
    """Horizontal bars of ``values`` (``None``: not measured, the note says why) with a note at the end of each."""
    positions = range(len(labels))
    axes.barh(positions, [value or 0.0 for value in values], color="tab:blue")
    for y, value, note in zip(positions, values, notes, strict=True):
        axes.annotate(note, (value or 0.0, y), xytext=(3, 0), textcoords="offset points", va="center", fontsize=7)
    axes.set_yticks(list(positions), labels, fontsize=7)
    axes.invert_yaxis()
    axes.set_xlabel("images / s")
    axes.set_title(title, fontsize=9)


def plot(rows: dict[str, list[dict[str, Any]]], output: Path) -> Path:
    """Draw the panels that have rows and save the figure to ``output`` (PNG or PDF by suffix)."""
    panels = [name for name in ("training_step", "inference") if rows[name]]
    if not panels:
        raise SystemExit("no rows to plot: pass training_step.py / inference.py JSON files.")
    heights = [max(2.0, 0.22 * len(rows[name]) + 1.0) for name in panels]
    figure, axes = plt.subplots(len(panels), 1, figsize=(8, sum(heights)), height_ratios=heights, squeeze=False)
    for ax, name in zip(axes[:, 0], panels, strict=True):
        data = rows[name]
        if name == "training_step":
            labels = [f"{row['model']} {row['variant']}" for row in data]
            notes = [f"MFU {100 * row['mfu']:.0f}%" if row["mfu"] is not None else missing(row) for row in data]
            title = "training step (forward, loss, backward, SGD)"
        else:
            labels = [f"{row['model']} {row['variant']} {row['protocol']}" for row in data]
            notes = [inference_note(row) for row in data]
            title = "inference, one full-resolution image (log scale)"
        bars(ax, labels, [row["images_per_second"] for row in data], notes, title)
        if name == "inference":
            ax.set_xscale("log")
    devices = sorted({row["device"] for name in panels for row in rows[name]})
    figure.suptitle(", ".join(devices), fontsize=10)
    figure.tight_layout()
    output.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(output, dpi=150)
    plt.close(figure)
    return output


def main(argv: Sequence[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("files", nargs="+", type=Path, help="JSON files of training_step.py / inference.py")
    parser.add_argument("-o", "--output", type=Path, default=Path("runs/gpu/benchmarks.png"), help="%(default)s")
    args = parser.parse_args(argv)
    path = plot(load(args.files), args.output)
    print(f"wrote {path}")
    return path


if __name__ == "__main__":
    main()
