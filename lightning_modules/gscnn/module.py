"""GSCNNModule: Gated-SCNN's joint training loss on a :class:`~lightning_modules.segmentation.SegmentationModule`.

The official ``JointEdgeSegLoss`` (``loss.py``) sums four terms:

    L = seg_weight · L_seg + edge_weight · L_edge + attention_weight · L_att + dual_weight · L_dual

with the functions of :mod:`lightning_modules.gscnn.losses`, the boundary targets of
:func:`~lightning_modules.gscnn.edges.edge_targets` computed from the (augmented) labels on the device,
as the official data loader does after its augmentations. The defaults 1 / 20 / 1 / 1 are the official
weights 1 / 1 / 1 / 1 with the factor 20 that ``JointEdgeSegLoss`` hard-codes on the edge term, applied
once here (passing 20 on top of the hard-coded factor gave ×400 in issue #53). Each term is computed
per image and averaged over the batch: the official run trains one image per GPU on 8 GPUs
(DataParallel, ``bs_mult = 1``, official ``train.py``) and averages the per-GPU losses, so the terms match it for
any batch size.

Validation and test log the plain unweighted cross-entropy of ``"out"`` over the labelled pixels, the
``val/loss`` of the other segmentation modules: deterministic (no Gumbel noise) and comparable between
GSCNN and its baseline without an edge output. The official ``validate`` logs something else: the sum
of the four terms of ``criterion_val`` (``JointEdgeSegLoss(mode="val")``: plain cross-entropy for L_seg
and L_att, the ×20 edge BCE and the noisy dual loss), which is not comparable with our ``val/loss``.

Where the released code departs from the paper, the default is the fixed behaviour and a switch gives
the released one:

===========================================================  =====================  ==============================
Official behaviour                                           Default here           Switch reproducing it
===========================================================  =====================  ==============================
Dual-task loss without smoothing or spatial derivative       ``dual_mode="paper"``  ``dual_mode="released"``
(early returns in ``convTri`` / ``gradient_central_diff``,                          (K = 19 only, as hard-coded)
issue #16): an elementwise L1 between soft and one-hot maps
Gumbel-softmax temperature 0.5 (paper: τ = 1)                ``tau=None``: 1.0      ``tau=0.5`` (the default of
                                                                                    ``dual_mode="released"``)
Edge BCE on the sigmoid output: a double sigmoid (#62)       ``edge_bce="paper"``   ``edge_bce="released"``
Boundary targets from ``label == i + 1``: road (trainId 0)   ``onehot_offset=0``    ``onehot_offset=1``
has no channel (#19)
Canny on the normalised image cast to uint8 (#22)            network's default      ``canny_mode="released"`` of the
                                                                                    network (``gscnn/canny.py``)
===========================================================  =====================  ==============================

Every statistic (class weights, edge weights, boundary targets, Gumbel noise) is computed in torch on
the device: the training step never waits for the host.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from lightning_modules.gscnn.edges import ONEHOT_OFFSETS, edge_targets
from lightning_modules.gscnn.losses import (
    MODES,
    RELEASED_NUM_CLASSES,
    balanced_edge_bce,
    dual_task_loss,
    edge_attention_loss,
    image_weighted_cross_entropy,
)
from lightning_modules.losses import pixel_cross_entropy
from lightning_modules.segmentation import SegmentationModule


class GSCNNModule(SegmentationModule):
    """SegmentationModule with Gated-SCNN's four loss terms (see the module docstring).

    In training, ``compute_losses`` returns the weighted terms ``loss_seg``, ``loss_edge``,
    ``loss_attention``, ``loss_dual`` (each logged as ``train/<name>``) and their sum ``loss``; a term whose
    weight is 0 is not computed. With a network that returns no ``"edge"`` (the DeepLabV3+-style baseline)
    only ``loss_seg`` is. In evaluation ``loss`` is the unweighted cross-entropy of ``"out"``.

    Args:
        network: maps images to ``{"out": (B, K, H, W) logits, "edge": (B, 1, H, W) boundary logits}``.
        num_classes: K.
        seg_weight, edge_weight, attention_weight, dual_weight: weights of L_seg, L_edge, L_att, L_dual
            (>= 0, not all 0); ``edge_weight`` includes the official hard-coded ×20.
        dual_mode: ``"paper"`` or ``"released"`` (:func:`~lightning_modules.gscnn.losses.dual_task_loss`).
        tau: Gumbel-softmax temperature of L_dual; None for the mode's default (paper 1.0, released 0.5).
        edge_bce: ``"paper"`` or ``"released"`` (:func:`~lightning_modules.gscnn.losses.balanced_edge_bce`).
        onehot_offset: 0 (fixed) or 1 (released) (:func:`~lightning_modules.gscnn.edges.edge_targets`).
        edge_radius: half-width in pixels of the ground-truth boundary band (2).
        attention_threshold: L_att keeps the pixels with ``σ(edge) >`` this (0.8).
        wt_bound: ``upper_bound`` of the per-image class weights of L_seg and L_att (1.0).
        **segmentation_module_kwargs: the other arguments of :class:`SegmentationModule` (``lr``,
            ``ignore_index``, ...); ``loss_weights`` is not one of them.

    Raises:
        ValueError: an unknown switch, a negative or all-zero set of weights, ``tau <= 0``,
            ``edge_radius < 1``, ``attention_threshold`` outside ``[0, 1]``, ``wt_bound < 0``, ``loss_weights``
            given, or ``dual_mode="released"`` with a dual weight and ``num_classes != 19``.
    """

    def __init__(
        self,
        network: nn.Module,
        num_classes: int,
        seg_weight: float = 1.0,
        edge_weight: float = 20.0,
        attention_weight: float = 1.0,
        dual_weight: float = 1.0,
        dual_mode: str = "paper",
        tau: float | None = None,
        edge_bce: str = "paper",
        onehot_offset: int = 0,
        edge_radius: float = 2,
        attention_threshold: float = 0.8,
        wt_bound: float = 1.0,
        **segmentation_module_kwargs: Any,
    ) -> None:
        if "loss_weights" in segmentation_module_kwargs:
            raise ValueError(
                "GSCNNModule weighs its losses with seg_weight, edge_weight, attention_weight and dual_weight; "
                "loss_weights is not used."
            )
        weights = {
            "seg_weight": seg_weight,
            "edge_weight": edge_weight,
            "attention_weight": attention_weight,
            "dual_weight": dual_weight,
        }
        for name, weight in weights.items():
            if not (math.isfinite(weight) and weight >= 0):
                raise ValueError(f"{name} must be a finite number >= 0, got {weight}.")
        if not any(weights.values()):
            raise ValueError("at least one of seg_weight, edge_weight, attention_weight, dual_weight must be > 0.")
        for name, mode in (("dual_mode", dual_mode), ("edge_bce", edge_bce)):
            if mode not in MODES:
                raise ValueError(f"{name} must be one of {MODES}, got {mode!r}.")
        if dual_mode == "released" and dual_weight != 0 and num_classes != RELEASED_NUM_CLASSES:
            raise ValueError(
                f'dual_mode="released" reproduces the official DualTaskLoss, which hard-codes '
                f'{RELEASED_NUM_CLASSES} classes; got num_classes={num_classes}. Use dual_mode="paper".'
            )
        if tau is not None and not tau > 0:
            raise ValueError(f"tau must be > 0 or None (the dual mode's default), got {tau}.")
        if onehot_offset not in ONEHOT_OFFSETS:
            raise ValueError(f"onehot_offset must be 0 (fixed) or 1 (released), got {onehot_offset}.")
        if not edge_radius >= 1:
            raise ValueError(f"edge_radius must be >= 1 (pixels), got {edge_radius}.")
        if not 0 <= attention_threshold <= 1:
            raise ValueError(f"attention_threshold must be a probability in [0, 1], got {attention_threshold}.")
        if not wt_bound >= 0:
            raise ValueError(f"wt_bound must be >= 0, got {wt_bound}.")
        super().__init__(network, num_classes, **segmentation_module_kwargs)
        self.seg_weight = seg_weight
        self.edge_weight = edge_weight
        self.attention_weight = attention_weight
        self.dual_weight = dual_weight
        self.dual_mode = dual_mode
        self.tau = tau
        self.edge_bce = edge_bce
        self.onehot_offset = onehot_offset
        self.edge_radius = edge_radius
        self.attention_threshold = attention_threshold
        self.wt_bound = wt_bound

    def _edge_logits(self, outputs: Mapping[str, torch.Tensor], target: torch.Tensor) -> torch.Tensor | None:
        edge = outputs.get("edge")
        if edge is not None and tuple(edge.shape) != (target.shape[0], 1, *target.shape[-2:]):
            raise ValueError(
                f"the network output 'edge' must be boundary logits of shape (B, 1, H, W) = "
                f"({target.shape[0]}, 1, {target.shape[-2]}, {target.shape[-1]}), got {tuple(edge.shape)}."
            )
        return edge

    def compute_losses(self, outputs: Mapping[str, torch.Tensor], target: torch.Tensor) -> dict[str, torch.Tensor]:
        """The weighted loss terms and their sum ``"loss"`` in training; the plain cross-entropy in evaluation.

        Shapes: ``outputs["out"]`` ``(B, K, H, W)``, ``outputs["edge"]`` ``(B, 1, H, W)``, target ``(B, H, W)``.

        Raises:
            ValueError: ``"edge"`` has the wrong shape, or no term is left to compute.
        """
        logits = outputs["out"]
        if not self.training:
            return {"loss": pixel_cross_entropy(logits, target, self.ignore_index)}
        edge = self._edge_logits(outputs, target)
        losses: dict[str, torch.Tensor] = {}
        if self.seg_weight:
            seg = image_weighted_cross_entropy(logits, target, self.num_classes, self.ignore_index, self.wt_bound)
            losses["loss_seg"] = self.seg_weight * seg
        if edge is not None and self.edge_weight:
            # The labels were checked on the host before the transfer (on_before_batch_transfer).
            boundaries = edge_targets(
                target, self.num_classes, self.edge_radius, self.ignore_index, self.onehot_offset, validate=False
            )
            losses["loss_edge"] = self.edge_weight * balanced_edge_bce(edge, boundaries.to(edge.dtype), self.edge_bce)
        if edge is not None and self.attention_weight:
            attention = edge_attention_loss(
                logits,
                target,
                edge,
                self.num_classes,
                self.attention_threshold,
                self.ignore_index,
                self.wt_bound,
            )
            losses["loss_attention"] = self.attention_weight * attention
        if edge is not None and self.dual_weight:
            dual = dual_task_loss(logits, target, self.num_classes, self.dual_mode, self.tau, self.ignore_index)
            losses["loss_dual"] = self.dual_weight * dual
        if not losses:
            raise ValueError(
                "no loss term to compute: seg_weight is 0 and the network returns no 'edge' output "
                f"(it returns {sorted(outputs)})."
            )
        # A Python sum promotes mixed dtypes (the dual term is computed in at least float32).
        losses["loss"] = sum(losses.values())
        return losses
