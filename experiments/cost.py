"""What a run cost: parameters, multiply-adds per image at the evaluation size, training and inference images/s, peak
memory, each labelled with the hardware it was measured on (``metrics.json``'s ``run_cost``; ``table`` shows them).

- **Parameters**: trainable ones of the LightningModule.
- **Multiply-adds per image**: ``torch.utils.flop_counter.FlopCounterMode`` FLOPs / 2 of the network on the first
  validation image, at the size the validation loader gives it (the evaluation size); convolutions and matrix
  products, not normalisation or activations.
- **Training images/s**: training images over the wall time spent inside training steps (from the batch's start
  to the end of its optimiser step), so data loading between steps and validation are left out.
- **Inference images/s**: validation images over the wall time inside validation steps (sanity check excluded).
- **Peak memory**: on CUDA ``torch.cuda.max_memory_allocated`` over the fit (reset when it starts); on a CPU the
  process's peak resident set size, which includes the libraries and leaves out data-loader worker processes: on
  Linux ``VmHWM`` of ``/proc/self/status``, reset when the fit starts (``/proc/self/clear_refs``), so that each run
  of ``--seeds`` reports its own; elsewhere ``ru_maxrss``, the process's peak since it started.

Under DDP the figures are those of the first process (per device). A figure that cannot be measured (no validation
batch, a forward pass that fails) is None; the count is one forward pass at the loader's size, not the evaluation
protocol's sliding windows or scales.
"""

from __future__ import annotations

import contextlib
import resource
import sys
import time
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback
from torch.utils.flop_counter import FlopCounterMode

from experiments.results import cpu_name


def batch_images(batch: Any) -> torch.Tensor | None:
    """The images of a ``(images, targets)`` batch, or None for another layout."""
    if isinstance(batch, (list, tuple)) and batch and isinstance(batch[0], torch.Tensor):
        return batch[0]
    return None


class RunCost(Callback):
    """Times the training and validation steps of a fit and keeps one validation image for the FLOP count."""

    def __init__(self) -> None:
        self.seconds = {"train": 0.0, "val": 0.0}
        self.images = {"train": 0, "val": 0}
        self.started: float | None = None
        self.sample: torch.Tensor | None = None

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        reset_peak_memory(trainer.strategy.root_device)

    def _start(self, trainer: L.Trainer) -> None:
        if trainer.strategy.root_device.type == "cuda":
            torch.cuda.synchronize(trainer.strategy.root_device)
        self.started = time.perf_counter()

    def _end(self, trainer: L.Trainer, stage: str, batch: Any) -> None:
        images = batch_images(batch)
        if self.started is None or images is None:
            return
        if trainer.strategy.root_device.type == "cuda":
            torch.cuda.synchronize(trainer.strategy.root_device)
        self.seconds[stage] += time.perf_counter() - self.started
        self.images[stage] += images.shape[0]
        self.started = None

    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        self._start(trainer)

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        self._end(trainer, "train", batch)

    def on_validation_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int, dataloader_idx: int = 0
    ) -> None:
        if trainer.sanity_checking:
            return
        images = batch_images(batch)
        if self.sample is None and images is not None:
            self.sample = images[:1].detach().clone()
        self._start(trainer)

    def on_validation_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        if not trainer.sanity_checking:
            self._end(trainer, "val", batch)

    def summary(self, trainer: L.Trainer, module: L.LightningModule) -> dict[str, Any]:
        """The run's cost (see the module docstring); figures that were not measured are None."""
        device = trainer.strategy.root_device
        return {
            "params": sum(p.numel() for p in module.parameters() if p.requires_grad),
            "macs_per_image": multiply_adds(module, self.sample, device),
            "eval_size": None if self.sample is None else list(self.sample.shape[-2:]),
            "train_images_per_s": rate(self.images["train"], self.seconds["train"]),
            "inference_images_per_s": rate(self.images["val"], self.seconds["val"]),
            "peak_memory_mib": peak_memory_mib(device),
            "memory_kind": "CUDA max_memory_allocated" if device.type == "cuda" else "process peak RSS",
            "hardware": torch.cuda.get_device_name(device)
            if device.type == "cuda"
            else f"{device.type} ({cpu_name()})",
        }


def rate(images: int, seconds: float) -> float | None:
    return images / seconds if images and seconds > 0 else None


def multiply_adds(module: L.LightningModule, image: torch.Tensor | None, device: torch.device) -> int | None:
    """FLOPs / 2 of the module's ``network`` (the module itself when it has none) on ``image``, in eval mode."""
    if image is None:
        return None
    network = getattr(module, "network", module)
    modes = {submodule: submodule.training for submodule in network.modules()}
    network.eval()
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            network(image.to(device))
    except (RuntimeError, ValueError) as err:  # out of memory, say: the record is worth more than this one figure
        warnings.warn(f"multiply-adds not counted: {type(err).__name__}: {err}", stacklevel=2)
        return None
    finally:
        for submodule, training in modes.items():
            submodule.training = training
    return counter.get_total_flops() // 2


LINUX_STATUS = Path("/proc/self/status")
LINUX_CLEAR_REFS = Path("/proc/self/clear_refs")


def reset_peak_memory(device: torch.device) -> None:
    """Start the peak-memory count now: CUDA's allocator statistics, or on Linux the process's ``VmHWM``."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        return
    # Not Linux, or /proc read-only: peak_memory_mib falls back to ru_maxrss, the peak since the process started.
    with contextlib.suppress(OSError):
        LINUX_CLEAR_REFS.write_text("5")  # "5" resets the peak resident set size (proc(5))


def peak_memory_mib(device: torch.device) -> float:
    """Peak memory in MiB since :func:`reset_peak_memory` (module docstring)."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    try:
        for line in LINUX_STATUS.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 2**10  # kB
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10  # bytes on macOS, KiB on Linux


def format_cost_table(records: list[Mapping[str, Any]]) -> str:
    """Markdown: the cost of each run that recorded one, "" when none did."""
    rows = [record for record in records if record.get("run_cost")]
    if not rows:
        return ""
    lines = [
        "| variant | profile | seed | params (M) | GMACs / image (size) | train img/s | inference img/s "
        "| peak memory (MiB) | hardware |",
        "|---|---|---:|---:|---:|---:|---:|---:|---|",
    ]

    def number(value: float | None, digits: int) -> str:
        return "—" if value is None else f"{value:.{digits}f}"

    for record in rows:
        cost = record["run_cost"]
        size = "×".join(map(str, cost["eval_size"])) if cost.get("eval_size") else "—"
        macs = None if cost.get("macs_per_image") is None else cost["macs_per_image"] / 1e9
        lines.append(
            f"| {record['variant']} | {record['profile']} | {record['seed']} | {cost['params'] / 1e6:.2f} "
            f"| {number(macs, 3)} ({size}) | {number(cost.get('train_images_per_s'), 1)} "
            f"| {number(cost.get('inference_images_per_s'), 1)} | {number(cost.get('peak_memory_mib'), 0)} "
            f"({cost['memory_kind']}) | {cost['hardware']} |"
        )
    return "\n".join(lines)
