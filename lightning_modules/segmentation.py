"""SegmentationModule: the LightningModule every segmentation paper builds on.

It holds the training logic shared by FCN, DeepLabV3+, DANet, SANet and Gated-SCNN: one weighted
cross-entropy per network output, SGD with a poly schedule and a 10× head learning rate, and the
dataset-level scores. A paper subclasses it only to add its own loss terms.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import lightning as L
import torch
from torch import nn
from torchmetrics import MeanMetric

from lightning_modules.evaluation import zoom_center
from lightning_modules.inference import predict
from lightning_modules.losses import labelled_pixels, pixel_cross_entropy
from lightning_modules.metrics import BoundaryFScore, SegmentationScores
from lightning_modules.network import check_outputs

POLY_INTERVALS = ("step", "epoch")


def check_targets(target: torch.Tensor, num_classes: int, ignore_index: int) -> None:
    """Raise a ``ValueError`` unless ``target`` holds class ids in ``[0, num_classes)`` or ``ignore_index``."""
    if target.is_floating_point() or target.dtype == torch.bool:
        raise ValueError(f"labels must be an integer tensor (int64 class ids), got dtype {target.dtype}.")
    invalid = ((target < 0) | (target >= num_classes)) & (target != ignore_index)
    if invalid.any():
        bad = torch.unique(target[invalid]).tolist()[:10]
        raise ValueError(
            f"labels contain values {bad} outside the valid range: expected class ids 0..{num_classes - 1} "
            f"or {ignore_index} (ignored). Check the dataset's label encoding and num_classes={num_classes}."
        )


def _terms(losses: Mapping[str, torch.Tensor]) -> dict[str, float]:
    return {key: float(value.detach()) for key, value in losses.items()}


class SegmentationModule(L.LightningModule):
    """Training, validation, test and prediction of a segmentation network.

    Args:
        network: an ``nn.Module`` mapping ``(B, C, H, W)`` images to ``{"out": (B, K, H, W), ...}``
            logits; if it has a ``backbone`` submodule, that part gets the backbone learning rate.
        num_classes: K.
        loss_weights: cross-entropy weight of each output key, e.g. ``{"out": 1.0, "aux": 0.2}``;
            keys the network does not return raise an error, outputs without a weight get no loss. Each
            term is the mean over the batch's labelled pixels, 0 for a batch without one
            (:func:`~lightning_modules.losses.pixel_cross_entropy`); ``val/loss`` / ``test/loss`` are means
            over the split's labelled pixels.
        lr: backbone learning rate; the head trains at ``lr * head_lr_mult``.
        momentum, weight_decay: SGD settings (0.9, 1e-4 in DANet / SANet).
        poly_power: exponent of the poly schedule ``lr · (1 - step / total_steps) ** power``.
        poly_interval: ``"step"``: the schedule decays every optimizer step (PyTorch-Encoding, mmsegmentation);
            ``"epoch"``: once per epoch, ``lr · (1 - epoch / max_epochs) ** power`` (Gated-SCNN's official code).
        ignore_index: label value excluded from losses and scores.
        class_names: names used in per-class logs (``val/IoU/<name>``).
        eval_mode, eval_kwargs: how validation and test predict: ``"single"``, ``"multiscale"``
            or ``"sliding"``, with the arguments of :func:`lightning_modules.inference.predict`.
        boundary_thresholds: tolerances (fractions of the image diagonal) of the boundary F-score that
            validation and test also compute (Gated-SCNN Sec. 4.2, :class:`~lightning_modules.metrics.BoundaryFScore`),
            logged as ``val/boundary_F/<threshold>`` and per class ``val/boundary_F/<threshold>/<class>``;
            empty: not computed.
        crop_factors: Gated-SCNN's distance-based evaluation (Sec. 4.3): the mIoU of the prediction on centre
            crops with this many pixels removed from each side (:func:`~lightning_modules.evaluation.zoom_center`),
            logged as ``val/crop_mIoU/<factor>``; 0 is the full image.
        crop_reference_height: ``None``: crop factors are pixels of the evaluated images; a height (1024 for the
            paper's Cityscapes factors): factors are pixels at that height, scaled to the evaluated images
            (``round(factor · H / crop_reference_height)``), so a small-image run reports the paper's factors.

    The training step itself never waits for the device: labels of ``(images, labels)`` batches are range-checked
    on the host before the batch moves (:meth:`on_before_batch_transfer`), and the loss is checked for NaN / Inf
    after the step (:meth:`on_train_batch_end`, which reads one number, as the progress bar's loss does).
    """

    # The validation score that picks the best checkpoint (higher is better).
    monitor = "val/mIoU"

    def __init__(
        self,
        network: nn.Module,
        num_classes: int,
        loss_weights: Mapping[str, float] | None = None,
        lr: float = 0.01,
        head_lr_mult: float = 10.0,
        momentum: float = 0.9,
        weight_decay: float = 1e-4,
        poly_power: float = 0.9,
        poly_interval: str = "step",
        ignore_index: int = 255,
        class_names: Sequence[str] | None = None,
        eval_mode: str = "single",
        eval_kwargs: Mapping[str, Any] | None = None,
        boundary_thresholds: Sequence[float] = (),
        crop_factors: Sequence[int] = (),
        crop_reference_height: int | None = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters(ignore=["network"])
        if poly_interval not in POLY_INTERVALS:
            raise ValueError(f"poly_interval must be one of {POLY_INTERVALS}, got {poly_interval!r}.")
        self.network = network
        self.num_classes = num_classes
        self.loss_weights = dict(loss_weights or {"out": 1.0})
        if class_names is not None and len(class_names) != num_classes:
            raise ValueError(f"class_names has {len(class_names)} names but num_classes={num_classes}.")
        self.class_names = list(class_names) if class_names is not None else [str(i) for i in range(num_classes)]
        self.ignore_index = ignore_index
        self.eval_mode = eval_mode
        self.eval_kwargs = dict(eval_kwargs or {})
        self.val_scores = SegmentationScores(num_classes, ignore_index=ignore_index, validate_args=False)
        self.test_scores = SegmentationScores(num_classes, ignore_index=ignore_index, validate_args=False)
        # The split's loss is a mean over its labelled pixels: each batch's mean weighted by its labelled
        # pixel count, so a batch without labels counts for nothing (a per-batch mean would give it weight).
        # A NaN batch loss raises in _evaluate before it reaches these: MeanMetric would drop it with a warning
        # (and its nan_strategy="disable" ignores the weights, torchmetrics 1.9).
        self.val_loss = MeanMetric()
        self.test_loss = MeanMetric()
        self.boundary_thresholds = tuple(boundary_thresholds)
        if any(not isinstance(crop, int) or isinstance(crop, bool) or crop < 0 for crop in crop_factors):
            raise ValueError(f"crop_factors must be non-negative pixel counts, got {tuple(crop_factors)}.")
        if crop_reference_height is not None and crop_reference_height < 1:
            raise ValueError(f"crop_reference_height must be a positive height or None, got {crop_reference_height}.")
        self.crop_factors = tuple(crop_factors)
        self.crop_reference_height = crop_reference_height
        stages = ("val", "test")
        self.boundary_scores = nn.ModuleDict(
            {
                stage: BoundaryFScore(num_classes, self.boundary_thresholds, ignore_index, validate_args=False)
                for stage in (stages if self.boundary_thresholds else ())
            }
        )
        self.crop_scores = nn.ModuleDict(
            {
                f"{stage}_{crop}": SegmentationScores(num_classes, ignore_index=ignore_index, validate_args=False)
                for stage in stages
                for crop in self.crop_factors
            }
        )
        # The terms of the last training step, checked after it (on_train_batch_end) so that the step itself
        # never waits for the device.
        self._step_losses: dict[str, torch.Tensor] = {}
        self.last_scores: dict[str, dict[str, Any]] = {}

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.network(images)

    def compute_losses(self, outputs: Mapping[str, torch.Tensor], target: torch.Tensor) -> dict[str, torch.Tensor]:
        """Weighted cross-entropy per output key; ``"loss"`` is their sum. Subclasses add terms."""
        missing = [key for key in self.loss_weights if key not in outputs]
        if missing:
            raise ValueError(
                f"loss_weights name outputs {missing} that the network does not return (it returns {sorted(outputs)})."
            )
        losses = {
            f"loss_{key}": weight * pixel_cross_entropy(outputs[key], target, self.ignore_index)
            for key, weight in self.loss_weights.items()
            if weight != 0
        }
        losses["loss"] = torch.stack(list(losses.values())).sum()
        return losses

    def on_before_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        """Check the labels of ``(images, labels)`` batches while they are still on the host (no device sync)."""
        if isinstance(batch, (tuple, list)) and len(batch) >= 2 and isinstance(batch[1], torch.Tensor):
            check_targets(batch[1], self.num_classes, self.ignore_index)
        return batch

    def _shared_step(self, batch: Sequence[torch.Tensor]) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        images, target = batch[0], batch[1]
        outputs = check_outputs(self.network(images), target.shape[0], target.shape[-2:])
        losses = self.compute_losses(outputs, target)
        return outputs, losses

    def training_step(self, batch: Sequence[torch.Tensor], batch_idx: int) -> torch.Tensor:
        _, losses = self._shared_step(batch)
        self._step_losses = {key: value.detach() for key, value in losses.items()}
        batch_size = batch[0].shape[0]
        for key, value in losses.items():
            self.log(f"train/{key}", value, prog_bar=key == "loss", batch_size=batch_size)
        return losses["loss"]

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        """Stop the run with a :class:`FloatingPointError` naming the terms when the step's loss is NaN / Inf."""
        losses, self._step_losses = self._step_losses, {}
        if losses and not torch.isfinite(losses["loss"]):
            raise FloatingPointError(
                f"the training loss is not finite at step {self.global_step}: {_terms(losses)}. "
                "Lower the learning rate, or check the images for NaN / Inf values."
            )

    def _evaluate(
        self, batch: Sequence[torch.Tensor], batch_idx: int, stage: str, scores: SegmentationScores, loss: MeanMetric
    ) -> None:
        outputs, losses = self._shared_step(batch)
        if not torch.isfinite(losses["loss"]):
            raise FloatingPointError(
                f"the {stage} loss of batch {batch_idx} is not finite: {_terms(losses)}. The network's outputs hold "
                "NaN / Inf (a diverged checkpoint?), or the images do."
            )
        if self.eval_mode == "single":
            logits = outputs["out"]
        else:
            logits = predict(self.network, batch[0], mode=self.eval_mode, **self.eval_kwargs)
        preds = logits.argmax(dim=1)
        scores.update(preds, batch[1])
        if self.boundary_thresholds:
            self.boundary_scores[stage].update(preds, batch[1])
        for crop in self.crop_factors:
            self.crop_scores[f"{stage}_{crop}"].update(*self._crop_prediction(batch[0], batch[1], crop, preds))
        loss.update(losses["loss"].detach(), weight=labelled_pixels(batch[1], self.ignore_index))
        self.log(f"{stage}/loss", loss, batch_size=batch[0].shape[0])

    def crop_pixels(self, crop: int, height: int) -> int:
        """The pixels :meth:`_crop_prediction` removes per side for crop factor ``crop`` on images ``height`` tall."""
        if self.crop_reference_height is None:
            return crop
        return round(crop * height / self.crop_reference_height)

    def _crop_prediction(
        self, images: torch.Tensor, labels: torch.Tensor, crop: int, preds: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        pixels = self.crop_pixels(crop, labels.shape[-2])
        if pixels == 0:
            return preds, labels
        zoomed, zoomed_labels = zoom_center(images, labels, pixels)
        logits = predict(self.network, zoomed, mode=self.eval_mode, **self.eval_kwargs)
        return logits.argmax(dim=1), zoomed_labels

    def _log_scores(self, stage: str, scores: SegmentationScores) -> None:
        result = scores.compute()
        scores.reset()
        self.log(f"{stage}/mIoU", result["mIoU"].float(), prog_bar=True)
        self.log(f"{stage}/pixel_acc", result["pixel_acc"].float())
        self.log(f"{stage}/mean_class_acc", result["mean_class_acc"].float())
        per_class = dict(zip(self.class_names, result["iou"].tolist(), strict=True))
        for name, value in per_class.items():
            self.log(f"{stage}/IoU/{name}", value)
        self.last_scores[stage] = {
            "mIoU": float(result["mIoU"]),
            "pixel_acc": float(result["pixel_acc"]),
            "mean_class_acc": float(result["mean_class_acc"]),
            "iou_per_class": per_class,
        }
        if self.boundary_thresholds:
            self._log_boundary_scores(stage)
        for crop in self.crop_factors:
            metric = self.crop_scores[f"{stage}_{crop}"]
            value = float(metric.compute()["mIoU"])
            metric.reset()
            self.log(f"{stage}/crop_mIoU/{crop}", value)
            self.last_scores[stage][f"crop_mIoU/{crop}"] = value

    def _log_boundary_scores(self, stage: str) -> None:
        metric = self.boundary_scores[stage]
        result = metric.compute()
        metric.reset()
        per_class: dict[str, dict[str, float]] = {}
        for threshold, mean, row in zip(
            self.boundary_thresholds, result["f_mean"].tolist(), result["f_per_class"].tolist(), strict=True
        ):
            key = f"boundary_F/{threshold:g}"
            self.log(f"{stage}/{key}", mean)
            self.last_scores[stage][key] = mean
            per_class[key] = dict(zip(self.class_names, row, strict=True))
            for name, value in per_class[key].items():
                self.log(f"{stage}/{key}/{name}", value)
        self.last_scores[stage]["boundary_F_per_class"] = per_class

    def validation_step(self, batch: Sequence[torch.Tensor], batch_idx: int) -> None:
        self._evaluate(batch, batch_idx, "val", self.val_scores, self.val_loss)

    def on_validation_epoch_end(self) -> None:
        self._log_scores("val", self.val_scores)

    def test_step(self, batch: Sequence[torch.Tensor], batch_idx: int) -> None:
        self._evaluate(batch, batch_idx, "test", self.test_scores, self.test_loss)

    def on_test_epoch_end(self) -> None:
        self._log_scores("test", self.test_scores)

    def predict_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        """Class ids ``(B, H, W)`` for a batch of images, or of ``(images, labels)`` pairs."""
        images = batch[0] if isinstance(batch, (tuple, list)) else batch
        return predict(self.network, images, mode=self.eval_mode, **self.eval_kwargs).argmax(dim=1)

    def parameter_groups(self) -> list[dict[str, Any]]:
        """Backbone parameters at ``lr``, everything else at ``lr * head_lr_mult``."""
        backbone = getattr(self.network, "backbone", None)
        backbone_ids = {id(p) for p in backbone.parameters()} if isinstance(backbone, nn.Module) else set()
        params = [p for p in self.network.parameters() if p.requires_grad]
        groups = [
            {
                "params": [p for p in params if id(p) in backbone_ids],
                "lr": self.hparams.lr,
                "name": "backbone",
            },
            {
                "params": [p for p in params if id(p) not in backbone_ids],
                "lr": self.hparams.lr * self.hparams.head_lr_mult,
                "name": "head",
            },
        ]
        return [group for group in groups if group["params"]]

    def configure_optimizers(self) -> dict[str, Any]:
        optimizer = torch.optim.SGD(
            self.parameter_groups(),
            lr=self.hparams.lr,
            momentum=self.hparams.momentum,
            weight_decay=self.hparams.weight_decay,
        )
        interval = self.hparams.poly_interval
        if interval == "epoch":
            if self.trainer.max_epochs is None or self.trainer.max_epochs < 1:
                raise ValueError(
                    f'poly_interval="epoch" decays the learning rate to 0 over max_epochs, which must be a positive '
                    f"number of epochs; the Trainer has max_epochs={self.trainer.max_epochs}."
                )
            total = self.trainer.max_epochs
        else:
            total = max(1, int(self.trainer.estimated_stepping_batches))
        scheduler = torch.optim.lr_scheduler.PolynomialLR(optimizer, total_iters=total, power=self.hparams.poly_power)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": interval}}
