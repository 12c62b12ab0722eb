"""DANet: Dual Attention Network for Scene Segmentation (Fu et al., CVPR 2019), as in the official code.

A dilated ResNet at output stride 8 (optionally with multi-grid dilations in ``layer4``) feeds its last stage
to the DANet head (Sec. 3.1, Fig. 2): a position-attention branch and a channel-attention branch, each between
two 3×3 convolutions, summed and classified. Like the official ``DANetHead`` the head also classifies each
branch alone, and the three logits maps are each supervised by a cross-entropy of weight 1
(``SegmentationMultiLosses``); prediction uses the fused output only.

The head's submodules carry the official names (``conv5a``, ``sa``, ``conv51``, ``conv6``, ...) so that the
released head weights load by name; the backbone is timm's ResNet, whose names differ from PyTorch-Encoding's.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from timm.models.resnet import BasicBlock, Bottleneck
from torch import nn

from lightning_modules.backbones import Backbone
from lightning_modules.blocks.channel import AttentionSpec
from lightning_modules.blocks.dual_attention import ChannelAttention, ChannelMode, PositionAttention, PositionMode
from lightning_modules.fcn import FCNHead, upsample_to
from lightning_modules.network import SegmentationNetwork, check_images

# SegmentationMultiLosses of the official code: fused, PAM-only and CAM-only logits, weight 1 each.
DANET_LOSS_WEIGHTS = {"out": 1.0, "pam": 1.0, "cam": 1.0}
MULTI_GRID = (4, 8, 16)


def conv_bn_relu(in_channels: int, out_channels: int) -> nn.Sequential:
    """3×3 convolution without bias → BN → ReLU; ``(B, in, h, w) → (B, out, h, w)``."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


def classifier(in_channels: int, num_classes: int, dropout: float) -> nn.Sequential:
    """Dropout2d → 1×1 convolution with bias; ``(B, in, h, w) → (B, K, h, w)``."""
    return nn.Sequential(nn.Dropout2d(dropout), nn.Conv2d(in_channels, num_classes, 1))


class DANetHead(nn.Module):
    """The DANet head (Sec. 3.1 and 3.4), layer for layer as the official ``DANetHead``.

    With ``inter = in_channels // 4`` (512 for ResNet's 2048):

    - PAM branch: ``conv5a`` (3×3 conv in → inter, BN, ReLU) → ``sa`` (:class:`PositionAttention`) →
      ``conv51`` (3×3 conv, BN, ReLU) → ``conv6`` (Dropout2d, 1×1 conv) = PAM-only logits;
    - CAM branch: ``conv5c`` → ``sc`` (:class:`ChannelAttention`) → ``conv52`` → ``conv7`` = CAM-only logits;
    - fusion (Sec. 3.4): the element-wise sum of the ``conv51`` and ``conv52`` outputs → ``conv8`` = fused logits.

    With one branch disabled (the "+PAM" / "+CAM" rows of Table 1) the head is that branch alone and its
    classifier gives ``"out"``.

    Parameters (both branches, in = 2048, inter = 512): ``23,925,378 + 1,539 K``.

    Args:
        in_channels: channels of the backbone's last stage.
        num_classes: K.
        pam, cam: build the position / channel branch.
        reduction: query / key reduction of the position module (8).
        dropout: Dropout2d probability before each classifier (0.1).
        pam_mode: ``"fused"``, ``"fused_heads"`` or ``"naive"`` position attention (same function, see
            :class:`PositionAttention`).
        cam_mode: ``"official"`` (``max - energy``) or ``"paper"`` channel attention, see :class:`ChannelAttention`.

    Shapes: ``(B, in_channels, h, w)`` → ``{"out": (B, K, h, w)}`` plus ``"pam"`` and ``"cam"`` when both
    branches exist.
    """

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        pam: bool = True,
        cam: bool = True,
        reduction: int = 8,
        dropout: float = 0.1,
        pam_mode: PositionMode = "fused",
        cam_mode: ChannelMode = "official",
    ) -> None:
        super().__init__()
        if not (pam or cam):
            raise ValueError(
                "DANetHead needs at least one of pam / cam; the network without attention is the dilated FCN "
                "(lightning_modules.fcn.FCN)."
            )
        inter = in_channels // 4
        self.conv5a = conv_bn_relu(in_channels, inter) if pam else None
        self.sa = PositionAttention(inter, reduction, pam_mode) if pam else None
        self.conv51 = conv_bn_relu(inter, inter) if pam else None
        self.conv6 = classifier(inter, num_classes, dropout) if pam else None
        self.conv5c = conv_bn_relu(in_channels, inter) if cam else None
        self.sc = ChannelAttention(cam_mode) if cam else None
        self.conv52 = conv_bn_relu(inter, inter) if cam else None
        self.conv7 = classifier(inter, num_classes, dropout) if cam else None
        self.conv8 = classifier(inter, num_classes, dropout) if pam and cam else None

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        if self.sa is not None and self.sc is not None:
            # The official order (position branch with its classifier, channel branch with its classifier, then
            # the fused classifier), so that with one seed the three Dropout2d masks fall where the official
            # code draws them.
            sa_conv = self.conv51(self.sa(self.conv5a(x)))
            pam = self.conv6(sa_conv)
            sc_conv = self.conv52(self.sc(self.conv5c(x)))
            cam = self.conv7(sc_conv)
            return {"out": self.conv8(sa_conv + sc_conv), "pam": pam, "cam": cam}
        if self.sa is not None:
            return {"out": self.conv6(self.conv51(self.sa(self.conv5a(x))))}
        return {"out": self.conv7(self.conv52(self.sc(self.conv5c(x))))}


