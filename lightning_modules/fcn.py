"""Dilated FCN: the baseline of the DANet (Table 1) and SANet (Tables 1, 3) papers.

A ResNet at output stride 8 (layer3 and layer4 dilated by 2 and 4), an FCN head on the last stage
and an auxiliary FCN head on stage 3 for deep supervision, as in PyTorch-Encoding's ``FCN`` that
both papers start from.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from lightning_modules.backbones import Backbone
from lightning_modules.blocks.channel import AttentionSpec
from lightning_modules.network import SegmentationNetwork


class FCNHead(nn.Sequential):
    """3×3 conv to ``in_channels // 4`` → BN → ReLU → Dropout2d → 1×1 conv classifier.

    Shapes: ``(B, in_channels, h, w)`` → ``(B, num_classes, h, w)``.
    """

    def __init__(self, in_channels: int, num_classes: int, dropout: float = 0.1) -> None:
        inter = in_channels // 4
        super().__init__(
            nn.Conv2d(in_channels, inter, 3, padding=1, bias=False),
            nn.BatchNorm2d(inter),
            nn.ReLU(inplace=True),
            nn.Dropout2d(dropout),
            nn.Conv2d(inter, num_classes, 1),
        )


def upsample_to(logits: torch.Tensor, size: Sequence[int], align_corners: bool) -> torch.Tensor:
    """Bilinear resize of ``(B, K, h, w)`` logits to ``(B, K, *size)``."""
    return F.interpolate(logits, size=tuple(size), mode="bilinear", align_corners=align_corners)


class FCN(SegmentationNetwork):
    """Dilated FCN with an optional auxiliary head.

    Args:
        num_classes: number of output classes K.
        backbone: timm model name (``"resnet50"``, ``"resnet101"``, ``"efficientnet_b0"``, ...).
        output_stride: 8 in the papers.
        aux: add the auxiliary FCN head on the second-to-last returned stage (ResNet stage 3).
        out_indices: the two backbone stages used, (auxiliary, main).
        align_corners: bilinear upsampling mode of the logits (DANet's official code uses True).
        attention: SE / ECA / CBAM in every residual block of the backbone (see
            :class:`~lightning_modules.backbones.Backbone`).

    Returns ``{"out": (B, K, H, W)}`` plus ``"aux"`` when ``aux`` is set.
    """

    def __init__(
        self,
        num_classes: int,
        backbone: str = "resnet50",
        output_stride: int = 8,
        aux: bool = True,
        out_indices: Sequence[int] = (3, 4),
        pretrained: bool = False,
        pretrained_path: str | os.PathLike | None = None,
        in_chans: int = 3,
        channels_last: bool = False,
        attention: AttentionSpec = None,
        dropout: float = 0.1,
        align_corners: bool = False,
    ) -> None:
        super().__init__(num_classes, in_chans)
        if len(out_indices) != 2:
            raise ValueError(f"out_indices must name two stages (auxiliary, main), got {tuple(out_indices)}.")
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
        aux_channels, main_channels = self.backbone.channels
        self.head = FCNHead(main_channels, num_classes, dropout)
        self.aux_head = FCNHead(aux_channels, num_classes, dropout) if aux else None
        self.align_corners = align_corners
        if channels_last:
            self.to(memory_format=torch.channels_last)

    def forward_outputs(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        size = images.shape[-2:]
        aux_features, features = self.backbone(images)
        outputs = {"out": upsample_to(self.head(features), size, self.align_corners)}
        if self.aux_head is not None:
            outputs["aux"] = upsample_to(self.aux_head(aux_features), size, self.align_corners)
        return outputs
