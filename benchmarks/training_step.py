"""One training step of FCN, DeepLabV3+, DANet and SANet: time, memory, FLOPs and model FLOP utilisation.

Each model is the library's network on a dilated backbone (ResNet-101 at output stride 8 by default) with the
loss its LightningModule trains with (``compute_losses``: FCN's auxiliary head, DANet's three outputs, SANet's
mask + category + dense terms), and a step is forward, loss, backward and an SGD update on a random batch
(768 × 768 crop, batch 8 on CUDA). For every model and variant the script prints step time, images/s, peak
memory, FLOPs per step and the model FLOP utilisation (MFU): FLOPs per step / step time / the bf16 matrix
product peak measured in the same run (an 8192³ product). On a CPU the script runs at tiny sizes and without the
``compile`` and ``tf32`` variants, to check in well under a minute that it works; its MFU means nothing there (the
peak is a 512³ bf16 product, which says little of a CPU's convolutions at these tiny sizes).

FLOPs are counted by ``torch.utils.flop_counter.FlopCounterMode`` over one fp32 eager step (matrix products,
convolutions and attention, forward and backward; element-wise work is not counted) per model, and every
variant of the model is charged that count (see :func:`model_flops`).

A variant is ``+``-joined switches on fp32:

- ``fp32`` (full fp32 products), ``tf32`` (TF32 tensor cores for fp32 products) or ``bf16`` (bf16 autocast);
- ``cl``: channels_last weights and activations;
- ``compile``: ``torch.compile`` of the network (``--compile-backend``, default inductor);
- ``naive`` / ``fused_heads``: DANet's position attention mode (default ``fused``); ignored by other models.

    python benchmarks/training_step.py                          # CUDA: every model, the default variants
    python benchmarks/training_step.py --device cpu             # tiny sizes, no compile / tf32: under a minute
    python benchmarks/training_step.py --models danet --variants bf16+cl bf16+cl+naive bf16+cl+fused_heads
    python benchmarks/training_step.py --models danet --variants bf16+cl --profile   # top kernels of bf16+cl
    python benchmarks/training_step.py --json runs/benchmarks/training_step.json     # for plot_benchmarks.py
"""

from __future__ import annotations

import argparse
import sys
import traceback
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode, conv_flop_count

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:  # run as `python benchmarks/training_step.py`: make the packages importable
    sys.path.insert(0, str(REPO_ROOT))

from benchmarks.common import (  # noqa: E402
    Measurement,
    Variant,
    add_model_arguments,
    attempt,
    autocast,
    build_network,
    cell,
    describe,
    matmul_peak_tflops,
    measure,
    model_variants,
    pair,
    parse_with_device_defaults,
    print_header,
    synchronize,
    variant_name,
    write_results,
)
from lightning_modules.sanet import SANetModule  # noqa: E402
from lightning_modules.segmentation import SegmentationModule  # noqa: E402

DEFAULT_VARIANTS = ("fp32", "tf32", "bf16", "bf16+cl", "bf16+cl+compile", "bf16+cl+naive", "bf16+cl+fused_heads")
AUX_WEIGHT = 0.2
# What the segmentation recipes train with on CUDA (bf16-mixed, channels_last, fused position attention, eager):
# the step whose MFU the GPU issue judges, so the one worth profiling.
PROFILE_VARIANT = "bf16+cl"

# A CPU's default variants leave out `compile`, whose inductor builds of four models take minutes on a CPU
# (4 of the 4.7 minutes a 2-core CPU run took with it), and `tf32`, a CUDA switch that changes nothing there.
CPU_VARIANTS = tuple(name for name in DEFAULT_VARIANTS if "compile" not in name.split("+") and name != "tf32")

# Settings left unset on the command line: the full sizes on CUDA, sizes that run in seconds on a CPU.
CUDA_DEFAULTS = dict(
    backbone="resnet101", crop=768, batch=8, repeats=10, warmup=3, peak_size=8192, variants=list(DEFAULT_VARIANTS)
)
CPU_DEFAULTS = dict(
    backbone="test_resnet", crop=64, batch=2, repeats=2, warmup=1, peak_size=512, variants=list(CPU_VARIANTS)
)