def set_multi_grid(backbone: Backbone, dilations: Sequence[int] = MULTI_GRID) -> None:
    """Dilate the 3×3 convolution of block ``i`` of ResNet ``layer4`` by ``dilations[i % len(dilations)]``.

    The multi-grid of DeepLabv3 as PyTorch-Encoding builds it for DANet's final Cityscapes models
    (``--multi-grid --multi-dilation 4 8 16``): ResNet-50/101's three ``layer4`` blocks get dilations 4, 8, 16
    instead of timm's 2, 4, 4 at output stride 8. The convolution whose dilation changes is the one
    PyTorch-Encoding gives the block's dilation: ``conv2`` of a bottleneck, ``conv1`` of a basic block. Its
    padding follows, so that the feature size does not change.

    Raises:
        ValueError: if the backbone is not a timm ResNet with a dilated ``layer4`` (output stride 8 or 16).
    """
    layer4 = getattr(backbone.body, "layer4", None)
    if layer4 is None or not all(isinstance(block, (BasicBlock, Bottleneck)) for block in layer4):
        raise ValueError(f"multi-grid needs a timm ResNet backbone with a layer4 stage, got {backbone.name!r}.")
    if backbone.output_stride == 32:
        raise ValueError("multi-grid dilates layer4, which is strided at output stride 32: use output_stride=8.")
    if not dilations or any(isinstance(d, bool) or not isinstance(d, int) or d < 1 for d in dilations):
        raise ValueError(f"multi-grid dilations must be positive integers, got {tuple(dilations)!r}.")
    for index, block in enumerate(layer4):
        conv = block.conv2 if isinstance(block, Bottleneck) else block.conv1
        dilation = dilations[index % len(dilations)]
        conv.dilation = (dilation, dilation)
        conv.padding = (dilation, dilation)


