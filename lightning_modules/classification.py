"""ClassificationModule: ImageNet-style training of the SE / ECA / CBAM ResNets (or any classifier).

The three papers share one recipe (SE README, ECANet ``main.py``, attention-module
``train_imagenet.py``): cross-entropy, SGD with momentum 0.9 and weight decay 1e-4 on every
parameter, learning rate 0.1 for a batch of 256 (scaled linearly with the batch), divided by 10
every 30 epochs, 100 epochs; top-1 / top-5 accuracy of a 224 centre crop. The values sit in the
experiments' recipes; this module holds the logic.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics.classification import MulticlassAccuracy

from lightning_modules.network import check_images


def scaled_lr(base_lr: float, batch_size: int, base_batch_size: int = 256) -> float:
    """The linear scaling rule: ``base_lr · batch_size / base_batch_size`` (0.1 at 256 → 0.4 at 1024)."""
    if batch_size < 1 or base_batch_size < 1:
        raise ValueError(f"batch sizes must be positive, got {batch_size} and {base_batch_size}.")
    return base_lr * batch_size / base_batch_size


def check_class_targets(target: torch.Tensor, num_classes: int, batch: int) -> None:
    """Raise a ``ValueError`` unless ``target`` is ``(batch,)`` int64-like class ids in ``[0, num_classes)``."""
    if target.is_floating_point() or target.dtype == torch.bool:
        raise ValueError(f"labels must be an integer tensor of class ids, got dtype {target.dtype}.")
    if target.shape != (batch,):
        raise ValueError(f"labels must have shape (B,) = ({batch},), got {tuple(target.shape)}.")
    invalid = (target < 0) | (target >= num_classes)
    if invalid.any():
        bad = torch.unique(target[invalid]).tolist()[:10]
        raise ValueError(
            f"labels contain values {bad} outside 0..{num_classes - 1}: check the dataset's class indices "
            f"and num_classes={num_classes}."
        )


def check_logits(logits: Any, batch: int, num_classes: int) -> torch.Tensor:
    """Return ``logits`` if it is a ``(batch, num_classes)`` tensor."""
    if not isinstance(logits, torch.Tensor) or logits.shape != (batch, num_classes):
        found = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
        raise ValueError(
            f"the network must return logits of shape (B, num_classes) = ({batch}, {num_classes}), got {found}."
        )
    return logits


class ClassificationModule(L.LightningModule):
    """Training, validation and test of an image classifier with top-k accuracy.

    Args:
        network: an ``nn.Module`` mapping ``(B, C, H, W)`` images to ``(B, num_classes)`` logits.
        num_classes: K.
        lr: SGD learning rate (already scaled to the batch size: see :func:`scaled_lr`).
        momentum, weight_decay, nesterov: SGD settings (0.9, 1e-4, False in the three papers).
        lr_step_epochs, lr_gamma: step decay, ``lr · gamma ** (epoch // lr_step_epochs)`` (30, 0.1).
        label_smoothing: ε of the cross-entropy (0 in the papers).
        top_k: which top-k accuracies to compute; default (1, 5), or (1,) when K < 5.

    Validation logs ``val/top1``, ``val/top5``, ``val/loss`` and keeps the accuracies (fractions in [0, 1])
    in ``last_scores["val"]`` for the results store.
    """

    # The validation score that picks the best checkpoint (higher is better).
    monitor = "val/top1"

    def __init__(
        self,
        network: nn.Module,
        num_classes: int,
        lr: float = 0.1,
        momentum: float = 0.9,
        weight_decay: float = 1e-4,
        nesterov: bool = False,
        lr_step_epochs: int = 30,
        lr_gamma: float = 0.1,
        label_smoothing: float = 0.0,
        top_k: Sequence[int] | None = None,
    ) -> None:
        super().__init__()
        if num_classes < 2:
            raise ValueError(f"num_classes must be at least 2, got {num_classes}.")
        top_k = tuple(top_k) if top_k is not None else ((1, 5) if num_classes >= 5 else (1,))
        if not top_k or any(k < 1 or k > num_classes for k in top_k):
            raise ValueError(f"top_k values must be in 1..num_classes={num_classes}, got {top_k}.")
        if not 0.0 <= label_smoothing < 1.0:
            raise ValueError(f"label_smoothing must be in [0, 1), got {label_smoothing}.")
        if lr_step_epochs < 1:
            raise ValueError(f"lr_step_epochs must be >= 1, got {lr_step_epochs}.")
        self.save_hyperparameters(ignore=["network"])
        self.network = network
        self.num_classes = num_classes
        self.top_k = top_k
        self.val_metrics = self._accuracies()
        self.test_metrics = self._accuracies()
        self.last_scores: dict[str, dict[str, float]] = {}

    def _accuracies(self) -> nn.ModuleDict:
        return nn.ModuleDict(
            {f"top{k}": MulticlassAccuracy(self.num_classes, top_k=k, average="micro") for k in self.top_k}
        )

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.network(images)

    def _shared_step(self, batch: Sequence[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        images, target = batch[0], batch[1]
        check_images(images)
        check_class_targets(target, self.num_classes, images.shape[0])
        logits = check_logits(self.network(images), images.shape[0], self.num_classes)
        loss = F.cross_entropy(logits, target, label_smoothing=self.hparams.label_smoothing)
        return logits, loss

    def training_step(self, batch: Sequence[torch.Tensor], batch_idx: int) -> torch.Tensor:
        _, loss = self._shared_step(batch)
        if not torch.isfinite(loss):
            raise FloatingPointError(
                f"the training loss is {float(loss.detach())} at step {self.global_step}. Lower the learning rate, "
                "or check the images for NaN / Inf values."
            )
        self.log("train/loss", loss, prog_bar=True, batch_size=batch[0].shape[0])
        return loss

    def _evaluate(self, batch: Sequence[torch.Tensor], stage: str, metrics: nn.ModuleDict) -> None:
        logits, loss = self._shared_step(batch)
        for metric in metrics.values():
            metric.update(logits, batch[1])
        self.log(f"{stage}/loss", loss, batch_size=batch[0].shape[0], sync_dist=True)

    def _log_scores(self, stage: str, metrics: nn.ModuleDict) -> None:
        scores = {}
        for name, metric in metrics.items():
            value = metric.compute()
            metric.reset()
            self.log(f"{stage}/{name}", value, prog_bar=name == "top1")
            scores[name] = float(value)
        self.last_scores[stage] = scores

    def validation_step(self, batch: Sequence[torch.Tensor], batch_idx: int) -> None:
        self._evaluate(batch, "val", self.val_metrics)

    def on_validation_epoch_end(self) -> None:
        self._log_scores("val", self.val_metrics)

    def test_step(self, batch: Sequence[torch.Tensor], batch_idx: int) -> None:
        self._evaluate(batch, "test", self.test_metrics)

    def on_test_epoch_end(self) -> None:
        self._log_scores("test", self.test_metrics)

    def predict_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        """Class ids ``(B,)`` for a batch of images, or of ``(images, labels)`` pairs."""
        images = batch[0] if isinstance(batch, (tuple, list)) else batch
        return self.network(images).argmax(dim=1)

    def configure_optimizers(self) -> dict[str, Any]:
        optimizer = torch.optim.SGD(
            [p for p in self.network.parameters() if p.requires_grad],
            lr=self.hparams.lr,
            momentum=self.hparams.momentum,
            weight_decay=self.hparams.weight_decay,
            nesterov=self.hparams.nesterov,
        )
        scheduler = torch.optim.lr_scheduler.StepLR(
            optimizer, step_size=self.hparams.lr_step_epochs, gamma=self.hparams.lr_gamma
        )
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "epoch"}}
