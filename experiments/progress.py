"""A note for a run whose recipe is sized for a GPU but that trains on the CPU, and would take long.

The ``small`` and ``paper`` profiles are sized for a GPU: on a CPU one training step of the ``small``
CamVid recipe takes seconds to minutes. :class:`CPURunEstimate` times the first steps and, when the
rest of the run would take longer than a threshold (30 minutes by default), says so once, with the scale
of the run and the estimate, pointing to the README's "CPU set" (section "Results"), the same recipe
shrunk for a CPU. A run that will end soon, such as the CPU set itself, prints nothing.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable, Mapping
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import Callback

from experiments.base import Experiment, Variant

CPU_SET_HINT = (
    'For a run sized for a CPU, see the "CPU set" in the README\'s "Results" section (CPU_SET=(--set '
    'output_stride=16 --set base_size=240 --set "crop_size=(240,320)" --set eval_short_side=240 ...)).'
)


def plural(count: int, noun: str, nouns: str | None = None) -> str:
    """``"1 epoch"``, ``"60 epochs"``, ``"2,700 steps"``; ``nouns`` is the plural when it is not ``noun + "s"``."""
    return f"{count:,} {noun if count == 1 else nouns or noun + 's'}"


def format_duration(seconds: float) -> str:
    """``"45 s"``, ``"14 min"``, ``"3 h 12 min"``, ``"2 d 5 h"``: a duration at the precision an estimate has."""
    if seconds < 60:
        return f"{seconds:.0f} s"
    minutes = round(seconds / 60)
    if minutes < 60:
        return f"{minutes} min"
    if minutes < 24 * 60:
        return f"{minutes // 60} h {minutes % 60} min"
    days, hours = divmod(round(seconds / 3600), 24)
    return f"{days} d {hours} h"


def describe_scale(trainer: L.Trainer) -> str:
    """The training steps of a fit: ``"2,760 training steps (60 epochs × 46 batches)"``, or as many as ``max_steps``
    allows; steps already done by a resumed run are named."""
    total = trainer.estimated_stepping_batches
    if math.isinf(total):
        return "training steps without end (max_epochs=-1 and no max_steps)"
    text = plural(int(total), "training step")
    if trainer.max_epochs is not None and trainer.max_epochs * trainer.num_training_batches == total:
        text += f" ({plural(trainer.max_epochs, 'epoch')} × {plural(trainer.num_training_batches, 'batch', 'batches')})"
    if trainer.global_step:
        text += f", {trainer.global_step:,} of them done before"
    return text


class CPURunEstimate(Callback):
    """Times the first training steps of a run on the CPU and, when the rest would take long, prints one note.

    Args:
        run: what trains, for the note, e.g. ``"baselines.camvid / fcn (small profile)"``.
        timed_steps: steps timed after the first one (which carries one-off costs) before the estimate.
        threshold_seconds: the estimated time left above which the note is printed.
        clock: seconds, monotonic (tests pass a fake one).

    The note goes to standard error on rank 0; nothing happens on a GPU.
    """

    def __init__(
        self,
        run: str,
        timed_steps: int = 3,
        threshold_seconds: float = 30 * 60,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        if timed_steps < 1:
            raise ValueError(f"timed_steps must be >= 1, got {timed_steps}.")
        self.run = run
        self.timed_steps = timed_steps
        self.threshold_seconds = threshold_seconds
        self.clock = clock
        self.active = False
        self.started: tuple[int, float] | None = None  # (global step, clock) at the end of the first step
        self.scale = ""

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.active = trainer.strategy.root_device.type == "cpu"
        self.started = None
        # The scale as the run starts: the steps a resumed run did before are not this run's.
        self.scale = describe_scale(trainer) if self.active else ""

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if not self.active:
            return
        now = self.clock()
        if self.started is None:
            self.started = (trainer.global_step, now)
            return
        step, start = self.started
        timed = trainer.global_step - step
        if timed < self.timed_steps:
            return
        self.active = False
        per_step = (now - start) / timed
        left = trainer.estimated_stepping_batches - trainer.global_step
        if left <= 0 or per_step * left < self.threshold_seconds or not trainer.is_global_zero:
            return
        estimate = "no end" if math.isinf(left) else f"about {format_duration(per_step * left)} for the steps left"
        print(
            f"note: {self.run} is sized for a GPU and trains on the CPU: {self.scale}, "
            f"{per_step:.1f} s per step, so {estimate} (validation not included). {CPU_SET_HINT}",
            file=sys.stderr,
            flush=True,
        )


def cpu_run_callbacks(experiment: Experiment, variant: Variant, recipe: Mapping[str, Any]) -> list[Callback]:
    """``[CPURunEstimate]`` for a profile that ``experiment`` does not size for a CPU (``Experiment.cpu_profiles``)."""
    profile = recipe["profile"]
    if profile in experiment.cpu_profiles:
        return []
    return [CPURunEstimate(f"{experiment.name} / {variant.name} ({profile} profile)")]
