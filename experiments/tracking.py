"""Weights & Biases tracking: offline by default, online on request, never blocking a run.

Each run gets ``group`` = experiment, ``name`` = variant, tags = paper / table / profile, the
recipe as config; its W&B id is kept in the run folder (``wandb_id``) so that a resumed run
continues the same W&B run. ``offline`` writes ``<run dir>/wandb/offline-run-*`` that
``wandb sync`` uploads later; ``disabled`` writes nothing.
"""

from __future__ import annotations

import os
import uuid
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.loggers import WandbLogger

from datamodules.transforms import IMAGENET_MEAN, IMAGENET_STD
from experiments.base import Experiment, Variant
from experiments.choices import WANDB_MODES

WandbMode = Literal["offline", "online", "disabled"]
PROJECT = "attention-papers"


def _netrc_or_env() -> bool:
    """Whether an API key is configured, without contacting the server."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    netrc = Path(os.environ.get("NETRC", Path.home() / ".netrc"))
    return netrc.is_file() and "api.wandb.ai" in netrc.read_text(errors="ignore")


def make_wandb_logger(
    mode: WandbMode, run_dir: Path, experiment: Experiment, variant: Variant, recipe: Mapping[str, Any]
) -> WandbLogger | None:
    """A started ``WandbLogger``, or ``None`` when disabled or when W&B cannot start."""
    if mode not in WANDB_MODES:
        raise ValueError(f"--wandb must be one of {', '.join(WANDB_MODES)}, got {mode!r}.")
    if mode == "disabled":
        return None
    if mode == "online" and not _netrc_or_env():
        warnings.warn(
            "W&B online logging needs an API key (`wandb login` or WANDB_API_KEY); logging offline instead.",
            stacklevel=2,
        )
        mode = "offline"
    import wandb

    run_dir.mkdir(parents=True, exist_ok=True)
    id_file = run_dir / "wandb_id"
    run_id = id_file.read_text().strip() if id_file.is_file() else uuid.uuid4().hex[:8]
    id_file.write_text(run_id)
    logger = WandbLogger(
        project=PROJECT,
        name=variant.name,
        group=experiment.name,
        tags=[experiment.paper, experiment.table, recipe["profile"]],
        config=dict(recipe),
        save_dir=str(run_dir),
        offline=mode == "offline",
        id=run_id,
        resume="allow",
        settings=wandb.Settings(init_timeout=30, silent=True),
    )
    try:
        logger.experiment  # noqa: B018  (starts the run now, so that a failure cannot stop training later)
    except Exception as err:  # W&B raises many types (network, auth, service); none may stop a run.
        warnings.warn(f"W&B could not start ({type(err).__name__}: {err}); training without it.", stacklevel=2)
        return None
    return logger


def _wandb_logger(trainer: L.Trainer) -> WandbLogger | None:
    return next((logger for logger in trainer.loggers if isinstance(logger, WandbLogger)), None)


class WandbSegmentationMedia(Callback):
    """Logs a few validation images with their label and predicted masks, and per-class IoU as a table."""

    def __init__(self, class_names: list[str], num_images: int = 4) -> None:
        self.class_labels = dict(enumerate(class_names))
        self.num_images = num_images

    def on_validation_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        logger = _wandb_logger(trainer)
        if batch_idx != 0 or logger is None or not trainer.is_global_zero or trainer.sanity_checking:
            return
        import wandb

        images, labels = batch[0][: self.num_images], batch[1][: self.num_images]
        with torch.no_grad():
            preds = pl_module(images)["out"].argmax(dim=1)
        mean = torch.tensor(IMAGENET_MEAN, device=images.device).view(1, 3, 1, 1)
        std = torch.tensor(IMAGENET_STD, device=images.device).view(1, 3, 1, 1)
        pixels = ((images * std + mean).clamp(0, 1) * 255).byte().permute(0, 2, 3, 1).cpu().numpy()
        media = [
            wandb.Image(
                pixel,
                masks={
                    "prediction": {"mask_data": pred.cpu().numpy(), "class_labels": self.class_labels},
                    "ground_truth": {"mask_data": label.cpu().numpy(), "class_labels": self.class_labels},
                },
            )
            for pixel, pred, label in zip(pixels, preds, labels, strict=True)
        ]
        logger.experiment.log({"val/predictions": media, "trainer/global_step": trainer.global_step})

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        logger = _wandb_logger(trainer)
        scores = getattr(pl_module, "last_scores", {}).get("val")
        if logger is None or scores is None or not trainer.is_global_zero or trainer.sanity_checking:
            return
        import wandb

        table = wandb.Table(columns=["class", "IoU"], data=[[k, v] for k, v in scores["iou_per_class"].items()])
        logger.experiment.log({"val/iou_per_class": table, "trainer/global_step": trainer.global_step})


def wandb_callbacks(datamodule: L.LightningDataModule) -> list[Callback]:
    """The media callbacks of a segmentation DataModule (those with class names)."""
    class_names = getattr(datamodule, "class_names", None)
    return [WandbSegmentationMedia(list(class_names))] if class_names else []
