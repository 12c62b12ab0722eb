"""DANet's position attention: the fused modes (``scaled_dot_product_attention``) vs naive (explicit N × N softmax).

Two measurements, every mode of :class:`PositionAttention` in the same run, with naive / mode ratios of time and
peak memory:

1. ``pam_train``: forward + backward of ``PositionAttention(C)`` on ``(B, C, h, w)`` features; the full size
   is B = 8, C = 512, 96 × 96 (a 768 × 768 crop at output stride 8, N = 9,216);
2. ``pam_full``: inference (forward, no autograd) on full-resolution Cityscapes, 1024 × 2048 at output stride 8 =
   128 × 256 features, B = 1 (N = 32,768: the naive N × N matrix alone is 4 GiB in fp32). A run out of memory
   is reported as OOM.

``fused`` is one SDPA head with a C-wide value (CUDA's memory-efficient kernel); ``fused_heads`` splits the value
into C / d heads of the query width d, which FlashAttention takes (see :class:`PositionAttention`). The whole
DANet training step, naive vs fused, is ``benchmarks/training_step.py``'s.

Peak memory is ``torch.cuda.max_memory_allocated`` over the measured calls (weights and inputs included). On a
CPU the allocator keeps no peak, so memory is "n/a"; and PyTorch's CPU kernel needs equal query and value
widths, so ``fused`` takes the math path there and builds the N × N matrix too: CPU timings check that the
script runs, the comparison is a CUDA one.

    python benchmarks/position_attention.py                       # CUDA: the sizes above; CPU: tiny sizes
    python benchmarks/position_attention.py --dtype bf16          # bf16 autocast
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:  # run as `python benchmarks/position_attention.py`: make the packages importable
    sys.path.insert(0, str(REPO_ROOT))

from benchmarks.common import (  # noqa: E402
    Measurement,
    attempt,
    autocast,
    cell,
    measure,
    parse_with_device_defaults,
    print_header,
)
from lightning_modules.blocks.dual_attention import POSITION_MODES, PositionAttention  # noqa: E402

BENCHMARKS = ("pam_train", "pam_full")

# Settings left unset on the command line: the full sizes on CUDA, sizes that run in seconds on a CPU.
CUDA_DEFAULTS = dict(batch=8, feature_size=(96, 96), channels=512, full_size=(128, 256), repeats=10, warmup=3)
CPU_DEFAULTS = dict(batch=2, feature_size=(16, 16), channels=64, full_size=(16, 32), repeats=2, warmup=1)


@dataclass
class Comparison:
    """One row: a benchmark measured in every mode; ``items`` = images per call (for images/s)."""

    benchmark: str
    shape: str
    items: int
    measured: dict[str, Measurement]

    def time_ratio(self, mode: str) -> float | None:
        """naive time / ``mode``'s time (> 1: ``mode`` is faster)."""
        mine, naive = self.measured[mode].ms, self.measured["naive"].ms
        return None if mine is None or naive is None else naive / mine

    def memory_ratio(self, mode: str) -> float | None:
        """naive peak memory / ``mode``'s (> 1: ``mode`` needs less)."""
        mine, naive = self.measured[mode].peak_mib, self.measured["naive"].peak_mib
        return None if mine is None or naive is None else naive / mine


def pam_module(channels: int, mode: str, device: torch.device) -> PositionAttention:
    """A PositionAttention in ``mode`` with the same random weights in every mode, and γ = 1."""
    torch.manual_seed(0)
    pam = PositionAttention(channels, mode=mode)
    with torch.no_grad():
        pam.gamma.fill_(1.0)
    return pam.to(device)


def pam_train(args: argparse.Namespace, mode: str) -> Measurement:
    """Forward + backward of one PositionAttention on ``(batch, channels, *feature_size)``."""
    device = torch.device(args.device)
    pam = pam_module(args.channels, mode, device)
    x = torch.randn(args.batch, args.channels, *args.feature_size, device=device, requires_grad=True)

    def call() -> None:
        with autocast(device, args.dtype):
            out = pam(x)
        out.float().sum().backward()

    return measure(call, device, args.warmup, args.repeats)


def pam_full(args: argparse.Namespace, mode: str) -> Measurement:
    """Forward without autograd of one PositionAttention on ``(1, channels, *full_size)``."""
    device = torch.device(args.device)
    pam = pam_module(args.channels, mode, device)
    x = torch.randn(1, args.channels, *args.full_size, device=device)

    def call() -> None:
        with torch.no_grad(), autocast(device, args.dtype):
            pam(x)

    return measure(call, device, args.warmup, args.repeats)


def run(args: argparse.Namespace) -> list[Comparison]:
    """Every selected benchmark in every mode."""
    functions = {"pam_train": pam_train, "pam_full": pam_full}
    shapes = {
        "pam_train": (f"{args.batch}×{args.channels}×{args.feature_size[0]}×{args.feature_size[1]}", args.batch),
        "pam_full": (f"1×{args.channels}×{args.full_size[0]}×{args.full_size[1]}", 1),
    }
    rows = []
    for name in args.only:
        measured = {mode: attempt(f"{name} {mode}", functions[name], args, mode) for mode in POSITION_MODES}
        shape, items = shapes[name]
        rows.append(Comparison(name, shape, items, measured))
    return rows


def table(rows: Sequence[Comparison]) -> str:
    """One line per benchmark and mode, with the naive / mode ratios, as a markdown table."""
    lines = [
        "| benchmark | shape | mode | ms | img/s | peak MiB | naive/mode time | naive/mode memory |",
        "|---|---|---|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        for mode, m in row.measured.items():
            rate = None if m.ms is None else 1000 * row.items / m.ms
            ratios = f"{cell(row.time_ratio(mode), 2)} | {cell(row.memory_ratio(mode), 2)}"
            lines.append(
                f"| {row.benchmark} | {row.shape} | {mode} | {cell(m.ms, 2, m.missing)} | {cell(rate, 2, m.missing)} "
                f"| {cell(m.peak_mib, 0, m.missing)} | {ratios} |"
            )
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    cuda_default = "cuda" if torch.cuda.is_available() else "cpu"
    parser.add_argument("--device", default=cuda_default, help="default: %(default)s")
    parser.add_argument("--dtype", choices=("fp32", "bf16"), default="fp32", help="bf16: autocast (default fp32)")
    parser.add_argument("--only", nargs="+", choices=BENCHMARKS, default=list(BENCHMARKS), help="what to run")
    parser.add_argument("--batch", type=int, help="PAM training batch (CUDA default 8)")
    parser.add_argument("--feature-size", type=int, nargs=2, metavar=("H", "W"), help="PAM training h w (96 96)")
    parser.add_argument("--channels", type=int, help="PAM channels C (512, DANet's head)")
    parser.add_argument("--full-size", type=int, nargs=2, metavar=("H", "W"), help="PAM inference h w (128 256)")
    parser.add_argument("--repeats", type=int, help="timed calls (CUDA default 10)")
    parser.add_argument("--warmup", type=int, help="untimed calls first (CUDA default 3)")
    return parse_with_device_defaults(parser, argv, CUDA_DEFAULTS, CPU_DEFAULTS)


def main(argv: Sequence[str] | None = None) -> list[Comparison]:
    """Run the benchmarks, print the settings and the table; return the rows."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    rows = run(args)
    print_header(
        "position_attention.py",
        argv,
        torch.device(args.device),
        f"dtype {args.dtype}; median of {args.repeats} calls after {args.warmup}; "
        "ratios naive / mode (> 1: the mode is better)",
    )
    print(table(rows))
    return rows


if __name__ == "__main__":
    main()
