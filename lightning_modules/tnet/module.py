"""Training and evaluation of TNet (Tpap/TNet ``*/train.py``): the loss of :mod:`~lightning_modules.tnet.losses`,
the EMA baseline, Adam with one ×0.1 drop, and the logged quantities of the official code.

- The baseline ``b`` is a buffer (saved in checkpoints, so a resumed run continues from it), initialised to 0.5
  and moved after each step to ``decay · b + (1 − decay) · bracket`` (decay 0.9).
- Adam with TensorFlow's defaults (β = 0.9 / 0.999, ε = 10⁻⁷); the learning rate drops ×0.1 once, at 80 % of
  the optimiser steps (official ``--lr_scedule_1step``).
- Optional L2 penalty ``l2_weight · Σ ‖θ‖²`` on every trainable tensor but the BN ones (official ``--l2_reg``,
  applied as ``2 · tf.nn.l2_loss``).
- Logged: ``train/loss`` and its four terms, ``train/top1``, ``train/baseline``, ``train/entropy`` (mean
  entropy of the policies, nats), ``{stage}/locations`` (attended locations per image), and the top-1 / top-5
  accuracies of :class:`~lightning_modules.classification.ClassificationModule`.

The number of locations per level can differ at evaluation (``eval_locations_per_level``), without retraining.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from lightning_modules.classification import ClassificationModule, check_class_targets
from lightning_modules.network import check_images
from lightning_modules.tnet.losses import tnet_loss
from lightning_modules.tnet.network import TNet, TNetOutput, attended_locations


def policy_entropy(output: TNetOutput) -> torch.Tensor:
    """Mean entropy (nats) of all the policies ``π`` of a traversal; 0 when it has a single level."""
    if not output.probs:
        return output.logits.new_zeros(())
    probs = torch.cat(output.probs)
    return -(probs * torch.log(probs.clamp_min(1e-30))).sum(dim=1).mean()


def adam_with_one_drop(module: ClassificationModule) -> dict[str, Any]:
    """Adam with TensorFlow's ε = 10⁻⁷ on the trainable weights of ``module.network``, its learning rate
    ``module.hparams.lr`` dropping ×``lr_gamma`` once, at ``lr_drop_fraction`` of the optimiser steps."""
    optimizer = torch.optim.Adam(
        [p for p in module.network.parameters() if p.requires_grad], lr=module.hparams.lr, eps=1e-7
    )
    total = max(1, int(module.trainer.estimated_stepping_batches))
    # PiecewiseConstantDecay keeps the first rate while step <= fraction · total: floor(fraction · total) + 1 updates.
    drop_at = int(module.hparams.lr_drop_fraction * total) + 1
    scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, [drop_at], gamma=module.hparams.lr_gamma)
    return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}


class BaselineModule(ClassificationModule):
    """The official whole-image baselines' training (``*/train_bl.py``): cross-entropy, Adam (ε = 10⁻⁷) with one
    ×``lr_gamma`` drop at ``lr_drop_fraction`` of the steps, optional L2 ``l2_weight · Σ ‖θ‖²`` (fMoW 1e-5).

    Args:
        network: maps ``(B, 3, H, W)`` to ``(B, K)``, e.g. a
            :class:`~lightning_modules.tnet.baselines.WholeImageClassifier`.
        num_classes, lr, lr_drop_fraction, lr_gamma, l2_weight, top_k: as :class:`TNetModule`'s.
    """

    def __init__(
        self,
        network: nn.Module,
        num_classes: int,
        lr: float = 1e-3,
        lr_drop_fraction: float = 0.8,
        lr_gamma: float = 0.1,
        l2_weight: float = 0.0,
        top_k: Sequence[int] | None = None,
    ) -> None:
        super().__init__(network, num_classes, lr=lr, weight_decay=0.0, lr_gamma=lr_gamma, top_k=top_k)
        if not 0.0 < lr_drop_fraction <= 1.0:
            raise ValueError(f"lr_drop_fraction must be in (0, 1], got {lr_drop_fraction}.")
        self.save_hyperparameters(ignore=["network"])

    def _shared_step(self, batch: Sequence[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        logits, loss = super()._shared_step(batch)
        if self.training and self.hparams.l2_weight > 0:
            loss = loss + l2_penalty(self.network, self.hparams.l2_weight)
        return logits, loss

    def configure_optimizers(self) -> dict[str, Any]:
        return adam_with_one_drop(self)


def l2_penalty(network: nn.Module, weight: float) -> torch.Tensor:
    """``weight · Σ ‖θ‖²`` over the trainable tensors of ``network`` outside BN layers (official ``--l2_reg``,
    added as ``2 · tf.nn.l2_loss``)."""
    norms = [
        parameter.square().sum()
        for module in network.modules()
        if not isinstance(module, nn.modules.batchnorm._BatchNorm)
        for parameter in module.parameters(recurse=False)
        if parameter.requires_grad
    ]
    return weight * torch.stack(norms).sum()


class TNetModule(ClassificationModule):
    """TNet's LightningModule.

    Args:
        network: a :class:`~lightning_modules.tnet.network.TNet`.
        num_classes: K.
        lr: Adam's initial learning rate (ImageNet 1e-4, fMoW 1e-3).
        ce_weight: ``a`` (ImageNet 0.3, fMoW 0.2, fMoW fine-tune 0.05).
        reinforce_weight: ``β`` (same values as ``a`` in every recipe).
        reinforce_scale: ``λ`` (0.1).
        feature_levels: the per-feature cap (``None``: all levels; the fMoW fine-tune: 2).
        baseline_decay: the baseline's EMA decay (0.9).
        lr_drop_fraction: where the ×``lr_gamma`` drop falls, as a fraction of the optimiser steps (0.8).
        lr_gamma: the drop factor (0.1).
        l2_weight: the L2 penalty weight (0; CUB 1e-4).
        eval_locations_per_level: cells per level at validation / test (default: the network's).
        top_k: which top-k accuracies to compute (default (1, 5), or (1,) when K < 5).
    """

    def __init__(
        self,
        network: TNet,
        num_classes: int,
        lr: float = 1e-3,
        ce_weight: float = 0.3,
        reinforce_weight: float = 0.3,
        reinforce_scale: float = 0.1,
        feature_levels: int | None = None,
        baseline_decay: float = 0.9,
        lr_drop_fraction: float = 0.8,
        lr_gamma: float = 0.1,
        l2_weight: float = 0.0,
        eval_locations_per_level: Sequence[int] | None = None,
        top_k: Sequence[int] | None = None,
    ) -> None:
        super().__init__(network, num_classes, lr=lr, weight_decay=0.0, lr_gamma=lr_gamma, top_k=top_k)
        if not 0.0 < lr_drop_fraction <= 1.0:
            raise ValueError(f"lr_drop_fraction must be in (0, 1], got {lr_drop_fraction}.")
        if not 0.0 <= baseline_decay < 1.0:
            raise ValueError(f"baseline_decay must be in [0, 1), got {baseline_decay}.")
        if feature_levels is not None and feature_levels < 2:
            raise ValueError(f"feature_levels must be None (all levels) or >= 2, got {feature_levels}.")
        self.save_hyperparameters(ignore=["network"])
        self.register_buffer("baseline", torch.tensor(0.5))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.traverse(images).logits

    @property
    def locations_per_image(self) -> int:
        """Attended locations per image at evaluation."""
        counts = self.hparams.eval_locations_per_level
        return attended_locations(self.network.locations_per_level if counts is None else counts)

    def traverse(self, images: torch.Tensor) -> TNetOutput:
        """The whole traversal of ``images``: the training cell counts in training mode, the evaluation ones
        (``eval_locations_per_level``) otherwise."""
        counts = None if self.training else self.hparams.eval_locations_per_level
        return self.network(images, locations_per_level=counts)

    def _checked(self, batch: Sequence[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        images, target = batch[0], batch[1]
        check_images(images)
        check_class_targets(target, self.num_classes, images.shape[0])
        return images, target

    def training_step(self, batch: Sequence[torch.Tensor], batch_idx: int) -> torch.Tensor:
        images, target = self._checked(batch)
        output = self.traverse(images)
        terms = tnet_loss(
            output,
            target,
            self.baseline,
            self.hparams.ce_weight,
            self.hparams.reinforce_weight,
            self.hparams.reinforce_scale,
            self.hparams.feature_levels,
        )
        loss = terms.total + (l2_penalty(self.network, self.hparams.l2_weight) if self.hparams.l2_weight > 0 else 0.0)
        if not torch.isfinite(loss):
            raise FloatingPointError(
                f"the TNet training loss is {float(loss.detach())} at step {self.global_step}. Lower the learning "
                "rate, or check the images for NaN / Inf values."
            )
        bracket = terms.baseline_target
        if self._trainer is not None:
            # One baseline for the global batch, as the official MirroredStrategy variable (aggregation=MEAN).
            bracket = self.trainer.strategy.reduce(bracket, reduce_op="mean")
        decay = self.hparams.baseline_decay
        self.baseline.mul_(decay).add_((1.0 - decay) * bracket.to(self.baseline))
        size = images.shape[0]
        self.log("train/loss", loss, prog_bar=True, batch_size=size)
        for name in ("cross_entropy", "feature_cross_entropy", "reinforce", "feature_reinforce"):
            self.log(f"train/{name}", getattr(terms, name), batch_size=size)
        top1 = (output.logits.detach().argmax(dim=1) == target).float().mean()
        self.log("train/top1", top1, batch_size=size)
        self.log("train/baseline", self.baseline, batch_size=size)
        self.log("train/entropy", policy_entropy(output).detach(), batch_size=size)
        self.log("train/locations", float(output.locations_per_image), batch_size=size)
        return loss

    def _evaluate(self, batch: Sequence[torch.Tensor], stage: str, metrics: nn.ModuleDict) -> None:
        images, target = self._checked(batch)
        output = self.traverse(images)
        for metric in metrics.values():
            metric.update(output.logits, target)
        size = images.shape[0]
        self.log(f"{stage}/loss", nn.functional.cross_entropy(output.logits, target), batch_size=size, sync_dist=True)
        self.log(f"{stage}/locations", float(output.locations_per_image), batch_size=size)

    def predict_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        """Class ids ``(B,)`` for a batch of images, or of ``(images, labels)`` pairs."""
        images = batch[0] if isinstance(batch, (tuple, list)) else batch
        return self.traverse(images).logits.argmax(dim=1)

    def configure_optimizers(self) -> dict[str, Any]:
        return adam_with_one_drop(self)
