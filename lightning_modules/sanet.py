"""SANet (Zhong et al., CVPR 2020): squeeze-and-attention heads on a dilated FCN, and its three losses.

Architecture (Sec. 3.3, Fig. 3): a dilated backbone at output stride 8 (ResNet-50 / -101, or
EfficientNet); one SA head (:class:`~lightning_modules.blocks.squeeze_attention.SqueezeAttention` + 1×1
classifier) on each of the four stage outputs; an FCN head on **stage 4** (the paper's "auxiliary" head,
not on stage 3 as in the usual deep supervision) giving the dense prediction Ŷ_den; a category branch
predicting which classes an image contains. The final prediction is ``Ŷ_den + Ŷ_SA4``.

Loss (Sec. 3.3): ``L = L_mask + α · L_cat + β · L_den`` with α = 0.2, β = 0.8 (chosen on Context, Fig. 4):

- ``L_mask``: the four SA heads' class maps are "concatenated" and supervised by the ground truth. Here:
  pixel cross-entropy of each head against the labels, averaged over the heads. This *is* the
  cross-entropy of the concatenation (the four maps stacked along the batch axis against the labels
  repeated): every head has the same valid pixels, so the mean over all pixels is the mean of the
  per-head means. How the paper fuses the maps beyond that (an extra convolution?) is not stated.
- ``L_cat``: binary cross-entropy of the category logits against per-image class presence (a class is
  present if one non-ignored pixel has it: the average-pooled one-hot labels, thresholded at > 0),
  averaged over the images that have a labelled pixel (one without says nothing about its classes).
- ``L_den``: pixel cross-entropy of the dense (FCN head) prediction.

Every term is 0, with a zero gradient, for a batch without a labelled pixel (:mod:`lightning_modules.losses`).

The category branch is "SE-like" with an intermediate width of 4 (implementation paragraph); it is
read here as global average pooling of stage 4 → FC (C → 4) → ReLU → FC (4 → K) logits.

FCN-SE (the paper's Table 3): the dense FCN alone whose head has an SE block (``dense_se=True`` with
``sa_heads=False, category=False``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from lightning_modules.backbones import Backbone
from lightning_modules.blocks.channel import AttentionSpec, SqueezeExcite
from lightning_modules.blocks.squeeze_attention import SqueezeAttention
from lightning_modules.fcn import FCNHead, upsample_to
from lightning_modules.losses import labelled_images, pixel_cross_entropy, presence_bce
from lightning_modules.network import SegmentationNetwork, check_images
from lightning_modules.segmentation import SegmentationModule


class SAHead(nn.Module):
    """SA module then a 1×1 classifier (with bias): ``(B, C, h, w) → (B, K, h, w)`` logits.

    ``sa_kwargs`` go to :class:`SqueezeAttention` (``pool``, ``attention_activation``, ``num_convs``, ...).
    """

    def __init__(self, in_channels: int, num_classes: int, **sa_kwargs: Any) -> None:
        super().__init__()
        self.sa = SqueezeAttention(in_channels, **sa_kwargs)
        self.classifier = nn.Conv2d(self.sa.out_channels, num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.sa(x))


class CategoryBranch(nn.Module):
    """Image-level class presence: global average pool → FC (C → width) → ReLU → FC (width → K).

    Shapes: ``(B, C, h, w) → (B, K)`` logits. Parameters: ``C · width + width + width · K + K``.
    """

    def __init__(self, in_channels: int, num_classes: int, width: int = 4) -> None:
        super().__init__()
        self.fc1 = nn.Linear(in_channels, width)
        self.fc2 = nn.Linear(width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.relu(self.fc1(x.mean(dim=(2, 3)))))


class SEFCNHead(nn.Sequential):
    """FCN-SE head: :class:`~lightning_modules.fcn.FCNHead` with an SE block (r = 16) on its ``C / 4`` features.

    3×3 conv to ``C / 4`` → BN → ReLU → SE → Dropout2d → 1×1 classifier. Where the paper puts the SE
    block is not stated; here it re-weights the head's features just before the classifier.
    Shapes: ``(B, C, h, w) → (B, K, h, w)``.
    """

    def __init__(self, in_channels: int, num_classes: int, dropout: float = 0.1) -> None:
        inter = in_channels // 4
        super().__init__(
            nn.Conv2d(in_channels, inter, 3, padding=1, bias=False),
            nn.BatchNorm2d(inter),
            nn.ReLU(inplace=True),
            SqueezeExcite(inter),
            nn.Dropout2d(dropout),
            nn.Conv2d(inter, num_classes, 1),
        )


class SANet(SegmentationNetwork):
    """SANet and its ablations (Table 1) and baselines (Table 3: FCN, FCN-SE).

    Args:
        num_classes: K.
        backbone: timm model name (``"resnet50"``, ``"resnet101"``, ``"tf_efficientnet_b7"``, ...).
        output_stride: 8 in the paper.
        out_indices: the backbone stages with an SA head; the last one also feeds the dense head and
            the category branch (ResNet: 1..4 = layer1..layer4).
        sa_heads, category, dense: build the SA heads, the category branch, the dense FCN head
            (at least one of ``sa_heads`` and ``dense``).
        dense_se: an SE block in the dense head (FCN-SE).
        sa_kwargs: arguments of every :class:`SqueezeAttention` (pooling, σ, convolutions per path).
        category_width: intermediate width of the category branch (4 in the paper).
        dropout: of the dense head (PyTorch-Encoding's FCNHead: 0.1).
        align_corners: of the bilinear upsampling of the logits.
        attention: SE / ECA / CBAM in every residual block of the backbone, e.g. SANet on an ECA-ResNet (see
            :class:`~lightning_modules.backbones.Backbone`).

    Returns ``{"out", "sa1".."sa4", "dense"}`` logits ``(B, K, H, W)`` at input resolution and
    ``"category"`` logits ``(B, K)``; keys of disabled parts are absent. ``"out"`` is
    ``Ŷ_den + Ŷ_SA4`` (the paper's final prediction), or whichever of the two is built.
    """

    def __init__(
        self,
        num_classes: int,
        backbone: str = "resnet50",
        output_stride: int = 8,
        out_indices: Sequence[int] = (1, 2, 3, 4),
        pretrained: bool | str = False,
        pretrained_path: str | os.PathLike | None = None,
        in_chans: int = 3,
        channels_last: bool = False,
        attention: AttentionSpec = None,
        sa_heads: bool = True,
        category: bool = True,
        dense: bool = True,
        dense_se: bool = False,
        sa_kwargs: Mapping[str, Any] | None = None,
        category_width: int = 4,
        dropout: float = 0.1,
        align_corners: bool = False,
    ) -> None:
        super().__init__(num_classes, in_chans)
        if not (sa_heads or dense):
            raise ValueError("SANet needs the SA heads or the dense head (sa_heads=True or dense=True) to predict.")
        if dense_se and not dense:
            raise ValueError("dense_se=True puts an SE block in the dense head, which dense=False leaves out.")
        self.backbone = Backbone(
            backbone,
            output_stride=output_stride,
            out_indices=out_indices,
            pretrained=pretrained,
            pretrained_path=pretrained_path,
            in_chans=in_chans,
            channels_last=channels_last,
            attention=attention,
        )
        channels = self.backbone.channels
        self.sa_heads = (
            nn.ModuleList(SAHead(c, num_classes, **dict(sa_kwargs or {})) for c in channels) if sa_heads else None
        )
        dense_head = SEFCNHead if dense_se else FCNHead
        self.dense_head = dense_head(channels[-1], num_classes, dropout) if dense else None
        self.category_head = CategoryBranch(channels[-1], num_classes, category_width) if category else None
        self.align_corners = align_corners
        if channels_last:
            self.to(memory_format=torch.channels_last)

    def forward_outputs(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        size = images.shape[-2:]
        features = self.backbone(images)
        logits: dict[str, torch.Tensor] = {}
        if self.sa_heads is not None:
            for i, (head, feature) in enumerate(zip(self.sa_heads, features, strict=True), start=1):
                logits[f"sa{i}"] = head(feature)
        if self.dense_head is not None:
            logits["dense"] = self.dense_head(features[-1])
        # Ŷ_den + Ŷ_SA4, both at stage 4's resolution (bilinear upsampling is linear: summing first is the same).
        last = [logits[key] for key in ("dense", f"sa{len(features)}") if key in logits]
        outputs = {"out": upsample_to(sum(last[1:], last[0]), size, self.align_corners)}
        outputs.update({key: upsample_to(value, size, self.align_corners) for key, value in logits.items()})
        if self.category_head is not None:
            outputs["category"] = self.category_head(features[-1])
        return outputs


@torch.no_grad()
def sa_attention_maps(network: SANet, images: torch.Tensor) -> dict[str, torch.Tensor]:
    """The attention maps ``X_attn`` (Eq. 5) of the SA heads, bilinearly upsampled to the input size.

    Returns ``{"sa1": (B, C'_1, H, W), ..., "sa4": (B, C'_4, H, W)}`` with ``C'_i`` the head's reduced
    width; ``.mean(dim=1)`` gives one map per head to display. Call ``network.eval()`` first: in training
    mode BatchNorm would use (and update) batch statistics.
    """
    if network.sa_heads is None:
        raise ValueError("the network was built with sa_heads=False: it has no attention maps.")
    check_images(images, network.in_chans)
    size = images.shape[-2:]
    features = network.backbone(images)
    return {
        f"sa{i}": upsample_to(head.sa.attention_map(feature), size, network.align_corners)
        for i, (head, feature) in enumerate(zip(network.sa_heads, features, strict=True), start=1)
    }


def category_presence(target: torch.Tensor, num_classes: int, ignore_index: int = 255) -> torch.Tensor:
    """The category target ``y_bk = 1`` if class k occurs in image b's labels, else 0; ignored pixels count for nothing.

    Shapes: ``(B, H, W)`` int64 labels → ``(B, K)`` float, on the labels' device.
    """
    flat = target.reshape(target.shape[0], -1)
    # Ignored pixels land in an extra column K that is dropped.
    flat = torch.where(flat == ignore_index, torch.full_like(flat, num_classes), flat)
    presence = torch.zeros(flat.shape[0], num_classes + 1, device=target.device)
    return presence.scatter_(1, flat, 1.0)[:, :num_classes]


class SANetModule(SegmentationModule):
    """SegmentationModule with SANet's loss ``L = L_mask + α · L_cat + β · L_den`` (Sec. 3.3).

    Each term is computed when the network returns its outputs (``"sa*"``, ``"category"``, ``"dense"``);
    see the module docstring for how the four SA heads are combined. ``compute_losses`` returns the
    unweighted terms ``loss_mask``, ``loss_category``, ``loss_dense`` (logged as ``train/loss_*``) and
    their weighted sum ``loss``.

    Args:
        network: a :class:`SANet` (or any network with those output keys).
        num_classes: K.
        alpha: weight of the category loss (0.2 in the paper).
        beta: weight of the dense loss (0.8 in the paper).
        **kwargs: the other arguments of :class:`SegmentationModule` (``lr``, ``class_names``, ...);
            ``loss_weights`` is not one of them, the weights are ``alpha`` and ``beta``.
    """

    def __init__(
        self, network: nn.Module, num_classes: int, alpha: float = 0.2, beta: float = 0.8, **kwargs: Any
    ) -> None:
        if "loss_weights" in kwargs:
            raise ValueError("SANetModule weighs its losses with alpha and beta; loss_weights is not used.")
        super().__init__(network, num_classes, **kwargs)
        self.alpha = alpha
        self.beta = beta

    def compute_losses(self, outputs: Mapping[str, torch.Tensor], target: torch.Tensor) -> dict[str, torch.Tensor]:
        heads = [key for key in outputs if key.startswith("sa")]
        if not heads and "dense" not in outputs:
            raise ValueError(f"SANetModule needs 'sa*' or 'dense' outputs, the network returns {sorted(outputs)}.")
        losses: dict[str, torch.Tensor] = {}
        weighted = []
        if heads:
            per_head = [pixel_cross_entropy(outputs[key], target, self.ignore_index) for key in heads]
            losses["loss_mask"] = torch.stack(per_head).mean()
            weighted.append(losses["loss_mask"])
        if "category" in outputs:
            presence = category_presence(target, self.num_classes, self.ignore_index)
            labelled = labelled_images(target, self.ignore_index)
            losses["loss_category"] = presence_bce(outputs["category"], presence, labelled)
            weighted.append(self.alpha * losses["loss_category"])
        if "dense" in outputs:
            losses["loss_dense"] = pixel_cross_entropy(outputs["dense"], target, self.ignore_index)
            weighted.append(self.beta * losses["loss_dense"])
        losses["loss"] = torch.stack(weighted).sum()
        return losses
