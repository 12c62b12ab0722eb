"""TNet-fMoW against EfficientNet-B0 on the whole image, at the same input size (896 px by default): FLOPs per
image, inference images/s and peak memory, both models in one run, with the TNet / EfficientNet-B0 ratios beside
the spec's numbers.

- ``TNet-fMoW``: :func:`~lightning_modules.tnet.tnet_fmow` with ``--locations`` cells per level (default
  ``2 1``: the paper's final 896 px, 3-level model, 4 attended locations). Its extractor, EfficientNet-B0,
  always runs at 224 px: ``1 + k_0 + k_0·k_1 + …`` passes per image (5 by default), plus the location, positional
  and classification heads, the crops and the resizes.
- ``EfficientNet-B0``: :func:`~lightning_modules.tnet.efficientnet_b0_baseline`, one pass over the whole image.

Both are built with random weights (no download: weights do not change the cost) and timed in eval mode under
``torch.no_grad`` on random images in ``[−1, 1]``. For each model:

- **FLOPs per image**: ``torch.utils.flop_counter.FlopCounterMode`` over one fp32 forward pass of one image, in
  GFLOPs = 2 × multiply-adds, the spec's convention (TF profiler). The counter counts convolutions and matrix
  products only, not normalisation, activations, resizes or crops.
- **Speed**: the median time of ``--repeats`` forward passes of a ``--batch`` batch after ``--warmup`` untimed
  ones, CUDA synchronised before each reading of the clock (:func:`benchmarks.common.measure`); ms per image and
  images/s. The paper's protocol (``fMoW/train_bl.py``) is batch 64 on one GPU, the mean over batches 50–500.
- **Peak memory**: on CUDA, ``torch.cuda.max_memory_allocated`` over the timed passes (weights, input batch and
  activations), one model after the other in this process with the peak statistics reset in between. On a CPU
  (Linux) the allocator keeps no peak, so each model is measured in a fresh process (the two run side by side,
  before the timing): the bytes of its weights and of the input batch, plus the growth of the process's peak
  resident memory (``VmHWM``) over a forward pass of the batch, after an untimed one that pages in the library
  code. The fresh processes run with glibc's mmap threshold fixed at 128 KiB (``MALLOC_MMAP_THRESHOLD_``), so
  that every block of that size or more is mapped when allocated and returned when freed: the resident memory
  then follows the live tensors, as CUDA's allocated memory does. (Left to adapt, the threshold lets the C
  library keep freed blocks, and TNet's figure varied from 200 to 290 MiB between runs at 896 px, batch 4.) A
  fresh process also keeps one model's freed memory from hiding the other's.

The spec (TF profiler on the official models, batch 1): EfficientNet-B0 costs 0.786 / 3.14 / 12.56 GFLOPs at
224 / 448 / 896 px, and TNet ``passes × 0.786`` (≈ 3.9 at 896 px with 4 locations, about 3.2× fewer); the paper
says TNet is "up to 2.5x faster" than the baselines at the same resolution.

    python benchmarks/tnet_throughput.py                           # CUDA: batch 64, 896 px, fp32
    python benchmarks/tnet_throughput.py --dtype bf16              # bf16 autocast
    python benchmarks/tnet_throughput.py --device cpu              # CPU: batch 4, 896 px
    python benchmarks/tnet_throughput.py --locations 2 --image-size 448 --json runs/benchmarks/tnet_448.json
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:  # run as `python benchmarks/tnet_throughput.py`: make the packages importable
    sys.path.insert(0, str(REPO_ROOT))

from benchmarks.common import (  # noqa: E402
    PRECISIONS,
    Measurement,
    attempt,
    autocast,
    cell,
    fill_device_defaults,
    float32_matmul,
    measure,
    print_header,
    write_results,
)
from benchmarks.gscnn_step import peak_rss_kib, reset_peak_rss  # noqa: E402
from lightning_modules.tnet import efficientnet_b0_baseline, tnet_fmow  # noqa: E402
from lightning_modules.tnet.network import attended_locations  # noqa: E402

MODELS = ("tnet", "efficientnet_b0")
NUM_CLASSES = 62  # fMoW
EXTRACTOR_SIZE = 224  # TNet-fMoW's base resolution
# The spec's TF-profiler counts (GFLOPs = 2 × multiply-adds, batch 1) of EfficientNet-B0 by input side, and the
# paper's wall-clock claim.
SPEC_EFFICIENTNET_GFLOPS = {224: 0.786, 448: 3.14, 896: 12.56}
PAPER_SPEEDUP = 2.5
MMAP_THRESHOLD = "MALLOC_MMAP_THRESHOLD_"

CUDA_DEFAULTS = {"batch": 64, "repeats": 50, "warmup": 10}
CPU_DEFAULTS = {"batch": 4, "repeats": 3, "warmup": 1}


@dataclass
class Row:
    """One model: its cost per image, the timed batch and its peak memory (MiB, ``None`` when not measured)."""

    model: str
    label: str
    passes: str
    gflops: float
    spec_gflops: float | None
    batch: int
    measured: Measurement
    peak_mib: float | None

    @property
    def ms_per_image(self) -> float | None:
        return None if self.measured.ms is None else self.measured.ms / self.batch

    @property
    def images_per_second(self) -> float | None:
        return None if self.measured.ms is None else 1000 * self.batch / self.measured.ms

    @property
    def spec_difference(self) -> float | None:
        """Percent by which the counted GFLOPs differ from the spec's."""
        return None if self.spec_gflops is None else 100 * (self.gflops / self.spec_gflops - 1)

    def to_dict(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "ms_per_image": self.ms_per_image,
            "images_per_second": self.images_per_second,
            "spec_difference_percent": self.spec_difference,
        }


