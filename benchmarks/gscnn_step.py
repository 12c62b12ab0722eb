"""Gated-SCNN training step: Canny on the device against the official per-image CPU round trip, and the memory
that checkpointing the full-resolution shape stream saves.

**Canny.** The official ``network/gscnn.py`` moves each image of the batch to the host, casts it to uint8 and runs
``cv2.Canny(image, 10, 100)``, then copies the edges back: a device-to-host copy and a synchronisation per image,
every step. Here :func:`lightning_modules.gscnn.image_gradients` runs Canny on the whole batch where it lives. The
script times a full training step (forward, the four losses of :class:`~lightning_modules.gscnn.GSCNNModule`,
backward, SGD update) with each, in one run, and prints the ratio:

- ``device``: the network as built (``canny_mode="device"``);
- ``official-cpu``: the same network whose Canny is the official round trip (OpenCV on the host, per image).

**Memory** (``--memory``): the peak memory of a training step with and without ``checkpoint_shape_stream``, each
in a fresh process. On CUDA the peak is ``torch.cuda.max_memory_allocated``; on a CPU (Linux), the growth of the
process's peak resident memory (``VmHWM``) over the step, which counts what the allocator took from the system
during the step.

    python benchmarks/gscnn_step.py --device cpu                       # tiny sizes, seconds
    python benchmarks/gscnn_step.py --device cpu --memory --crop 256 --batch 2
    python benchmarks/gscnn_step.py                                    # CUDA: ResNet-101, crop 720, batch 2
    python benchmarks/gscnn_step.py --json runs/benchmarks/gscnn_step.json

OpenCV (``opencv-python-headless``, in the ``test`` extra) is needed for the ``official-cpu`` row only.
"""

from __future__ import annotations

import argparse
import multiprocessing
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:  # run as `python benchmarks/gscnn_step.py`: make the packages importable
    sys.path.insert(0, str(REPO_ROOT))

from benchmarks.common import (  # noqa: E402
    Measurement,
    attempt,
    cell,
    fill_device_defaults,
    measure,
    print_header,
    write_results,
)
from lightning_modules.gscnn import GSCNN, GSCNNModule  # noqa: E402

CANNY_VARIANTS = ("device", "official-cpu")
CUDA_DEFAULTS = {"backbone": "resnet101", "crop": 720, "batch": 2, "repeats": 10, "warmup": 3}
CPU_DEFAULTS = {"backbone": "test_resnet", "crop": 64, "batch": 2, "repeats": 2, "warmup": 1}
NUM_CLASSES = 19


def official_canny(images: torch.Tensor) -> torch.Tensor:
    """The released code's image gradients: per image, the normalised tensor on the host, cast to uint8 by
    NumPy, ``cv2.Canny(·, 10, 100)`` on its three channels, and the 0/255 edges copied back to the device."""
    import cv2
    import numpy as np

    host = images.detach().cpu().numpy().transpose(0, 2, 3, 1).astype(np.uint8)
    edges = np.stack([cv2.Canny(image, 10, 100)[None] for image in host]).astype(np.float32)
    return torch.from_numpy(edges).to(images.device)


def build(args: argparse.Namespace, canny: str, checkpoint_shape_stream: bool = False) -> GSCNNModule:
    """GSCNN on ``args.backbone`` with its four losses; ``canny="official-cpu"`` swaps in :func:`official_canny`
    (with ``canny_mode="released"``, whose 0/255 scale it produces)."""
    mode = "released" if canny == "official-cpu" else "device"
    network = GSCNN(
        NUM_CLASSES,
        backbone=args.backbone,
        output_stride=8,
        canny_mode=mode,
        checkpoint_shape_stream=checkpoint_shape_stream,
    )
    if canny == "official-cpu":
        network.canny = official_canny
    # No dual_mode="released": that is about the loss, not the image gradients compared here.
    return GSCNNModule(network, NUM_CLASSES).to(args.device).train()


