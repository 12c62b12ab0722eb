"""DANet's position attention: fused (``scaled_dot_product_attention``) vs naive (explicit N × N softmax).

Three measurements, fused and naive in the same run, with the naive / fused ratios of time and peak memory:

1. ``pam_train``: forward + backward of ``PositionAttention(C)`` on ``(B, C, h, w)`` features; the issue's size
   is B = 8, C = 512, 96 × 96 (a 768 × 768 crop at output stride 8, N = 9,216);
2. ``pam_full``: inference (forward, no autograd) on full-resolution Cityscapes, 1024 × 2048 at output stride 8 =
   128 × 256 features, B = 1 (N = 32,768: the naive N × N matrix alone is 4 GiB in fp32). A run out of memory
   is reported as OOM;
3. ``step``: a whole DANet training step (forward, the three cross-entropies, backward, SGD) of the
   ``--backbone`` (ResNet-101) network at ``--crop``: images/s and peak memory.

Peak memory is ``torch.cuda.max_memory_allocated`` over the measured calls (weights and inputs included). On a
CPU the allocator keeps no peak, so memory is "n/a"; and PyTorch's CPU ``scaled_dot_product_attention`` needs
equal query and value widths (here C / 8 vs C), so on a CPU the fused mode takes PyTorch's math path and builds
the N × N matrix too: CPU timings check that the script runs, the comparison is a CUDA one.

    python benchmarks/position_attention.py                       # CUDA: the sizes above; CPU: tiny sizes
    python benchmarks/position_attention.py --dtype bf16          # bf16 autocast
    python benchmarks/position_attention.py --crop 512 --step-batch 4 --only step
"""

from __future__ import annotations

import argparse
import platform
import shlex
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:  # run as `python benchmarks/position_attention.py`: make the packages importable
    sys.path.insert(0, str(REPO_ROOT))

from lightning_modules.blocks.dual_attention import PositionAttention  # noqa: E402
from lightning_modules.danet import DANet  # noqa: E402

BENCHMARKS = ("pam_train", "pam_full", "step")
MODES = ("fused", "naive")
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}

# Settings left unset on the command line: the sizes on CUDA, sizes that run in seconds on a CPU.
CUDA_DEFAULTS = dict(
    batch=8,
    feature_size=(96, 96),
    channels=512,
    full_size=(128, 256),
    crop=768,
    step_batch=2,  # the official 8 images on 4 GPUs
    backbone="resnet101",
    repeats=10,
    warmup=3,
)
CPU_DEFAULTS = dict(
    batch=2,
    feature_size=(16, 16),
    channels=64,
    full_size=(16, 32),
    crop=64,
    step_batch=1,
    backbone="test_resnet",
    repeats=2,
    warmup=1,
)


@dataclass
class Measurement:
    """Median time of one call (ms) and peak memory (MiB, ``None`` on a CPU); both ``None`` after OOM."""

    ms: float | None
    peak_mib: float | None
    oom: bool = False


@dataclass
class Comparison:
    """One row: a benchmark measured fused and naive; ``items`` = images per call (for images/s)."""

    benchmark: str
    shape: str
    items: int
    fused: Measurement
    naive: Measurement

    @property
    def time_ratio(self) -> float | None:
        """naive time / fused time (> 1: fused is faster)."""
        if self.fused.ms is None or self.naive.ms is None:
            return None
        return self.naive.ms / self.fused.ms

    @property
    def memory_ratio(self) -> float | None:
        """naive peak memory / fused peak memory (> 1: fused needs less)."""
        if self.fused.peak_mib is None or self.naive.peak_mib is None:
            return None
        return self.naive.peak_mib / self.fused.peak_mib


def is_oom(err: BaseException) -> bool:
    """CUDA's OutOfMemoryError, or a CPU allocation failure."""
    return isinstance(err, torch.cuda.OutOfMemoryError) or "can't allocate memory" in str(err)