def _quotient(numerator: float | None, denominator: float | None) -> float | None:
    return None if numerator is None or not denominator else numerator / denominator


@dataclass
class Ratios:
    """TNet / EfficientNet-B0: throughput (the speed-up), FLOPs and peak memory, measured and per the spec."""

    speedup: float | None
    flops: float
    memory: float | None
    spec_flops: float | None

    @classmethod
    def of(cls, tnet: Row, baseline: Row) -> Ratios:
        return cls(
            speedup=_quotient(tnet.images_per_second, baseline.images_per_second),
            flops=tnet.gflops / baseline.gflops,
            memory=_quotient(tnet.peak_mib, baseline.peak_mib),
            spec_flops=_quotient(tnet.spec_gflops, baseline.spec_gflops),
        )


def extractor_passes(locations: Sequence[int]) -> int:
    """EfficientNet-B0 passes per image of TNet: the whole image, then every attended location."""
    return 1 + attended_locations(locations)


def build(args: argparse.Namespace, model: str) -> nn.Module:
    """``model`` with random weights (seed 0) in eval mode on ``args.device``."""
    torch.manual_seed(0)
    if model == "tnet":
        network: nn.Module = tnet_fmow(NUM_CLASSES, locations_per_level=tuple(args.locations))
    elif model == "efficientnet_b0":
        network = efficientnet_b0_baseline(NUM_CLASSES)
    else:
        raise ValueError(f"unknown model {model!r}; expected one of {MODELS}.")
    return network.to(args.device).eval()


def random_images(args: argparse.Namespace, batch: int) -> torch.Tensor:
    """``(batch, 3, S, S)`` uniform in ``[−1, 1]``, the models' input range, the same in every process."""
    generator = torch.Generator().manual_seed(0)
    images = torch.rand(batch, 3, args.image_size, args.image_size, generator=generator) * 2 - 1
    return images.to(args.device)


def forward(network: nn.Module, images: torch.Tensor, dtype: str) -> None:
    with torch.no_grad(), autocast(images.device, dtype):
        network(images)


def count_gflops(args: argparse.Namespace, model: str) -> float:
    """GFLOPs (2 × multiply-adds) of one fp32 forward pass of one image."""
    network = build(args, model)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        network(random_images(args, 1))
    return counter.get_total_flops() / 1e9


def time_model(args: argparse.Namespace, model: str) -> Measurement:
    """Median time of a forward pass of the batch; on CUDA also the peak memory over the timed passes."""
    network = build(args, model)
    images = random_images(args, args.batch)
    return measure(lambda: forward(network, images, args.dtype), torch.device(args.device), args.warmup, args.repeats)


