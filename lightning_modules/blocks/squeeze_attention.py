"""Squeeze-and-attention (SA) module of SANet (Zhong et al., CVPR 2020, Sec. 3.2, Eq. 4-5, Fig. 2c).

An SE block squeezes a feature map to one vector and re-weights its channels; the SA module only
*downsamples* the input (pooling by 8, not a global squeeze), so that its attention is a coarse
spatial map that groups pixels, and it both multiplies and is added to a convolutional main path:

    X_res  = F(X_in; Θ, Ω)                                   main ("residual") path
    X̂_attn = F_attn(Pool(X_in); Θ_attn, Ω_attn)              attention path       (Eq. 5)
    X_attn = Up(σ(X̂_attn))
    X_out  = X_attn ⊙ X_res + X_attn                         output               (Eq. 4)

No official code exists (the public "SqueezeAttentionBlock" snippets derive from a blog and differ:
AvgPool 2×2, nearest ×2 upsampling). This module follows the paper's implementation paragraph
(Sec. 3.3): both paths reduce the channels to 1/4, pool by 8 and upsample by 8, and the first
convolution of each path is a group convolution with 2 groups.

What the paper leaves open, and what is assumed here (each is an argument):

- **Pooling.** Eq. 5 writes average pooling (APool), the implementation paragraph max pooling. The
  default is ``"max"``: the implementation paragraph describes what was run; ``"avg"`` follows Eq. 5.
- **σ.** The paper's notation (Eq. 3) uses Φ for sigmoid and σ for ReLU, and Eq. 5 applies σ, so the
  attention map is read as ReLU (non-negative, unbounded). Third-party code uses sigmoid. Default
  ``"relu"`` (the literal reading); ``"sigmoid"`` gives a gate in (0, 1).
- **Convolutions.** Kernel sizes and the number of convolutions per path are not stated: 3×3 and two
  per path are assumed (the paper speaks of the *first* convolution of each path, and the main path is
  "like the residual function of a ResNet block", two 3×3 convolutions), each followed by BatchNorm;
  the main path's convolutions and the attention path's inner ones by ReLU, the attention path's last
  one by σ alone.
- **Upsampling.** Mode not stated: bilinear (``align_corners=False``) back to the input size. Pooling
  uses ``ceil_mode=True``, so that maps smaller than 8 pixels pool to one cell instead of failing.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

SA_POOL_TYPES = ("max", "avg")
SA_ACTIVATIONS = ("relu", "sigmoid")


def _conv_bn(in_channels: int, out_channels: int, kernel_size: int, groups: int, relu: bool) -> list[nn.Module]:
    # BatchNorm follows, so the convolution has no bias.
    layers: list[nn.Module] = [
        nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2, groups=groups, bias=False),
        nn.BatchNorm2d(out_channels),
    ]
    return [*layers, nn.ReLU(inplace=True)] if relu else layers


def _path(
    in_channels: int, out_channels: int, kernel_size: int, groups: int, num_convs: int, last_relu: bool
) -> nn.Sequential:
    """``num_convs`` conv-BN(-ReLU) layers; the first is the grouped one that reduces the channels."""
    layers = _conv_bn(in_channels, out_channels, kernel_size, groups, relu=last_relu or num_convs > 1)
    for i in range(1, num_convs):
        layers += _conv_bn(out_channels, out_channels, kernel_size, 1, relu=last_relu or i < num_convs - 1)
    return nn.Sequential(*layers)


class SqueezeAttention(nn.Module):
    """SA module: ``X_out = X_attn ⊙ X_res + X_attn`` (SANet Eq. 4), see the module docstring.

    Args:
        in_channels: C of the input.
        out_channels: C' of both paths and of the output; default ``C // 4`` (the paper's 1/4 reduction,
            e.g. 2048 → 512 on ResNet stage 4).
        pool: ``"max"`` (implementation paragraph, default) or ``"avg"`` (Eq. 5's APool).
        pool_ratio: the attention path's down- and upsampling factor (8 in the paper).
        attention_activation: σ, ``"relu"`` (the paper's notation, default) or ``"sigmoid"``.
        groups: groups of the first convolution of each path (2 in the paper); must divide C and C'.
        num_convs: convolutions per path (assumed 2).
        kernel_size: of every convolution (assumed 3).

    Parameters per path: ``C · C' · k² / groups + 2 C' + (num_convs - 1) · (C'² · k² + 2 C')``.

    Shapes: ``(B, C, H, W) → (B, C', H, W)``; the attention map :meth:`attention_map` is
    ``(B, C', H, W)``, computed at ``(⌈H / r⌉, ⌈W / r⌉)`` and upsampled.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int | None = None,
        pool: str = "max",
        pool_ratio: int = 8,
        attention_activation: str = "relu",
        groups: int = 2,
        num_convs: int = 2,
        kernel_size: int = 3,
    ) -> None:
        super().__init__()
        out_channels = in_channels // 4 if out_channels is None else out_channels
        if out_channels < 1 or in_channels % groups or out_channels % groups:
            raise ValueError(
                f"SqueezeAttention needs in_channels ({in_channels}) and out_channels ({out_channels}, default "
                f"in_channels // 4) to be positive multiples of groups={groups}."
            )
        if pool not in SA_POOL_TYPES:
            raise ValueError(f"pool must be one of {SA_POOL_TYPES}, got {pool!r}.")
        if attention_activation not in SA_ACTIVATIONS:
            raise ValueError(f"attention_activation must be one of {SA_ACTIVATIONS}, got {attention_activation!r}.")
        if pool_ratio < 1 or num_convs < 1 or kernel_size < 1 or not kernel_size % 2:
            raise ValueError(
                "pool_ratio and num_convs must be >= 1 and kernel_size a positive odd integer, got "
                f"pool_ratio={pool_ratio}, num_convs={num_convs}, kernel_size={kernel_size}."
            )
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.pool = pool
        self.pool_ratio = pool_ratio
        self.main = _path(in_channels, out_channels, kernel_size, groups, num_convs, last_relu=True)
        # The last BN of the attention path feeds σ directly (X̂_attn is the pre-activation of Eq. 5).
        self.attention = _path(in_channels, out_channels, kernel_size, groups, num_convs, last_relu=False)
        self.activation = nn.ReLU() if attention_activation == "relu" else nn.Sigmoid()

    def _check(self, x: torch.Tensor) -> None:
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(
                f"SqueezeAttention expects input of shape (B, {self.in_channels}, H, W), got {tuple(x.shape)}."
            )

    def attention_map(self, x: torch.Tensor) -> torch.Tensor:
        """``X_attn = Up(σ(F_attn(Pool(X_in))))`` (Eq. 5): ``(B, C, H, W) → (B, C', H, W)``."""
        self._check(x)
        pool = F.max_pool2d if self.pool == "max" else F.avg_pool2d
        pooled = pool(x, self.pool_ratio, self.pool_ratio, ceil_mode=True)  # (B, C, ⌈H/r⌉, ⌈W/r⌉)
        attention = self.activation(self.attention(pooled))  # (B, C', ⌈H/r⌉, ⌈W/r⌉)
        return F.interpolate(attention, size=x.shape[-2:], mode="bilinear", align_corners=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        attention = self.attention_map(x)  # (B, C', H, W)
        return attention * self.main(x) + attention