@dataclass
class Row:
    """One model × variant: the measurement, FLOPs per step and MFU (``None`` when not measured)."""

    model: str
    variant: str
    batch: int
    measured: Measurement
    flops: float
    peak_tflops: float

    @property
    def images_per_second(self) -> float | None:
        return None if self.measured.ms is None else 1000 * self.batch / self.measured.ms

    @property
    def achieved_tflops(self) -> float | None:
        return None if self.measured.ms is None else self.flops / (self.measured.ms / 1000) / 1e12

    @property
    def mfu(self) -> float | None:
        """Achieved FLOP/s over the measured bf16 matrix-product peak."""
        achieved = self.achieved_tflops
        return None if achieved is None else achieved / self.peak_tflops


def build(model: str, variant: Variant, args: argparse.Namespace) -> tuple[nn.Module, SegmentationModule]:
    """The network (on ``args.device``, in training mode) and the LightningModule whose losses it trains with."""
    network = build_network(model, variant, args).train()
    k = args.num_classes
    if model == "fcn":
        return network, SegmentationModule(network, k, loss_weights={"out": 1.0, "aux": AUX_WEIGHT})
    if model == "danet":
        return network, SegmentationModule(network, k, loss_weights=network.loss_weights())
    if model == "sanet":
        return network, SANetModule(network, k)
    return network, SegmentationModule(network, k)


