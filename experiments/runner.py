"""Run one variant of an experiment under a profile and store its results."""

from __future__ import annotations

import time
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger

from experiments.base import Experiment, Variant
from experiments.results import environment, git_state, write_json_atomic


class RunInfo(Callback):
    """Stores the experiment, variant and recipe in every checkpoint, so that ``eval`` can rebuild the network."""

    def __init__(self, run: dict[str, Any]) -> None:
        self.run = run

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]) -> None:
        checkpoint["run"] = self.run


def run_variant(
    experiment: Experiment,
    variant: Variant,
    profile: str,
    runs_dir: str | Path = "runs",
    overrides: Mapping[str, Any] | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """Train and validate ``variant``; write ``runs/<experiment>/<variant>/<run-id>/metrics.json``.

    Returns the record written to ``metrics.json``.
    """
    recipe = experiment.recipe(profile, overrides)
    L.seed_everything(seed, workers=True)
    datamodule = experiment.build_datamodule(recipe)
    module = experiment.build_module(variant, recipe, datamodule)
    run_id = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
    run_dir = Path(runs_dir) / experiment.name / variant.name / run_id
    trainer = L.Trainer(
        default_root_dir=run_dir,
        logger=CSVLogger(run_dir, name="logs", version=""),
        callbacks=[
            ModelCheckpoint(dirpath=run_dir / "checkpoints", save_last=True, save_top_k=0),
            RunInfo({"experiment": experiment.name, "variant": variant.name, "recipe": recipe, "seed": seed}),
        ],
        enable_model_summary=False,
        deterministic=recipe.get("deterministic", False),
        **experiment.trainer_kwargs(recipe),
    )
    started = time.perf_counter()
    trainer.fit(module, datamodule=datamodule)
    seconds = time.perf_counter() - started
    scores = getattr(module, "last_scores", {})
    record = {
        "experiment": experiment.name,
        "paper": experiment.paper,
        "table": experiment.table,
        "variant": variant.name,
        "variant_params": dict(variant.params),
        "profile": profile,
        "recipe": recipe,
        "seed": seed,
        "run_id": run_id,
        "git": git_state(),
        **environment(),
        "metrics": {f"val/{key}": value for key, value in scores.get("val", {}).items() if key != "iou_per_class"},
        "per_class": {"val/IoU": scores.get("val", {}).get("iou_per_class", {})},
        "paper_numbers": [vars(number) for number in variant.paper],
        "timings": {"fit_seconds": seconds, "steps": trainer.global_step},
    }
    write_json_atomic(run_dir / "metrics.json", record)
    return record
