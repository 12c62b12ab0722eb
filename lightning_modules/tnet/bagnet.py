"""BagNet-77: TNet's feature extractor on ImageNet (Tpap/TNet ``ImageNet/models.py``, ``BagNet_77``).

A ResNet-50-like network of bottleneck blocks whose receptive field stops at 77 px (Brendel & Bethge, ICLR 2019):
only the first two blocks of each stage have a 3×3 convolution, the others 1×1. As in the official TNet code,
it has no batch normalisation, every convolution has a bias (Glorot-normal weights, zero biases), and each
activation is a LeakyReLU of slope 0.2 (TensorFlow's default).

Parts, with the output at TNet's 77 px base resolution:

- stem: 3×3 conv 3 → 64, valid: 64 × 75 × 75;
- part 2: 3 blocks of width 64 (out 256): stride 2 (same), 3×3 (same), 1×1: 256 × 38 × 38;
- part 3: 4 blocks of width 128 (out 512): stride 2 (same), 3×3 (same), 1×1, 1×1: 512 × 19 × 19;
- part 4: 6 blocks of width 256 (out 1024): stride 2 (valid), 3×3 (same), four 1×1: 1024 × 9 × 9, whose rows and
  columns 0, 2, .., 8 are the location features (1024 × 5 × 5);
- part 5: 3 blocks of width 512 (out 2048): stride 1 (valid), 3×3 (same), 1×1: 2048 × 7 × 7;
- part 6: 1×1 conv 2048 → 512 and LeakyReLU: 512 × 7 × 7; part 7: global average pooling, h ∈ R^512.

Parameters: 20,033,664. "Same" padding is TensorFlow's: ``max((⌈n / s⌉ − 1)·s + k − n, 0)`` pixels, the smaller
half before; a block with a valid 3×3 convolution crops its shortcut by 1 pixel on each side. Spatial dropout
(whole channels, probability ``1 − keep_prob``) follows part 6, and with more ``dropout_layers`` parts 5, 4 (after
the location features are taken) and 3, as the official ``num_do_layers``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

LEAKY_SLOPE = 0.2
EXPANSION = 4


def same_padding(size: int, kernel_size: int, stride: int) -> tuple[int, int]:
    """TensorFlow's "same" padding of one side: ``(before, after)`` pixels."""
    total = max((math.ceil(size / stride) - 1) * stride + kernel_size - size, 0)
    return total // 2, total - total // 2


def glorot_conv(in_channels: int, out_channels: int, kernel_size: int = 1, stride: int = 1) -> nn.Conv2d:
    """A convolution with bias and no padding, Glorot-normal weights and zero biases (the official init)."""
    conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride)
    nn.init.xavier_normal_(conv.weight)
    nn.init.zeros_(conv.bias)
    return conv


class BagNetBlock(nn.Module):
    """Bottleneck block without BN (official ``convolutional_block``).

    ``1×1 (width) → k×k (width, stride) → 1×1 (4·width)``, a LeakyReLU after the first two, the shortcut added and
    a LeakyReLU after the sum. The shortcut is a 1×1 convolution with the block's stride when the stride or the
    channel count changes, the identity otherwise; a valid k×k convolution first crops it by ``(k − 1) / 2``.

    Shapes: ``(B, in_channels, H, W)`` → ``(B, 4·width, H', W')``.
    """

    def __init__(self, in_channels: int, width: int, kernel_size: int, stride: int = 1, padding: str = "same") -> None:
        super().__init__()
        if padding not in ("same", "valid"):
            raise ValueError(f"padding must be 'same' or 'valid', got {padding!r}.")
        out_channels = EXPANSION * width
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding
        self.conv1 = glorot_conv(in_channels, width)
        self.conv2 = glorot_conv(width, width, kernel_size, stride)
        self.conv3 = glorot_conv(width, out_channels)
        projects = stride > 1 or in_channels != out_channels
        self.shortcut = glorot_conv(in_channels, out_channels, 1, stride) if projects else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.leaky_relu(self.conv1(x), LEAKY_SLOPE)
        if self.padding == "same":
            top, bottom = same_padding(y.shape[-2], self.kernel_size, self.stride)
            left, right = same_padding(y.shape[-1], self.kernel_size, self.stride)
            y = F.pad(y, (left, right, top, bottom))
        y = self.conv3(F.leaky_relu(self.conv2(y), LEAKY_SLOPE))
        shortcut = x
        if self.padding == "valid" and self.kernel_size > 1:
            before, after = (self.kernel_size - 1) // 2, self.kernel_size // 2
            shortcut = shortcut[..., before : shortcut.shape[-2] - after, before : shortcut.shape[-1] - after]
        if self.shortcut is not None:
            shortcut = self.shortcut(shortcut)
        return F.leaky_relu(y + shortcut, LEAKY_SLOPE)


