"""Weights & Biases tracking: offline by default, online on request, never blocking a run; the CSV log.

Each run gets ``group`` = experiment, ``name`` = variant, tags = family / experiment / profile
(:func:`wandb_tags`), the paper, table and recipe as config; its W&B id is kept in the run folder
(``wandb_id``) so that a resumed run continues the same W&B run. ``offline`` writes
``<run dir>/wandb/offline-run-*`` that ``wandb sync`` uploads later; ``disabled`` writes nothing.

The CSV log (:class:`ResumableCSVLogger`) continues a resumed run's ``logs/metrics.csv``, so that it holds
every logged step exactly once.
"""

from __future__ import annotations

import csv
import logging
import os
import sys
import uuid
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.loggers import CSVLogger, WandbLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter
from lightning.pytorch.loggers.logger import rank_zero_experiment

from datamodules.base import SegmentationDataModule
from datamodules.synthetic import SyntheticSegmentationDataModule
from datamodules.transforms import IMAGENET_MEAN, IMAGENET_STD
from experiments.base import Experiment, Variant
from experiments.choices import WANDB_MODES
from experiments.run_folder import atomic_text_file

WandbMode = Literal["offline", "online", "disabled"]
PROJECT = "attention-papers"


def _netrc_or_env() -> bool:
    """Whether an API key is configured, without contacting the server."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    netrc = Path(os.environ.get("NETRC", Path.home() / ".netrc"))
    return netrc.is_file() and "api.wandb.ai" in netrc.read_text(errors="ignore")


def wandb_tags(experiment: Experiment, recipe: Mapping[str, Any]) -> list[str]:
    """The run's W&B tags: the experiment's family (``danet``), the experiment (``danet.ablation``) and the profile.

    W&B refuses tags over 64 characters (and then no run starts), which a table's title often is: the paper and
    the table go in the run's config instead.
    """
    return [experiment.name.split(".")[0], experiment.name, recipe["profile"]]


def make_wandb_logger(
    mode: WandbMode, run_dir: Path, experiment: Experiment, variant: Variant, recipe: Mapping[str, Any]
) -> WandbLogger | None:
    """A started ``WandbLogger``, or ``None`` when disabled or when W&B cannot start.

    The W&B run is named ``<variant> · <run folder>`` (``DANet-R50 · small-seed1-81969ba8``), so that the runs of one
    row with other seeds or ``--set`` overrides tell themselves apart in the W&B table; the experiment is its group.
    """
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
        name=f"{variant.name} · {run_dir.name}",
        group=experiment.name,
        tags=wandb_tags(experiment, recipe),
        config={"paper": experiment.paper, "table": experiment.table, **recipe},
        save_dir=str(run_dir),
        offline=mode == "offline",
        id=run_id,
        resume="allow",
        settings=wandb.Settings(init_timeout=30, silent=True),
    )
    # Lightning always passes anonymous=None to wandb.init, on which wandb warns that the setting "has no
    # effect" on every run; the key is dropped so that the warning, which no user can act on, is not printed.
    logger._wandb_init.pop("anonymous", None)
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
    """The media callbacks of a segmentation DataModule (masks and per-class IoU); none for classification data."""
    if not isinstance(datamodule, (SegmentationDataModule, SyntheticSegmentationDataModule)):
        return []
    return [WandbSegmentationMedia(list(datamodule.class_names))]


def _write_csv_atomic(path: Path, fieldnames: list[str], rows: list[dict[str, Any]]) -> None:
    """``path`` holds the old rows or the new ones, never half of them."""
    with atomic_text_file(path, newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=fieldnames)
        writer.writeheader()
        writer.writerows(rows)


def _read_csv(path: Path) -> tuple[list[str], list[dict[str, str]], bool]:
    """Header and rows of ``path``, and whether its last line was cut short by a kill (no line end; left out)."""
    lines = path.read_text().splitlines(keepends=True)
    cut = bool(lines) and not lines[-1].endswith("\n")
    reader = csv.DictReader(lines[:-1] if cut else lines)
    rows = list(reader)
    return list(reader.fieldnames or []), rows, cut


def _step(row: dict[str, Any]) -> int | None:
    try:
        return int(row["step"])
    except (KeyError, TypeError, ValueError):
        return None


class ResumedExperimentWriter(ExperimentWriter):
    """Lightning's CSV writer, continuing an existing ``metrics.csv`` instead of deleting it.

    Lightning's writer deletes the file when it starts, so a resumed run would keep only the rows logged
    after its resume point. This one keeps the rows logged before it. At the first save, the file's rows
    from the first step this writer logs on are dropped: a killed run logged them after its last checkpoint,
    and the resumed run logs those steps again. The file is then rewritten atomically; later saves append,
    as Lightning's do.
    """

    def __init__(self, log_dir: str) -> None:
        super().__init__(log_dir=log_dir)
        self._continued = False

    def _check_log_dir_exists(self) -> None:
        """Keeps the files of the folder (Lightning's removes ``metrics.csv``)."""

    def save(self) -> None:
        if self._continued or not self.metrics:
            super().save()
            return
        path = Path(self.metrics_file_path)
        header, earlier, cut = _read_csv(path) if path.is_file() else ([], [], False)
        first = min(row["step"] for row in self.metrics)
        kept = [row for row in earlier if (step := _step(row)) is not None and step < first]
        if dropped := len(earlier) - len(kept) + cut:
            warnings.warn(
                f"{path}: replaced {dropped} row(s) of an earlier attempt that did not finish (those from step "
                f"{first} on, or cut short by a kill); this run logs these steps again.",
                stacklevel=2,
            )
        self.metrics_keys = sorted(set(header) | set().union(*self.metrics))
        _write_csv_atomic(path, self.metrics_keys, kept + self.metrics)
        self.metrics = []
        self._continued = True

    def _rewrite_with_new_header(self, fieldnames: list[str]) -> None:
        path = Path(self.metrics_file_path)
        _write_csv_atomic(path, fieldnames, _read_csv(path)[1])


class ResumableCSVLogger(CSVLogger):
    """``CSVLogger`` writing through :class:`ResumedExperimentWriter`: a resumed run's ``metrics.csv`` holds
    every logged step once, those before the resume point included."""

    @property
    @rank_zero_experiment
    def experiment(self) -> ResumedExperimentWriter:
        if self._experiment is None:
            self._fs.makedirs(self.root_dir, exist_ok=True)
            self._experiment = ResumedExperimentWriter(log_dir=self.log_dir)
        return self._experiment


class LogEveryEpoch(Callback):
    """Lowers the Trainer's ``log_every_n_steps`` to the number of training batches of an epoch when it has fewer.

    With fewer batches than the interval (Lightning's default 50; CamVid's 367 images in batches of 8 make 45),
    no training step of an epoch would reach the logs, and Lightning warns about it on every run.
    """

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if stage != "fit" or trainer.datamodule is None:
            return
        batches = len(trainer.datamodule.train_dataloader())
        trainer.log_every_n_steps = max(1, min(trainer.log_every_n_steps, batches))


@contextmanager
def finishing_wandb() -> Iterator[None]:
    """Ends the W&B run that the body started, if any, when the body ends (with exit code 1 when it raised).

    Lightning's ``WandbLogger`` never calls ``wandb.finish``: without it the next variant of the same command
    would log into this variant's W&B run ("There is a wandb run already in progress ... will reuse this run").
    """
    failed = True
    try:
        yield
        failed = False
    finally:
        wandb = sys.modules.get("wandb")  # imported only when a W&B logger was made
        if wandb is not None and wandb.run is not None:
            wandb.finish(exit_code=1 if failed else 0)


def quiet_lightning() -> None:
    """Keep what a user can act on from Lightning's console output, for the command line and the notebooks.

    Left out: Lightning's start-up notes ("GPU available", "TPU available", "Seed set to", advertising tips,
    "Loading `train_dataloader`..."; the runner prints one line with the device and precision instead), its
    note that a run folder's checkpoint directory is not empty (the runner resumes from it on purpose), its
    note that the LightningModule's ``on_before_batch_transfer`` is used rather than the DataModule's (the
    segmentation modules check labels there, on the host, on purpose; the DataModules do not override it), and
    the FutureWarning of Lightning 2.6 on torch 2.14 about its own use of a deprecated pytree API. Lightning's
    other warnings still show.
    """
    for name in ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.seed"):
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=r".*LeafSpec.*")
    warnings.filterwarnings("ignore", message=r"Checkpoint directory .* exists and is not empty")
    warnings.filterwarnings("ignore", message=r"You have overridden `on_before_batch_transfer` in `LightningModule`")
