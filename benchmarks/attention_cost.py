"""What SE, ECA and CBAM cost on real hardware: parameters, multiply-adds and images/s of ResNet-50 and MobileNetV2,
plain and with each block, every figure also as a ratio to the plain network measured in the same run.

The ECA paper's claim is that ECA's overhead is negligible (ResNet-50: +80 parameters, +4.7e-4 GFLOPs) where SE and
CBAM add about 10 % of the parameters; FLOPs miss the cost of the blocks' memory-bound work (global pooling, the
channel-wise and spatial products, CBAM's channel pooling), which this benchmark times:

- **Networks**: ``create_attention_resnet(50, ...)`` (timm's ResNet-50, one block per residual block; ECA with the
  released k = 3, 5, 5, 7) and ``create_attention_mobilenetv2(...)`` (timm's ``mobilenetv2_100``, one block after
  the projection BN of each of the 17 inverted residual blocks; ECA k = 1 / 3 as the official model; SE and CBAM
  r = 16), random weights.
- **Parameters and multiply-adds**: on the ``meta`` device, multiply-adds = ``FlopCounterMode`` FLOPs / 2 of one
  image (convolutions, 1-D convolutions and matrix products; pooling, activations and products are not counted).
- **Inference**: the median time of ``--repeats`` eval-mode forward passes of a ``--batch`` batch under
  ``torch.no_grad``, as images/s. The four networks of a model are timed in rounds, one call each per round in an
  order that rotates, after ``--warmup`` untimed rounds: a drift of the machine reaches all four alike, and the
  ratios to the plain network compare calls made side by side.
- **Training**: the same for a train-mode step: forward, cross-entropy, backward, SGD step (momentum 0.9).
- **Peak memory** (CUDA only: a CPU allocator keeps no peak): ``torch.cuda.max_memory_allocated`` over the timed
  training steps.

    python benchmarks/attention_cost.py                       # CUDA: batch 32 (the CPU default too), 224 px
    python benchmarks/attention_cost.py --device cpu          # 5 timed rounds after 1 warm-up round
    python benchmarks/attention_cost.py --models mobilenetv2 --no-training --json runs/benchmarks/attention_cost.json
"""

from __future__ import annotations

import argparse
import statistics
import sys
import traceback
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:  # run as `python benchmarks/attention_cost.py`: make the packages importable
    sys.path.insert(0, str(REPO_ROOT))

from benchmarks.common import (  # noqa: E402
    Measurement,
    cell,
    describe,
    fill_device_defaults,
    measure,
    print_header,
    write_results,
)
from experiments.attention_blocks import count_macs  # noqa: E402
from lightning_modules.classification_models import (  # noqa: E402
    create_attention_mobilenetv2,
    create_attention_resnet,
)

MODELS: dict[str, Callable[..., nn.Module]] = {
    "resnet50": lambda attention, **kwargs: create_attention_resnet(50, attention, **kwargs),
    "mobilenetv2": lambda attention, **kwargs: create_attention_mobilenetv2(attention, **kwargs),
}
NAMES = {"resnet50": "ResNet-50", "mobilenetv2": "MobileNetV2"}
ATTENTIONS = ("none", "se", "eca", "cbam")
CUDA_DEFAULTS = {"batch": 32, "repeats": 20, "warmup": 5}
CPU_DEFAULTS = {"batch": 32, "repeats": 5, "warmup": 1}


@dataclass
class Row:
    """One network: its counts, its two speeds (images/s, None when not measured) and peak training memory."""

    model: str
    attention: str
    params: int
    macs: int
    inference: float | None
    training: float | None
    peak_mib: float | None
    missing: str | None = None


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", help="default: %(default)s")
    parser.add_argument("--models", nargs="+", choices=list(MODELS), default=list(MODELS))
    parser.add_argument("--attentions", nargs="+", choices=ATTENTIONS, default=list(ATTENTIONS))
    parser.add_argument("--batch", type=int, help="images per call (default 32)")
    parser.add_argument("--image-size", type=int, default=224, help="square input side (default: %(default)s)")
    parser.add_argument("--repeats", type=int, help="timed rounds (CUDA 20, CPU 5)")
    parser.add_argument("--warmup", type=int, help="untimed rounds first (CUDA 5, CPU 1)")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's)")
    parser.add_argument("--no-training", dest="training", action="store_false", help="time inference only")
    parser.add_argument("--json", type=Path, help="also write the settings and rows to this JSON file")
    args = parser.parse_args(argv)
    fill_device_defaults(args, CUDA_DEFAULTS, CPU_DEFAULTS)
    if args.batch < 1 or args.repeats < 1 or args.warmup < 0:
        parser.error("--batch and --repeats must be >= 1, --warmup >= 0.")
    return args


def build(model: str, attention: str, device: torch.device | str) -> nn.Module:
    torch.manual_seed(0)
    return MODELS[model](None if attention == "none" else attention, num_classes=1000, device=device)


def counts(model: str, attention: str, image_size: int) -> tuple[int, int]:
    """Parameters and multiply-adds of one image, counted on the meta device."""
    network = build(model, attention, "meta")
    return sum(p.numel() for p in network.parameters()), count_macs(network, image_size)