def cpu_peak_mib(args: argparse.Namespace, model: str) -> float:
    """The weights and the input batch (MiB), plus the growth of the peak resident memory over a forward pass
    after an untimed one (Linux); meant for a fresh process (see :func:`measure_cpu_memory`)."""
    network = build(args, model)
    images = random_images(args, args.batch)
    tensors = [*network.parameters(), *network.buffers(), images]
    held = sum(tensor.numel() * tensor.element_size() for tensor in tensors) / 2**20
    forward(network, images, args.dtype)
    reset_peak_rss()
    before = peak_rss_kib()
    forward(network, images, args.dtype)
    return held + (peak_rss_kib() - before) / 1024


def _child(args: argparse.Namespace, model: str, queue: Any) -> None:
    torch.set_num_threads(args.threads)
    queue.put(cpu_peak_mib(args, model))


def measure_cpu_memory(args: argparse.Namespace) -> dict[str, float]:
    """:func:`cpu_peak_mib` of every model, each in a fresh process, the processes side by side."""
    # By its package name, which the fresh process can import however this file was loaded.
    from benchmarks.tnet_throughput import _child

    context = multiprocessing.get_context("spawn")
    jobs = {}
    saved = os.environ.get(MMAP_THRESHOLD)
    os.environ[MMAP_THRESHOLD] = str(128 * 1024)  # read by glibc when the fresh process starts
    try:
        for model in MODELS:
            queue = context.Queue()
            process = context.Process(target=_child, args=(args, model, queue))
            process.start()
            jobs[model] = (process, queue)
    finally:
        if saved is None:
            del os.environ[MMAP_THRESHOLD]
        else:
            os.environ[MMAP_THRESHOLD] = saved
    for process, _ in jobs.values():
        process.join()
    failed = {model: process.exitcode for model, (process, _) in jobs.items() if process.exitcode != 0}
    if failed:
        raise RuntimeError(f"the memory measurement processes failed (exit codes {failed}); see their output.")
    return {model: queue.get(timeout=10) for model, (_, queue) in jobs.items()}


def spec_gflops(args: argparse.Namespace, model: str) -> float | None:
    """The spec's count for ``model`` at ``args.image_size`` (TNet: its passes × EfficientNet-B0 at 224 px)."""
    if model == "tnet":
        return extractor_passes(args.locations) * SPEC_EFFICIENTNET_GFLOPS[EXTRACTOR_SIZE]
    return SPEC_EFFICIENTNET_GFLOPS.get(args.image_size)


def run(args: argparse.Namespace) -> list[Row]:
    """FLOPs, memory (CPU: in fresh processes first) and speed of every model."""
    device = torch.device(args.device)
    gflops = {model: count_gflops(args, model) for model in MODELS}
    memory: dict[str, float] = {}
    if device.type != "cuda":
        print("measuring peak memory, one fresh process per model ...", file=sys.stderr)
        memory = measure_cpu_memory(args)
    passes = extractor_passes(args.locations)
    labels = {
        "tnet": (f"TNet-fMoW, k = {tuple(args.locations)}", f"{passes} × {EXTRACTOR_SIZE} px"),
        "efficientnet_b0": ("EfficientNet-B0", f"1 × {args.image_size} px"),
    }
    rows = []
    for model in MODELS:
        measured = attempt(model, time_model, args, model)
        peak = measured.peak_mib if device.type == "cuda" else memory[model]
        label, extractor = labels[model]
        rows.append(Row(model, label, extractor, gflops[model], spec_gflops(args, model), args.batch, measured, peak))
    return rows


def _spec_cell(row: Row) -> str:
    if row.spec_gflops is None:
        return "n/a"
    return f"≈ {row.spec_gflops:g}" if row.model == "tnet" else f"{row.spec_gflops:g}"