def stage(in_channels: int, width: int, blocks: int, stride: int, first_padding: str) -> nn.Sequential:
    """A part: a strided (or valid) 3×3 block, a 3×3 "same" block, then 1×1 blocks."""
    out_channels = EXPANSION * width
    layers = [
        BagNetBlock(in_channels, width, 3, stride, first_padding),
        BagNetBlock(out_channels, width, 3, 1, "same"),
    ]
    layers += [BagNetBlock(out_channels, width, 1) for _ in range(blocks - 2)]
    return nn.Sequential(*layers)


class BagNet77(nn.Module):
    """BagNet-77 (see the module docstring).

    Args:
        dropout_layers: how many of parts 6, 5, 4, 3 (in that order) spatial dropout follows (official
            ``num_do_layers``; TNet and its baseline use 1).
        keep_prob: the probability of keeping a channel (TNet 0.5, the BagNet baseline 0.375).

    Shapes: ``forward((B, 3, H, W))`` → ``(location features (B, 1024, ⌈h₄ / 2⌉, ⌈w₄ / 2⌉), h (B, 512))`` with
    ``h₄ × w₄`` the part-4 map (9 × 9 at 77 px, so 5 × 5 location features).
    """

    def __init__(self, dropout_layers: int = 1, keep_prob: float = 0.5) -> None:
        super().__init__()
        if not 0 <= dropout_layers <= 4:
            raise ValueError(f"dropout_layers must be in 0..4, got {dropout_layers}.")
        if not 0.0 < keep_prob <= 1.0:
            raise ValueError(f"keep_prob must be in (0, 1], got {keep_prob}.")
        self.dropout_layers = dropout_layers
        self.stem = glorot_conv(3, 64, 3)
        self.part2 = stage(64, 64, 3, 2, "same")
        self.part3 = stage(256, 128, 4, 2, "same")
        self.part4 = stage(512, 256, 6, 2, "valid")
        self.part5 = stage(1024, 512, 3, 1, "valid")
        self.part6 = glorot_conv(2048, 512)
        self.dropout = nn.Dropout2d(1.0 - keep_prob)
        self.out_channels = 512
        self.location_channels = 1024

    def _drop(self, x: torch.Tensor, after_part: int) -> torch.Tensor:
        # Part 6 is the first to get dropout, part 3 the last (official num_do_layers >= 1 .. 4).
        return self.dropout(x) if self.dropout_layers >= 7 - after_part else x

    def feature_maps(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(location features, part-6 map (B, 512, h, w))``, the map before the global pooling."""
        x = F.leaky_relu(self.stem(images), LEAKY_SLOPE)
        x = self._drop(self.part3(self.part2(x)), 3)
        x = self.part4(x)
        location = x[..., ::2, ::2]
        x = self._drop(self.part5(self._drop(x, 4)), 5)
        return location, self._drop(F.leaky_relu(self.part6(x), LEAKY_SLOPE), 6)

    def global_features(self, images: torch.Tensor) -> torch.Tensor:
        """``h (B, 512)`` alone (the whole-image baseline)."""
        return self.feature_maps(images)[1].mean(dim=(-2, -1))

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        location, features = self.feature_maps(images)
        return location, features.mean(dim=(-2, -1))