def inference_call(network: nn.Module, images: torch.Tensor) -> Callable[[], None]:
    """One eval-mode forward pass of ``images`` under ``torch.no_grad``."""

    def forward() -> None:
        network.eval()
        with torch.no_grad():
            network(images)

    return forward


def training_call(network: nn.Module, images: torch.Tensor) -> Callable[[], None]:
    """One train-mode step: forward, cross-entropy on random labels, backward, SGD (momentum 0.9)."""
    optimizer = torch.optim.SGD(network.parameters(), lr=0.01, momentum=0.9)
    labels = torch.randint(0, 1000, (images.shape[0],), device=images.device)

    def step() -> None:
        network.train()
        optimizer.zero_grad(set_to_none=True)
        nn.functional.cross_entropy(network(images), labels).backward()
        optimizer.step()

    return step


def interleaved(
    calls: dict[str, Callable[[], None]], device: torch.device, warmup: int, repeats: int
) -> dict[str, Measurement]:
    """The median time of each call over ``repeats`` rounds that time every call once, in an order that rotates
    from round to round, after ``warmup`` untimed rounds: a drift of the machine (clock, caches, other load)
    reaches every call alike, and none is always first. On CUDA the peak memory is that of the call's own timed
    runs (statistics reset before each)."""
    for _ in range(warmup):
        for call in calls.values():
            call()
    times: dict[str, list[float]] = {name: [] for name in calls}
    peaks: dict[str, float | None] = dict.fromkeys(calls)
    names = list(calls)
    for round_index in range(repeats):
        for name in names[round_index % len(names) :] + names[: round_index % len(names)]:
            measured = measure(calls[name], device, 0, 1)
            if measured.ms is None:
                return {other: Measurement(None, None, oom=measured.oom) for other in calls}
            times[name].append(measured.ms)
            if measured.peak_mib is not None:
                peaks[name] = max(peaks[name] or 0.0, measured.peak_mib)
    return {name: Measurement(statistics.median(times[name]), peaks[name]) for name in calls}


def images_per_second(measurement: Measurement | None, batch: int) -> float | None:
    return None if measurement is None or measurement.ms is None else batch / (measurement.ms / 1000)


def run(args: argparse.Namespace) -> list[Row]:
    """Every (model, block) row; the blocks of one model are timed interleaved (:func:`interleaved`)."""
    device = torch.device(args.device)
    rows = []
    for model in args.models:
        networks = {attention: build(model, attention, device) for attention in args.attentions}
        images = torch.randn(args.batch, 3, args.image_size, args.image_size, device=device)
        modes = {"inference": inference_call} | ({"training": training_call} if args.training else {})
        results: dict[str, dict[str, Measurement]] = {}
        for mode, make in modes.items():
            print(f"timing {NAMES[model]} {mode}: {', '.join(args.attentions)} interleaved ...", file=sys.stderr)
            calls = {attention: make(networks[attention], images) for attention in args.attentions}
            try:
                results[mode] = interleaved(calls, device, args.warmup, args.repeats)
            except Exception as err:  # one failing model must not cost the other's rows
                traceback.print_exc()
                results[mode] = {attention: Measurement(None, None, error=describe(err)) for attention in calls}
            print("  " + ", ".join(f"{name} {value}" for name, value in results[mode].items()), file=sys.stderr)
        for attention in args.attentions:
            params, macs = counts(model, attention, args.image_size)
            inference = results["inference"][attention]
            training = results["training"][attention] if args.training else None
            rows.append(
                Row(
                    NAMES[model],
                    attention,
                    params,
                    macs,
                    images_per_second(inference, args.batch),
                    images_per_second(training, args.batch),
                    None if training is None else training.peak_mib,
                    inference.missing or (training.missing if training is not None else None),
                )
            )
        del networks, images
    return rows


def ratio(value: float | None, plain: float | None) -> float | None:
    return None if value is None or plain is None else value / plain


def table(rows: Sequence[Row]) -> str:
    """Markdown: each row's figures and their ratios to the plain network of the same model."""
    plain = {row.model: row for row in rows if row.attention == "none"}
    lines = [
        "| model | block | params | × plain | GMACs | × plain | inference img/s | × plain | training img/s | × plain "
        "| peak train MiB |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        base = plain.get(row.model)
        lines.append(
            f"| {row.model} | {row.attention} | {row.params:,} | {cell(ratio(row.params, base and base.params), 4)} "
            f"| {row.macs / 1e9:.4f} | {cell(ratio(row.macs, base and base.macs), 4)} "
            f"| {cell(row.inference, 1, row.missing)} | {cell(ratio(row.inference, base and base.inference), 3)} "
            f"| {cell(row.training, 1, row.missing)} | {cell(ratio(row.training, base and base.training), 3)} "
            f"| {cell(row.peak_mib, 0)} |"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> list[Row]:
    args = parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    settings = (
        f"batch {args.batch}, {args.image_size}×{args.image_size}, fp32, median of {args.repeats} interleaved rounds "
        f"after {args.warmup} warm-up"
    )
    print_header("attention_cost.py", list(argv if argv is not None else sys.argv[1:]), device, settings)
    rows = run(args)
    print(table(rows))
    if args.json is not None:
        write_results(args.json, "attention_cost", list(argv or []), device, settings, [asdict(row) for row in rows])
    return rows


if __name__ == "__main__":
    main()