def rows_table(rows: Sequence[Row], image_size: int) -> str:
    lines = [
        "| model | input | extractor passes | GFLOPs / image | spec GFLOPs | vs spec | ms / image | images/s "
        "| peak MiB |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        missing = row.measured.missing
        difference = "n/a" if row.spec_difference is None else f"{row.spec_difference:+.1f} %"
        lines.append(
            f"| {row.label} | {image_size}² | {row.passes} | {row.gflops:.3f} | {_spec_cell(row)} | {difference} "
            f"| {cell(row.ms_per_image, 2, missing)} | {cell(row.images_per_second, 3, missing)} "
            f"| {cell(row.peak_mib, 1, missing if row.peak_mib is None else None)} |"
        )
    return "\n".join(lines)


def ratios_table(ratios: Ratios, tnet: Row, baseline: Row) -> str:
    spec = "not in the spec at this size"
    if ratios.spec_flops is not None:
        spec = f"{ratios.spec_flops:.3f} (spec: {tnet.spec_gflops:g} / {baseline.spec_gflops:g})"
    speedup = "n/a" if ratios.speedup is None else f"{ratios.speedup:.3f}×"
    return "\n".join(
        [
            "| TNet / EfficientNet-B0 | measured | spec / paper |",
            "|---|---:|---|",
            f"| speed-up (images/s) | {speedup} | up to {PAPER_SPEEDUP}× (paper, wall clock, same resolution) |",
            f"| FLOPs | {ratios.flops:.3f} | {spec} |",
            f"| peak memory | {cell(ratios.memory, 3)} | not retrieved |",
        ]
    )


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", help="default: %(default)s")
    parser.add_argument("--batch", type=int, help="images per forward pass (CUDA: 64, the paper's; CPU: 4)")
    parser.add_argument("--repeats", type=int, help="timed passes (CUDA: 50; CPU: 3)")
    parser.add_argument("--warmup", type=int, help="untimed passes first (CUDA: 10; CPU: 1)")
    parser.add_argument("--image-size", type=int, default=896, help="square input side (default: %(default)s)")
    parser.add_argument(
        "--locations", type=int, nargs="+", default=[2, 1], help="TNet's cells per level (default: 2 1)"
    )
    parser.add_argument("--dtype", choices=PRECISIONS, default="fp32", help="bf16: autocast (default fp32)")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(), help="CPU threads (default: torch's)")
    parser.add_argument(
        "--no-cudnn-benchmark",
        dest="cudnn_benchmark",
        action="store_false",
        help="leave torch.backends.cudnn.benchmark off (default: on)",
    )
    parser.add_argument("--json", type=Path, help="also write the settings, rows and ratios to this JSON file")
    args = parser.parse_args(argv)
    fill_device_defaults(args, CUDA_DEFAULTS, CPU_DEFAULTS)
    if args.repeats < 1 or args.warmup < 0 or args.batch < 1 or args.image_size < 32:
        parser.error("--repeats and --batch must be >= 1, --warmup >= 0 and --image-size >= 32.")
    if not all(1 <= k <= 9 for k in args.locations):
        parser.error("--locations: each level attends to 1..9 cells of its 3 × 3 grid.")
    return args


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Measure both models, print the settings and the two tables; return the rows and the ratios."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    float32_matmul(args.dtype)
    torch.backends.cudnn.benchmark = args.cudnn_benchmark
    rows = run(args)
    tnet, baseline = rows
    ratios = Ratios.of(tnet, baseline)
    memory = (
        "peak memory: torch.cuda.max_memory_allocated over the timed passes (weights, input, activations)"
        if device.type == "cuda"
        else "peak memory: weights + input + peak RSS growth over a second forward pass, a fresh process per model"
    )
    settings = (
        f"{args.image_size}² px, batch {args.batch}, {args.dtype}, {NUM_CLASSES} classes, random weights, eval, "
        f"TNet cells per level {tuple(args.locations)}"
    )
    print_header(
        "tnet_throughput.py",
        argv,
        device,
        settings,
        f"median of {args.repeats} forward passes after {args.warmup}; cudnn.benchmark {args.cudnn_benchmark}; "
        "GFLOPs = 2 × multiply-adds of one fp32 image (FlopCounterMode: convolutions and matrix products)",
        memory,
    )
    print(rows_table(rows, args.image_size))
    print()
    print(ratios_table(ratios, tnet, baseline))
    result = {"rows": rows, "ratios": ratios}
    if args.json is not None:
        write_results(
            args.json, "tnet_throughput", argv, device, settings, [row.to_dict() for row in rows], ratios=asdict(ratios)
        )
    return result


if __name__ == "__main__":
    main()
