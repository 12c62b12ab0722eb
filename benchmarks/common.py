"""Timing, memory, reporting and model-variant helpers that the benchmark scripts share.

Every measurement is a median over timed calls after untimed warm-up calls, with CUDA synchronised before
each reading of the clock; peak memory is ``torch.cuda.max_memory_allocated`` over the timed calls (a CPU
allocator keeps no peak: ``None``). A run out of memory is a result (``oom=True``), not a crash, so that one
variant that does not fit leaves the rest of a table standing; :func:`attempt` does the same for a variant that
fails in any other way (a compiler error, say), printing its traceback.
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import statistics
import sys
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from experiments.results import write_json_atomic
from lightning_modules.danet import DANet
from lightning_modules.deeplab import DeepLabV3Plus
from lightning_modules.fcn import FCN
from lightning_modules.sanet import SANet

MODELS = ("fcn", "deeplabv3plus", "danet", "sanet")
PRECISIONS = ("fp32", "tf32", "bf16")
SWITCHES = ("cl", "compile", "naive", "fused_heads")


@dataclass
class Measurement:
    """Median time of one call (ms) and peak memory (MiB, ``None`` on a CPU); both ``None`` after OOM."""

    ms: float | None
    peak_mib: float | None
    oom: bool = False
    error: str | None = None

    @property
    def missing(self) -> str | None:
        """What a table shows instead of a value: ``OOM``, ``failed``, or ``None`` when measured."""
        return "OOM" if self.oom else "failed" if self.error is not None else None

    def __str__(self) -> str:
        if self.missing is not None:
            return self.missing if self.error is None else f"failed ({self.error})"
        peak = "" if self.peak_mib is None else f", peak {self.peak_mib:.0f} MiB"
        return f"{self.ms:.2f} ms{peak}"


def is_oom(err: BaseException) -> bool:
    """CUDA's OutOfMemoryError, or a CPU allocation failure."""
    return isinstance(err, torch.cuda.OutOfMemoryError) or "can't allocate memory" in str(err)


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure(call: Callable[[], Any], device: torch.device, warmup: int, repeats: int) -> Measurement:
    """Median wall time of ``repeats`` calls after ``warmup`` ones, and the peak memory over the timed calls."""
    cuda = device.type == "cuda"
    try:
        for _ in range(warmup):
            call()
        synchronize(device)
        if cuda:
            torch.cuda.reset_peak_memory_stats(device)
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            call()
            synchronize(device)
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


def describe(err: BaseException) -> str:
    """The error's type and the first line of its message, for a table or a JSON field."""
    return f"{type(err).__name__}: {err}".splitlines()[0]


def attempt(what: str, call: Callable[..., Measurement], *args: Any) -> Measurement:
    """``call(*args)``'s measurement of ``what``, or on an error other than OOM a failed one naming it.

    The traceback goes to stderr and the table goes on: on a lent GPU, one variant that fails must not cost the
    rows after it. Progress and each result go to stderr too, so that a run cut off at a time limit still shows
    what it measured.
    """
    print(f"timing {what} ...", file=sys.stderr)
    try:
        measured = call(*args)
    except Exception as err:
        traceback.print_exc()
        measured = Measurement(None, None, error=describe(err))
    print(f"  {what}: {measured}", file=sys.stderr)
    return measured


def pair(size: int | Sequence[int]) -> tuple[int, int]:
    """``(h, w)`` of an int side or a pair."""
    return (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))


def autocast(device: torch.device, dtype: str) -> AbstractContextManager:
    """bf16 autocast for ``"bf16"``; nothing for ``"fp32"`` / ``"tf32"`` (see :func:`float32_matmul`)."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=dtype == "bf16")


def float32_matmul(dtype: str) -> None:
    """TF32 tensor cores for fp32 matrix products and convolutions with ``"tf32"``, full fp32 otherwise."""
    tf32 = dtype == "tf32"
    torch.backends.cuda.matmul.allow_tf32 = tf32
    torch.backends.cudnn.allow_tf32 = tf32


def matmul_peak_tflops(device: torch.device, size: int, repeats: int = 10, warmup: int = 3) -> float:
    """bf16 TFLOP/s of a ``size × size × size`` matrix product on random data: the roofline MFU is taken against.

    Measured in the same run as the models, so that clocks and power limits are the same.
    """
    a = torch.randn(size, size, device=device, dtype=torch.bfloat16)
    b = torch.randn(size, size, device=device, dtype=torch.bfloat16)
    measurement = measure(lambda: a @ b, device, warmup, repeats)
    return 2 * size**3 / (measurement.ms / 1000) / 1e12


def device_name(device: torch.device) -> str:
    """The GPU's name, or the CPU's."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return platform.processor() or platform.machine() or "CPU"


def print_header(script: str, argv: Sequence[str], device: torch.device, *lines: str) -> None:
    """The command, the device and library versions, then the script's own ``lines``."""
    print(f"command: {shlex.join(['python', f'benchmarks/{script}', *argv])}")
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(
        f"device: {device} ({device_name(device)}); CPUs: {os.cpu_count()} ({usable} usable); "
        f"torch {torch.__version__}; threads {torch.get_num_threads()}; date {time.strftime('%Y-%m-%d')}"
    )
    for line in lines:
        print(line)
    print()


def cell(value: float | None, digits: int, missing: str | None = None) -> str:
    """A table cell: ``missing`` (a :attr:`Measurement.missing`) when given, ``n/a`` for no value, else the value."""
    if missing is not None:
        return missing
    return "n/a" if value is None else f"{value:.{digits}f}"