def random_batch(args: argparse.Namespace) -> tuple[torch.Tensor, torch.Tensor]:
    """Normalised-looking images (a smooth gradient plus noise, inside the ImageNet range) and blocky labels."""
    generator = torch.Generator().manual_seed(0)
    images = 0.5 * torch.randn(args.batch, 3, args.crop, args.crop, generator=generator).clamp(-1.5, 1.5)
    blocks = torch.randint(0, NUM_CLASSES, (args.batch, args.crop // 16 + 1, args.crop // 16 + 1), generator=generator)
    labels = blocks.repeat_interleave(16, 1).repeat_interleave(16, 2)[:, : args.crop, : args.crop]
    return images.to(args.device), labels.to(args.device)


def step_function(module: GSCNNModule, batch: tuple[torch.Tensor, torch.Tensor]) -> Any:
    optimizer = torch.optim.SGD(module.parameters(), lr=1e-3, momentum=0.9)

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        outputs = module.network(batch[0])
        module.compute_losses(outputs, batch[1])["loss"].backward()
        optimizer.step()

    return step


def time_step(args: argparse.Namespace, canny: str) -> Measurement:
    module = build(args, canny)
    return measure(step_function(module, random_batch(args)), torch.device(args.device), args.warmup, args.repeats)


def peak_memory_mib(args: argparse.Namespace, checkpoint_shape_stream: bool) -> float:
    """Peak memory (MiB) of a training step; see the module docstring.

    On CUDA, the peak of a step after a warm-up step. On a CPU, the growth of the peak resident memory over the
    first step (a later step reuses what the allocator kept, and would show no growth): activations, gradients
    and the optimizer's momentum, the last two the same with and without checkpointing.
    """
    device = torch.device(args.device)
    module = build(args, "device", checkpoint_shape_stream)
    step = step_function(module, random_batch(args))
    if device.type == "cuda":
        step()
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        step()
        torch.cuda.synchronize(device)
        return torch.cuda.max_memory_allocated(device) / 2**20
    reset_peak_rss()
    before = peak_rss_kib()
    step()
    return (peak_rss_kib() - before) / 1024


def peak_rss_kib() -> int:
    """The process's peak resident memory (``VmHWM`` of ``/proc/self/status``, Linux), in KiB.

    Not ``getrusage``'s ``ru_maxrss``: Linux carries that over from the parent into a spawned process.
    """
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise RuntimeError("/proc/self/status has no VmHWM line: the CPU memory measurement needs Linux.")


def reset_peak_rss() -> None:
    """Set the peak resident memory to the current one (``/proc/self/clear_refs``, Linux)."""
    Path("/proc/self/clear_refs").write_text("5")


def _child(args: argparse.Namespace, checkpoint_shape_stream: bool, queue: Any) -> None:
    torch.set_num_threads(args.threads)
    queue.put(peak_memory_mib(args, checkpoint_shape_stream))


def measure_memory(args: argparse.Namespace, checkpoint_shape_stream: bool) -> float:
    """:func:`peak_memory_mib` in a fresh process, so that one variant's peak does not hide the other's."""
    # By its package name, which the fresh process can import however this file was loaded.
    from benchmarks.gscnn_step import _child

    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    process = context.Process(target=_child, args=(args, checkpoint_shape_stream, queue))
    process.start()
    process.join()
    if process.exitcode != 0:
        raise RuntimeError(f"the memory measurement process failed (exit code {process.exitcode}); see its output.")
    return queue.get(timeout=10)


def canny_table(rows: dict[str, Measurement], args: argparse.Namespace) -> str:
    base = rows["device"].ms
    lines = [
        "| Canny | step (ms) | images/s | time / device |",
        "|---|---:|---:|---:|",
    ]
    for name, measured in rows.items():
        rate = None if measured.ms is None else 1000 * args.batch / measured.ms
        ratio = None if measured.ms is None or base is None else measured.ms / base
        missing = measured.missing
        lines.append(
            f"| {name} | {cell(measured.ms, 1, missing)} | {cell(rate, 2, missing)} | {cell(ratio, 2, missing)} |"
        )
    return "\n".join(lines)


def memory_table(plain: float, checkpointed: float) -> str:
    saving = None if plain <= 0 else 100 * (1 - checkpointed / plain)
    return "\n".join(
        [
            "| shape stream | peak step memory (MiB) |",
            "|---|---:|",
            f"| stored activations | {plain:.0f} |",
            f"| checkpoint_shape_stream=True | {checkpointed:.0f} |",
            f"| saving | {cell(saving, 0)} % |",
        ]
    )


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--backbone", help="timm backbone or wider_resnet38 (CUDA: resnet101; CPU: test_resnet)")
    parser.add_argument("--crop", type=int, help="square crop side (CUDA: 720, the official crop; CPU: 64)")
    parser.add_argument("--batch", type=int, help="images per step (default 2)")
    parser.add_argument("--repeats", type=int, help="timed steps (CUDA: 10; CPU: 2)")
    parser.add_argument("--warmup", type=int, help="untimed steps first (CUDA: 3; CPU: 1)")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(), help="CPU threads (default: torch's)")
    parser.add_argument("--memory", action="store_true", help="also measure the saving of checkpoint_shape_stream")
    parser.add_argument("--json", type=Path, help="also write the settings and rows to this JSON file")
    args = parser.parse_args(argv)
    fill_device_defaults(args, CUDA_DEFAULTS, CPU_DEFAULTS)
    if args.repeats < 1 or args.warmup < 0 or args.crop < 16 or args.batch < 1:
        parser.error("--repeats and --batch must be >= 1, --warmup >= 0 and --crop >= 16.")
    return args


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    argv = list(sys.argv[1:] if argv is None else argv)
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    settings = f"GSCNN on {args.backbone}, crop {args.crop}, batch {args.batch}, fp32, {NUM_CLASSES} classes"
    print_header("gscnn_step.py", argv, device, settings)
    rows = {name: attempt(f"{name} Canny", time_step, args, name) for name in CANNY_VARIANTS}
    print(canny_table(rows, args))
    result: dict[str, Any] = {"canny": {name: vars(measured) for name, measured in rows.items()}}
    if args.memory:
        plain, checkpointed = (measure_memory(args, flag) for flag in (False, True))
        print()
        print(memory_table(plain, checkpointed))
        result["memory_mib"] = {"stored": plain, "checkpointed": checkpointed}
    if args.json is not None:
        write_results(args.json, "gscnn_step", argv, device, settings, [result])
    return result


if __name__ == "__main__":
    main()
