"""Full-resolution inference of FCN, DeepLabV3+, DANet and SANet: images/s and peak memory per protocol.

The input is one Cityscapes-sized image (B = 1, 1024 × 2048 on CUDA) and each network is the library's, on a
dilated backbone (ResNet-101 at output stride 8), in eval mode under ``torch.inference_mode``. Two protocols
of ``lightning_modules.inference``, the same for every model:

- ``single``: one forward pass over the whole image (what "full-resolution inference" means: DANet's
  position attention then runs over all 128 × 256 = 32,768 positions);
- ``ms_flip``: DANet's multi-scale Cityscapes test (``danet.cityscapes_test``'s ``+MS`` protocol): scales
  0.5 … 2.2, each with its horizontal flip, predicted in 1024 × 1024 sliding windows at stride 512, combined
  by PyTorch-Encoding's rule (``combine="exp_sum"``).

Variants use ``training_step.py``'s syntax (``bf16+cl``, ``bf16+cl+naive``, ...); peak memory is
``torch.cuda.max_memory_allocated`` over the timed images, weights included.

    python benchmarks/inference.py                                   # CUDA: every model, both protocols
    python benchmarks/inference.py --models danet --variants bf16+cl bf16+cl+naive --protocols single
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:  # run as `python benchmarks/inference.py`: make the packages importable
    sys.path.insert(0, str(REPO_ROOT))

from benchmarks.common import (  # noqa: E402
    Measurement,
    Variant,
    add_model_arguments,
    attempt,
    autocast,
    build_network,
    cell,
    measure,
    model_variants,
    parse_with_device_defaults,
    print_header,
    write_results,
)
from experiments.danet import CITYSCAPES_PAPER, evaluation  # noqa: E402
from lightning_modules.inference import predict_logits, predict_multiscale  # noqa: E402

PROTOCOLS = ("single", "ms_flip")
DEFAULT_VARIANTS = ("fp32", "bf16+cl", "bf16+cl+naive")
GIB = 1024
# danet.cityscapes_test's +MS protocol: scales, flip, window, stride, logit sum, align_corners.
_, MS_FLIP = evaluation(CITYSCAPES_PAPER, multi_scale=True)

CUDA_DEFAULTS = dict(
    backbone="resnet101", image_size=(1024, 2048), window=MS_FLIP["window"], stride=MS_FLIP["stride"],
    scales=MS_FLIP["scales"], repeats=3, warmup=1,
)  # fmt: skip
CPU_DEFAULTS = dict(
    backbone="test_resnet", image_size=(64, 128), window=64, stride=32, scales=(0.75, 1.25), repeats=1, warmup=1
)


@dataclass
class Row:
    """One model × variant × protocol."""

    model: str
    variant: str
    protocol: str
    measured: Measurement

    @property
    def images_per_second(self) -> float | None:
        return None if self.measured.ms is None else 1000 / self.measured.ms


def protocol_call(
    protocol: str, network: nn.Module, image: torch.Tensor, args: argparse.Namespace
) -> Callable[[], torch.Tensor]:
    """A closure predicting ``image`` with ``protocol``: one forward, or :data:`MS_FLIP` at ``args``' sizes."""
    if protocol == "single":
        return lambda: predict_logits(network, image)
    kwargs: dict[str, Any] = {**MS_FLIP, "scales": args.scales, "window": args.window, "stride": args.stride}
    return lambda: predict_multiscale(network, image, **kwargs)


def run(args: argparse.Namespace) -> list[Row]:
    device = torch.device(args.device)
    torch.backends.cudnn.benchmark = args.cudnn_benchmark
    image = torch.randn(1, 3, *args.image_size, generator=torch.Generator().manual_seed(0)).to(device)
    rows = []
    for model in args.models:
        for variant in model_variants(model, args.variants):
            for protocol in args.protocols:
                what = f"{model} {variant.name} {protocol}"
                measured = attempt(what, time_prediction, model, variant, protocol, image, args)
                rows.append(Row(model, variant.name, protocol, measured))
    return rows


def time_prediction(
    model: str, variant: Variant, protocol: str, image: torch.Tensor, args: argparse.Namespace
) -> Measurement:
    """Build ``model`` as ``variant`` and time its prediction of ``image`` (the network is freed on return)."""
    device = torch.device(args.device)
    network = build_network(model, variant, args, dynamic=True).eval()
    predict = protocol_call(protocol, network, image, args)

    def call() -> None:
        with torch.inference_mode(), autocast(device, variant.precision):
            predict()

    return measure(call, device, args.warmup, args.repeats)


def table(rows: Sequence[Row]) -> str:
    lines = [
        "| model | variant | protocol | s / image | images/s | peak MiB | fits 8 GiB |",
        "|---|---|---|---:|---:|---:|---|",
    ]
    for row in rows:
        m = row.measured
        seconds = None if m.ms is None else m.ms / 1000
        fits = m.missing or ("n/a" if m.peak_mib is None else "yes" if m.peak_mib <= 8 * GIB else "no")
        lines.append(
            f"| {row.model} | {row.variant} | {row.protocol} | {cell(seconds, 3, m.missing)} "
            f"| {cell(row.images_per_second, 2, m.missing)} | {cell(m.peak_mib, 0, m.missing)} | {fits} |"
        )
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_model_arguments(parser, DEFAULT_VARIANTS)
    parser.add_argument("--protocols", nargs="+", choices=PROTOCOLS, default=list(PROTOCOLS))
    parser.add_argument("--image-size", type=int, nargs=2, metavar=("H", "W"), help="input size (1024 2048)")
    parser.add_argument("--scales", type=float, nargs="+", help="ms_flip scales (0.5 … 2.2)")
    parser.add_argument("--window", type=int, help="ms_flip sliding window side (1024)")
    parser.add_argument("--stride", type=int, help="ms_flip sliding window stride (512)")
    return parse_with_device_defaults(parser, argv, CUDA_DEFAULTS, CPU_DEFAULTS)


def main(argv: Sequence[str] | None = None) -> list[Row]:
    """Run the benchmark, print the settings and the table; return the rows."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    device = torch.device(args.device)
    rows = run(args)
    height, width = args.image_size
    settings = (
        f"{args.backbone} at output stride 8, 1×3×{height}×{width}, {args.num_classes} classes; ms_flip: scales "
        f"{tuple(args.scales)} + flip, window {args.window}, stride {args.stride}; median of {args.repeats} "
        f"images after {args.warmup}; cudnn.benchmark {args.cudnn_benchmark}"
    )
    print_header("inference.py", argv, device, settings)
    print(table(rows))
    if args.json is not None:
        rows_json = [{**asdict(row), "images_per_second": row.images_per_second} for row in rows]
        write_results(args.json, "inference", argv, device, settings, rows_json)
    return rows


if __name__ == "__main__":
    main()