def measure(call: Callable[[], None], device: torch.device, warmup: int, repeats: int) -> Measurement:
    """Median wall time of ``repeats`` calls after ``warmup`` ones, and the peak memory over the timed calls."""
    cuda = device.type == "cuda"

    def synchronize() -> None:
        if cuda:
            torch.cuda.synchronize(device)

    try:
        for _ in range(warmup):
            call()
        synchronize()
        if cuda:
            torch.cuda.reset_peak_memory_stats(device)
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            call()
            synchronize()
            times.append(1000 * (time.perf_counter() - start))
    except (torch.cuda.OutOfMemoryError, RuntimeError) as err:
        if not is_oom(err):
            raise
        return Measurement(None, None, oom=True)
    finally:
        if cuda:
            torch.cuda.empty_cache()
    peak = torch.cuda.max_memory_allocated(device) / 2**20 if cuda else None
    return Measurement(statistics.median(times), peak)


def autocast(device: torch.device, dtype: torch.dtype) -> AbstractContextManager:
    """bf16 autocast, or nothing for fp32."""
    return torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32)


def pam_modules(channels: int, device: torch.device) -> dict[str, PositionAttention]:
    """A fused and a naive PositionAttention with the same random weights and γ = 1."""
    torch.manual_seed(0)
    fused = PositionAttention(channels, mode="fused")
    with torch.no_grad():
        fused.gamma.fill_(1.0)
    naive = PositionAttention(channels, mode="naive")
    naive.load_state_dict(fused.state_dict())
    return {"fused": fused.to(device), "naive": naive.to(device)}


def pam_train(args: argparse.Namespace, mode: str) -> Measurement:
    """Forward + backward of one PositionAttention on ``(batch, channels, *feature_size)``."""
    device, dtype = torch.device(args.device), DTYPES[args.dtype]
    pam = pam_modules(args.channels, device)[mode]
    x = torch.randn(args.batch, args.channels, *args.feature_size, device=device, requires_grad=True)

    def call() -> None:
        with autocast(device, dtype):
            out = pam(x)
        out.float().sum().backward()

    return measure(call, device, args.warmup, args.repeats)


def pam_full(args: argparse.Namespace, mode: str) -> Measurement:
    """Forward without autograd of one PositionAttention on ``(1, channels, *full_size)``."""
    device, dtype = torch.device(args.device), DTYPES[args.dtype]
    pam = pam_modules(args.channels, device)[mode]
    x = torch.randn(1, args.channels, *args.full_size, device=device)

    def call() -> None:
        with torch.no_grad(), autocast(device, dtype):
            pam(x)

    return measure(call, device, args.warmup, args.repeats)


def danet_step(args: argparse.Namespace, mode: str) -> Measurement:
    """One training step of DANet (output stride 8, fused / naive PAM, three losses) on a random batch."""
    device, dtype = torch.device(args.device), DTYPES[args.dtype]
    torch.manual_seed(0)
    network = DANet(args.num_classes, backbone=args.backbone, pam_mode=mode).to(device).train()
    optimizer = torch.optim.SGD(network.parameters(), lr=0.003, momentum=0.9, weight_decay=1e-4)
    images = torch.randn(args.step_batch, 3, args.crop, args.crop, device=device)
    target = torch.randint(0, args.num_classes, (args.step_batch, args.crop, args.crop), device=device)

    def call() -> None:
        optimizer.zero_grad(set_to_none=True)
        with autocast(device, dtype):
            outputs = network(images)
            loss = sum(F.cross_entropy(logits, target) for logits in outputs.values())
        loss.backward()
        optimizer.step()

    return measure(call, device, args.warmup, args.repeats)


