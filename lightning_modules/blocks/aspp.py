"""ASPP (atrous spatial pyramid pooling, DeepLabV3 / V3+) with Gated-SCNN's optional edge branch.

Gated-SCNN (Takikawa et al., ICCV 2019, Sec. 3.3) feeds the shape stream's edges to the ASPP as a sixth branch;
without it, this is the DeepLabV3+ ASPP as NVIDIA's semantic-segmentation code (``DeepWV3Plus``) builds it.
"""

from __future__ import annotations

import torch
from torch import nn

from lightning_modules.fcn import upsample_to

ASPP_RATES = (6, 12, 18)  # at output stride 16; scaled by 16 / output_stride
REDUCTION = 256


def conv_bn_relu(in_channels: int, out_channels: int, kernel_size: int = 1, dilation: int = 1) -> nn.Sequential:
    """Convolution without bias → BN → ReLU, padding ``dilation · (kernel_size // 2)``; keeps ``(h, w)``."""
    padding = dilation * (kernel_size // 2)
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size, padding=padding, dilation=dilation, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


class ASPP(nn.Module):
    """Atrous spatial pyramid pooling with GSCNN's edge branch (official ``_AtrousSpatialPyramidPoolingModule``).

    Branches, concatenated in the official order, each convolution → BN → ReLU without conv bias:
    ``img_pooling`` + ``img_conv`` (global average → 1×1, upsampled with align_corners=True); with ``edge=True``
    ``edge_conv`` (the ``(B, 1, H, W)`` edge signal resized bilinearly, align_corners=True, to ``h × w``, then a 1×1
    convolution 1 → 256); ``features[0]`` (1×1); ``features[1..3]`` (3×3 with dilations 6, 12, 18 × 16 /
    ``output_stride``: 12, 24, 36 at output stride 8). Without the edge branch it is the plain DeepLabV3+ ASPP
    (5 branches, NVIDIA/semantic-segmentation's ``DeepWV3Plus``).

    Parameters: 30,412,032 at ``in_channels = 4096`` with the edge branch (768 of them in it).

    Args:
        in_channels: channels of the deepest features.
        output_stride: 8 or 16.
        edge: build the edge branch.
        reduction: channels of each branch (256).

    Shapes: ``forward(x (B, in_channels, h, w), edge (B, 1, H, W) or None)`` → ``(B, out_channels, h, w)`` with
    ``out_channels = reduction · (6 if edge else 5)``.

    Raises:
        ValueError: if ``output_stride`` is not 8 or 16; in ``forward``, if ``edge`` is given without the edge
            branch or missing with it.
    """

    def __init__(self, in_channels: int, output_stride: int = 8, edge: bool = True, reduction: int = REDUCTION) -> None:
        super().__init__()
        if output_stride not in (8, 16):
            raise ValueError(f"output_stride must be 8 or 16 (the official ASPP's), got {output_stride}.")
        rates = [rate * 16 // output_stride for rate in ASPP_RATES]
        self.img_pooling = nn.AdaptiveAvgPool2d(1)
        self.img_conv = conv_bn_relu(in_channels, reduction)
        self.edge_conv = conv_bn_relu(1, reduction) if edge else None
        self.features = nn.ModuleList(
            [conv_bn_relu(in_channels, reduction)] + [conv_bn_relu(in_channels, reduction, 3, rate) for rate in rates]
        )
        self.out_channels = reduction * (len(self.features) + 1 + int(edge))

    def forward(self, x: torch.Tensor, edge: torch.Tensor | None = None) -> torch.Tensor:
        if (edge is None) != (self.edge_conv is None):
            expected = "an edge map (B, 1, H, W)" if self.edge_conv is not None else "no edge map"
            raise ValueError(f"this ASPP {'has' if self.edge_conv else 'has no'} edge branch: expected {expected}.")
        size = x.shape[-2:]
        branches = [upsample_to(self.img_conv(self.img_pooling(x)), size, True)]
        if self.edge_conv is not None:
            branches.append(self.edge_conv(upsample_to(edge, size, True)))
        branches.extend(branch(x) for branch in self.features)
        return torch.cat(branches, dim=1)