def training_step(
    network: nn.Module, module: SegmentationModule, variant: Variant, args: argparse.Namespace
) -> Callable[[], None]:
    """A closure running one step on a fixed random batch: ``args.batch`` crops, ``args.crop`` a side or ``(h, w)``."""
    device = torch.device(args.device)
    crop = pair(args.crop)
    generator = torch.Generator().manual_seed(0)
    images = torch.randn(args.batch, 3, *crop, generator=generator).to(device)
    target = torch.randint(0, args.num_classes, (args.batch, *crop), generator=generator).to(device)
    if variant.channels_last:
        images = images.contiguous(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(network.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4)

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        with autocast(device, variant.precision):
            loss = module.compute_losses(network(images), target)["loss"]
        loss.backward()
        optimizer.step()

    return step


def conv_backward_flops(
    grad_out_shape: Sequence[int],
    x_shape: Sequence[int],
    w_shape: Sequence[int],
    _bias: Any,
    _stride: Any,
    _padding: Any,
    _dilation: Any,
    transposed: bool,
    _output_padding: Any,
    _groups: int,
    output_mask: Sequence[bool],
    out_shape: Any = None,
    **kwargs: Any,
) -> int:
    """FLOPs of ``aten.convolution_backward``: each requested gradient costs one forward convolution.

    Replaces PyTorch's formula, which charges the weight gradient of a grouped convolution ``groups`` times
    (a depthwise 3×3 on C channels C times): EfficientNet's depthwise, SANet's 2-group and DeepLabV3+'s
    separable convolutions would otherwise inflate FLOPs and MFU (checked against PyTorch 2.14).
    """
    forward = conv_flop_count(list(x_shape), list(w_shape), list(grad_out_shape), transposed)
    return forward * (int(output_mask[0]) + int(output_mask[1]))


def count_flops(step: Callable[[], None]) -> float:
    """FLOPs of one call of ``step`` (forward and backward products, convolutions, attention)."""
    with FlopCounterMode(display=False, custom_mapping={torch.ops.aten.convolution_backward: conv_backward_flops}) as c:
        step()
    return float(c.get_total_flops())


def model_flops(model: str, args: argparse.Namespace) -> float:
    """FLOPs of one fp32 eager step of ``model`` with fused position attention: the step's model FLOPs.

    Every variant of a model is charged this count, so that MFU compares time alone: ``fused_heads``
    recomputes ``Q Kᵀ`` once per value head, work the hardware does but the model does not need.
    """
    variant = Variant.parse("fp32")
    network, module = build(model, variant, args)
    return count_flops(training_step(network, module, variant, args))


def run(args: argparse.Namespace) -> list[Row]:
    """Every model × variant, after the bf16 matrix-product peak."""
    device = torch.device(args.device)
    print(f"measuring the bf16 {args.peak_size}³ matrix-product peak ...", file=sys.stderr)
    peak = matmul_peak_tflops(device, args.peak_size)
    torch.backends.cudnn.benchmark = args.cudnn_benchmark
    rows = []
    for model in args.models:
        print(f"counting the FLOPs of a {model} step ...", file=sys.stderr)
        flops = model_flops(model, args)
        for variant in model_variants(model, args.variants):
            measured = attempt(f"{model} {variant.name}", time_step, model, variant, args)
            rows.append(Row(model, variant.name, args.batch, measured, flops, peak))
    return rows


def time_step(model: str, variant: Variant, args: argparse.Namespace) -> Measurement:
    """Build ``model`` as ``variant`` and time its training step (the network is freed on return)."""
    device = torch.device(args.device)
    network, module = build(model, variant, args)
    return measure(training_step(network, module, variant, args), device, args.warmup, args.repeats)


def profile_top_kernels(args: argparse.Namespace, model: str, variant: Variant, top: int) -> str:
    """``torch.profiler``'s table of the ``top`` operators / kernels by device (CPU: host) time over 3 steps."""
    from torch.profiler import ProfilerActivity, profile

    device = torch.device(args.device)
    network, module = build(model, variant, args)
    step = training_step(network, module, variant, args)
    for _ in range(max(args.warmup, 1)):
        step()
    synchronize(device)
    cuda = device.type == "cuda"
    activities = [ProfilerActivity.CPU, *([ProfilerActivity.CUDA] if cuda else [])]
    with profile(activities=activities) as prof:
        for _ in range(3):
            step()
        synchronize(device)
    return prof.key_averages().table(sort_by="self_device_time_total" if cuda else "self_cpu_time_total", row_limit=top)


def table(rows: Sequence[Row]) -> str:
    """The rows as a markdown table."""
    lines = [
        "| model | variant | step ms | img/s | peak MiB | GFLOP/step | achieved TFLOP/s | MFU % |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        m = row.measured
        mfu = None if row.mfu is None else 100 * row.mfu
        lines.append(
            f"| {row.model} | {row.variant} | {cell(m.ms, 1, m.missing)} | {cell(row.images_per_second, 2, m.missing)} "
            f"| {cell(m.peak_mib, 0, m.missing)} | {row.flops / 1e9:.1f} | {cell(row.achieved_tflops, 2, m.missing)} "
            f"| {cell(mfu, 1, m.missing)} |"
        )
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_model_arguments(parser, DEFAULT_VARIANTS)
    parser.set_defaults(variants=None)  # the device's: CUDA_DEFAULTS / CPU_DEFAULTS
    parser.add_argument("--crop", type=int, help="square crop side (768)")
    parser.add_argument("--batch", type=int, help="images per step (8)")
    parser.add_argument("--peak-size", type=int, help="side of the bf16 matrix product of the peak (8192)")
    parser.add_argument("--profile", action="store_true", help="also print the top kernels of the first model")
    parser.add_argument(
        "--profile-variant",
        type=variant_name,
        default=PROFILE_VARIANT,
        help="the variant --profile profiles (default: %(default)s, the recipes' speed settings on CUDA)",
    )
    parser.add_argument("--top", type=int, default=15, help="rows of the --profile table (default: %(default)s)")
    return parse_with_device_defaults(parser, argv, CUDA_DEFAULTS, CPU_DEFAULTS)


def main(argv: Sequence[str] | None = None) -> list[Row]:
    """Run the benchmark, print the settings, the table (and the profile); return the rows."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    device = torch.device(args.device)
    rows = run(args)
    peak = rows[0].peak_tflops if rows else matmul_peak_tflops(device, args.peak_size)
    settings = (
        f"{args.backbone} at output stride 8, {args.batch}×3×{args.crop}×{args.crop}, {args.num_classes} classes, SGD; "
        f"median of {args.repeats} steps after {args.warmup}; cudnn.benchmark {args.cudnn_benchmark}; "
        f"measured bf16 {args.peak_size}³ matrix-product peak {peak:.1f} TFLOP/s"
    )
    print_header("training_step.py", argv, device, settings)
    print(table(rows))
    profile = None
    if args.profile:
        model, variant = args.models[0], Variant.parse(args.profile_variant)
        try:
            profile = profile_top_kernels(args, model, variant, args.top)
        except Exception as err:  # the table above stands and still goes to --json
            traceback.print_exc()
            profile = f"failed: {describe(err)}"
        print(f"\ntop {args.top} kernels of {model} {variant.name} (3 steps):\n{profile}")
    if args.json is not None:
        rows_json = [{**asdict(row), "images_per_second": row.images_per_second, "mfu": row.mfu} for row in rows]
        write_results(args.json, "training_step", argv, device, settings, rows_json, profile=profile)
    return rows


if __name__ == "__main__":
    main()