def run(args: argparse.Namespace) -> list[Comparison]:
    """Every selected benchmark, fused then naive."""
    functions = {"pam_train": pam_train, "pam_full": pam_full, "step": danet_step}
    shapes = {
        "pam_train": (f"{args.batch}×{args.channels}×{args.feature_size[0]}×{args.feature_size[1]}", args.batch),
        "pam_full": (f"1×{args.channels}×{args.full_size[0]}×{args.full_size[1]}", 1),
        "step": (f"{args.backbone}, {args.step_batch}×3×{args.crop}×{args.crop}", args.step_batch),
    }
    rows = []
    for name in args.only:
        print(f"timing {name} ...", file=sys.stderr)
        measured = {mode: functions[name](args, mode) for mode in MODES}
        shape, items = shapes[name]
        rows.append(Comparison(name, shape, items, measured["fused"], measured["naive"]))
    return rows


def _cell(value: float | None, oom: bool, digits: int) -> str:
    if oom:
        return "OOM"
    return "n/a" if value is None else f"{value:.{digits}f}"


def table(rows: Sequence[Comparison]) -> str:
    """The comparisons as a markdown table."""
    lines = [
        "| benchmark | shape | fused ms | naive ms | fused img/s | naive img/s | naive/fused time "
        "| fused peak MiB | naive peak MiB | naive/fused memory |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        f, n = row.fused, row.naive
        rates = [None if m.ms is None else 1000 * row.items / m.ms for m in (f, n)]
        lines.append(
            f"| {row.benchmark} | {row.shape} | {_cell(f.ms, f.oom, 2)} | {_cell(n.ms, n.oom, 2)} "
            f"| {_cell(rates[0], f.oom, 2)} | {_cell(rates[1], n.oom, 2)} | {_cell(row.time_ratio, False, 2)} "
            f"| {_cell(f.peak_mib, f.oom, 0)} | {_cell(n.peak_mib, n.oom, 0)} | {_cell(row.memory_ratio, False, 2)} |"
        )
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    cuda_default = "cuda" if torch.cuda.is_available() else "cpu"
    parser.add_argument("--device", default=cuda_default, help="default: %(default)s")
    parser.add_argument("--dtype", choices=tuple(DTYPES), default="fp32", help="bf16: autocast (default fp32)")
    parser.add_argument("--only", nargs="+", choices=BENCHMARKS, default=list(BENCHMARKS), help="what to run")
    parser.add_argument("--batch", type=int, help="PAM training batch (CUDA default 8)")
    parser.add_argument("--feature-size", type=int, nargs=2, metavar=("H", "W"), help="PAM training h w (96 96)")
    parser.add_argument("--channels", type=int, help="PAM channels C (512, DANet's head)")
    parser.add_argument("--full-size", type=int, nargs=2, metavar=("H", "W"), help="PAM inference h w (128 256)")
    parser.add_argument("--crop", type=int, help="DANet step crop (768)")
    parser.add_argument("--step-batch", type=int, help="DANet step batch (2, the official per-GPU batch)")
    parser.add_argument("--backbone", help="DANet step backbone (resnet101)")
    parser.add_argument("--num-classes", type=int, default=19, help="DANet step classes (default: %(default)s)")
    parser.add_argument("--repeats", type=int, help="timed calls (CUDA default 10)")
    parser.add_argument("--warmup", type=int, help="untimed calls first (CUDA default 3)")
    args = parser.parse_args(argv)
    defaults = CUDA_DEFAULTS if torch.device(args.device).type == "cuda" else CPU_DEFAULTS
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if args.repeats < 1 or args.warmup < 0:
        parser.error("--repeats must be >= 1 and --warmup >= 0.")
    return args


def main(argv: Sequence[str] | None = None) -> list[Comparison]:
    """Run the benchmarks, print the settings and the table; return the rows."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    device = torch.device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "CPU"
    rows = run(args)
    print(f"command: {shlex.join(['python', 'benchmarks/position_attention.py', *argv])}")
    print(
        f"device: {device} ({name}); torch {torch.__version__}; dtype {args.dtype}; threads {torch.get_num_threads()}"
    )
    print(f"median of {args.repeats} calls after {args.warmup}; ratios naive / fused (> 1: fused is better)")
    print()
    print(table(rows))
    return rows


if __name__ == "__main__":
    main()