@dataclass(frozen=True)
class Variant:
    """A parsed variant name: precision and switches."""

    name: str
    precision: str
    channels_last: bool
    compile: bool
    pam_mode: str

    @classmethod
    def parse(cls, name: str) -> Variant:
        parts = name.split("+")
        precisions = [part for part in parts if part in PRECISIONS]
        unknown = [part for part in parts if part not in PRECISIONS + SWITCHES]
        if unknown or len(precisions) > 1 or len(set(parts)) != len(parts) or {"naive", "fused_heads"} <= set(parts):
            raise ValueError(
                f"variant {name!r}: expected one of {PRECISIONS} (default fp32) and switches {SWITCHES} joined by '+', "
                "each at most once, at most one position attention mode."
            )
        pam_mode = "naive" if "naive" in parts else "fused_heads" if "fused_heads" in parts else "fused"
        return cls(name, precisions[0] if precisions else "fp32", "cl" in parts, "compile" in parts, pam_mode)


def model_variants(model: str, names: Sequence[str]) -> list[Variant]:
    """The parsed ``names`` that apply to ``model`` (a position attention mode applies to DANet only)."""
    variants = [Variant.parse(name) for name in names]
    return [variant for variant in variants if model == "danet" or variant.pam_mode == "fused"]


def build_network(model: str, variant: Variant, args: argparse.Namespace, dynamic: bool | None = None) -> nn.Module:
    """The library's ``model`` for ``variant`` on ``args.device``, ready to time.

    Sets the variant's float32 matrix-product mode, seeds the weights, builds the network on ``args.backbone``
    at output stride 8 with the variant's memory format and PAM mode, and compiles it when the variant asks
    (``dynamic`` as ``torch.compile`` takes it). FCN keeps its auxiliary head (as the baselines train it);
    DANet has the official head without one.
    """
    float32_matmul(variant.precision)
    torch.manual_seed(0)
    common = dict(backbone=args.backbone, output_stride=8, channels_last=variant.channels_last)
    k = args.num_classes
    if model == "fcn":
        network: nn.Module = FCN(k, aux=True, **common)
    elif model == "deeplabv3plus":
        network = DeepLabV3Plus(k, **common)
    elif model == "danet":
        network = DANet(k, pam_mode=variant.pam_mode, **common)
    elif model == "sanet":
        network = SANet(k, **common)
    else:
        raise ValueError(f"unknown model {model!r}; expected one of {MODELS}.")
    network = network.to(args.device)
    if variant.compile:
        network.compile(backend=args.compile_backend, dynamic=dynamic)
    return network


def variant_name(name: str) -> str:
    """``name`` when :meth:`Variant.parse` takes it: the argparse ``type`` of every variant option."""
    try:
        Variant.parse(name)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None
    return name


def add_model_arguments(parser: argparse.ArgumentParser, default_variants: Sequence[str]) -> None:
    """The arguments that training_step.py and inference.py share: device, models, variants, sizes, output."""
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", help="default: %(default)s")
    parser.add_argument("--models", nargs="+", choices=MODELS, default=list(MODELS))
    parser.add_argument(
        "--variants", nargs="+", type=variant_name, default=list(default_variants), help="see the description"
    )
    parser.add_argument("--backbone", help="timm backbone (CUDA default resnet101; CPU test_resnet)")
    parser.add_argument("--num-classes", type=int, default=19, help="classes (default: %(default)s, Cityscapes)")
    parser.add_argument("--repeats", type=int, help="timed calls")
    parser.add_argument("--warmup", type=int, help="untimed calls first, compilation included")
    parser.add_argument("--compile-backend", default="inductor", help="torch.compile backend (default: %(default)s)")
    parser.add_argument(
        "--no-cudnn-benchmark",
        dest="cudnn_benchmark",
        action="store_false",
        help="leave torch.backends.cudnn.benchmark off (default: on)",
    )
    parser.add_argument("--json", type=Path, help="also write the settings and rows to this JSON file")


def parse_with_device_defaults(
    parser: argparse.ArgumentParser,
    argv: Sequence[str] | None,
    cuda_defaults: Mapping[str, Any],
    cpu_defaults: Mapping[str, Any],
) -> argparse.Namespace:
    """Parse ``argv``, fill the settings left unset with ``--device``'s defaults and check the call counts."""
    args = parser.parse_args(argv)
    fill_device_defaults(args, cuda_defaults, cpu_defaults)
    if args.repeats < 1 or args.warmup < 0:
        parser.error("--repeats must be >= 1 and --warmup >= 0.")
    return args


def fill_device_defaults(
    args: argparse.Namespace, cuda_defaults: Mapping[str, Any], cpu_defaults: Mapping[str, Any]
) -> None:
    """Set each setting of ``args`` left unset (``None``) to its default for ``args.device``'s type.

    The full sizes on CUDA, sizes that run in seconds elsewhere: a CPU cannot hold the full-size steps.
    """
    defaults = cuda_defaults if torch.device(args.device).type == "cuda" else cpu_defaults
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)


def write_results(
    path: Path,
    benchmark: str,
    argv: Sequence[str],
    device: torch.device,
    settings: str,
    rows: list[dict[str, Any]],
    **extra: Any,
) -> None:
    """The settings and rows of a run as JSON (atomically; ``plot_benchmarks.py`` reads it)."""
    payload = {"benchmark": benchmark, "argv": list(argv), "device": device_name(device), "torch": torch.__version__}
    write_json_atomic(path, {**payload, "settings": settings, "rows": rows, **extra})