class DANet(SegmentationNetwork):
    """DANet: dilated timm backbone + :class:`DANetHead` on the last stage.

    Args:
        num_classes: K.
        backbone: timm model name (``"resnet50"``, ``"resnet101"``; any ``features_only`` CNN without multi-grid).
        output_stride: 8 in the paper.
        pam, cam: the head's branches (both: DANet; one: the "+PAM" / "+CAM" rows of Table 1).
        aux: add an FCN head on the second-to-last stage (ResNet ``layer3``) returning ``"aux"``; the official
            DANet has none.
        multi_grid: dilations of ResNet ``layer4``'s blocks, e.g. ``(4, 8, 16)`` (Table 2 "+Multi-Grid"), or
            ``None`` for timm's plain dilated ResNet.
        align_corners: mode of the bilinear upsampling of the logits (official code: True).
        reduction, dropout, pam_mode, cam_mode: see :class:`DANetHead`.
        pretrained, pretrained_path, in_chans, channels_last, attention: see
            :class:`~lightning_modules.backbones.Backbone`.

    Returns ``{"out": fused, "pam": PAM-only, "cam": CAM-only}`` logits ``(B, K, H, W)`` upsampled to the input
    (only ``"out"`` with a single branch), plus ``"aux"`` with ``aux``.
    """

    def __init__(
        self,
        num_classes: int,
        backbone: str = "resnet50",
        output_stride: int = 8,
        pam: bool = True,
        cam: bool = True,
        aux: bool = False,
        multi_grid: Sequence[int] | None = None,
        pretrained: bool | str = False,
        pretrained_path: str | os.PathLike | None = None,
        in_chans: int = 3,
        channels_last: bool = False,
        attention: AttentionSpec = None,
        reduction: int = 8,
        dropout: float = 0.1,
        align_corners: bool = True,
        pam_mode: PositionMode = "fused",
        cam_mode: ChannelMode = "official",
    ) -> None:
        super().__init__(num_classes, in_chans)
        self.backbone = Backbone(
            backbone,
            output_stride=output_stride,
            out_indices=(3, 4) if aux else (4,),
            pretrained=pretrained,
            pretrained_path=pretrained_path,
            in_chans=in_chans,
            channels_last=channels_last,
            attention=attention,
        )
        if multi_grid is not None:
            set_multi_grid(self.backbone, tuple(multi_grid))
        self.head = DANetHead(self.backbone.channels[-1], num_classes, pam, cam, reduction, dropout, pam_mode, cam_mode)
        self.aux_head = FCNHead(self.backbone.channels[0], num_classes, dropout) if aux else None
        self.align_corners = align_corners
        if channels_last:
            self.to(memory_format=torch.channels_last)

    def loss_weights(self, aux_weight: float = 0.0) -> dict[str, float]:
        """Cross-entropy weight of each output: 1 for each head output (official), ``aux_weight`` for ``"aux"``."""
        both = self.head.sa is not None and self.head.sc is not None
        weights = dict(DANET_LOSS_WEIGHTS) if both else {"out": DANET_LOSS_WEIGHTS["out"]}
        if self.aux_head is not None:
            weights["aux"] = aux_weight
        return weights

    def forward_outputs(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        size = images.shape[-2:]
        features = self.backbone(images)
        outputs = {
            key: upsample_to(logits, size, self.align_corners) for key, logits in self.head(features[-1]).items()
        }
        if self.aux_head is not None:
            outputs["aux"] = upsample_to(self.aux_head(features[0]), size, self.align_corners)
        return outputs


@dataclass(frozen=True)
class AttentionMaps:
    """What DANet's attention modules do on a batch of images (see :func:`attention_maps`).

    Attributes:
        position: ``(B, Q, h, w)``: for each query pixel, its position-attention weights over the feature grid
            (each map sums to 1); ``None`` without the PAM branch.
        channel: ``(B, C, C)``: the channel-attention matrix (rows sum to 1); ``None`` without the CAM branch.
        queries: ``(Q, 2)``: the feature-grid cell ``(row, col)`` of each query pixel.
    """

    position: torch.Tensor | None
    channel: torch.Tensor | None
    queries: torch.Tensor


def _feature_index(coordinate: torch.Tensor, size: int, feature_size: int, align_corners: bool) -> torch.Tensor:
    """The feature cell of an input pixel, inverting the network's bilinear upsampling of the logits."""
    if align_corners:
        # Upsampling with align_corners=True puts cell r at pixel r · (size - 1) / (feature_size - 1).
        scale = (feature_size - 1) / max(size - 1, 1)
        return torch.round(coordinate * scale).long()
    return torch.clamp(
        torch.div((coordinate + 0.5) * feature_size, size, rounding_mode="floor").long(), max=feature_size - 1
    )


def attention_maps(
    network: DANet, images: torch.Tensor, query_points: Sequence[tuple[int, int]] | torch.Tensor
) -> AttentionMaps:
    """Position-attention maps of chosen pixels and the channel-attention matrix, the maps the paper visualises.

    Runs the backbone and the head's first convolutions without autograd, then the PAM rows of the query pixels
    only (``Q × N`` memory, see :meth:`PositionAttention.attention_weights`) and the CAM matrix. Call
    ``network.eval()`` first so that BatchNorm uses its running statistics.

    Args:
        network: a :class:`DANet`.
        images: ``(B, in_chans, H, W)`` normalised images.
        query_points: ``(Q, 2)`` pixel coordinates ``(row, col)`` in the input images, the same for every image.

    Returns:
        :class:`AttentionMaps` with ``position`` ``(B, Q, h, w)`` on the ``h × w`` feature grid and ``channel``
        ``(B, C, C)``.
    """
    check_images(images, network.in_chans)
    points = torch.as_tensor(query_points, dtype=torch.long).reshape(-1, 2)
    height, width = images.shape[-2:]
    if points.numel() == 0 or (points < 0).any() or (points[:, 0] >= height).any() or (points[:, 1] >= width).any():
        raise ValueError(
            f"query_points must be a non-empty list of (row, col) pixels inside the {height}×{width} images, "
            f"got {points.tolist()}."
        )
    head = network.head
    with torch.no_grad():
        features = network.backbone(images)[-1]  # (B, C_in, h, w)
        h, w = features.shape[-2:]
        rows = _feature_index(points[:, 0], height, h, network.align_corners)
        cols = _feature_index(points[:, 1], width, w, network.align_corners)
        position = None
        if head.sa is not None:
            weights = head.sa.attention_weights(head.conv5a(features), rows * w + cols)  # (B, Q, h·w)
            position = weights.view(images.shape[0], len(points), h, w)
        channel = head.sc.attention(head.conv5c(features)) if head.sc is not None else None
    return AttentionMaps(position=position, channel=channel, queries=torch.stack([rows, cols], dim=1))
