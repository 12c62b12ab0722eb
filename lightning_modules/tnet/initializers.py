"""Keras' ``VarianceScaling`` initialiser, as the official fMoW code configures it (Tpap/TNet ``fMoW/models_fMoW.py``).

``CONV_KERNEL_INITIALIZER`` is ``scale = 2``, fan-out, truncated normal; ``DENSE_KERNEL_INITIALIZER`` is
``scale = 1/3``, fan-out, uniform. Keras' truncated normal draws from ``N(0, σ²)`` cut at ``±2σ`` with
``σ = sqrt(scale / fan) / 0.87962566103423978`` (the standard deviation of a unit normal cut at ±2), so the kept
values have variance ``scale / fan``; the uniform draws from ``±sqrt(3 · scale / fan)``.
"""

from __future__ import annotations

import math

import torch
from torch import nn

_TRUNCATED_NORMAL_STD = 0.87962566103423978


def variance_scaling_(weight: torch.Tensor, scale: float, distribution: str) -> torch.Tensor:
    """Fill ``weight`` (a conv ``(out, in, kh, kw)`` or linear ``(out, in)`` weight) in place, fan-out mode.

    Raises ``ValueError`` for a distribution other than ``"truncated_normal"`` or ``"uniform"``.
    """
    fan_out = weight.shape[0] * math.prod(weight.shape[2:])
    if distribution == "truncated_normal":
        std = math.sqrt(scale / fan_out) / _TRUNCATED_NORMAL_STD
        return nn.init.trunc_normal_(weight, std=std, a=-2.0 * std, b=2.0 * std)
    if distribution == "uniform":
        limit = math.sqrt(3.0 * scale / fan_out)
        return nn.init.uniform_(weight, -limit, limit)
    raise ValueError(f"distribution must be 'truncated_normal' or 'uniform', got {distribution!r}.")


def glorot_linear(in_features: int, out_features: int) -> nn.Linear:
    """A linear layer with Glorot-normal weights and zero biases (the ImageNet code's ``glorot_normal`` layers)."""
    linear = nn.Linear(in_features, out_features)
    nn.init.xavier_normal_(linear.weight)
    nn.init.zeros_(linear.bias)
    return linear


def keras_conv(in_channels: int, out_channels: int) -> nn.Conv2d:
    """A 1×1 convolution with bias, initialised as the official ``CONV_KERNEL_INITIALIZER`` and zero biases."""
    conv = nn.Conv2d(in_channels, out_channels, 1)
    variance_scaling_(conv.weight, 2.0, "truncated_normal")
    nn.init.zeros_(conv.bias)
    return conv


def keras_dense(in_features: int, out_features: int) -> nn.Linear:
    """A linear layer initialised as the official ``DENSE_KERNEL_INITIALIZER``, zero biases."""
    linear = nn.Linear(in_features, out_features)
    variance_scaling_(linear.weight, 1.0 / 3.0, "uniform")
    nn.init.zeros_(linear.bias)
    return linear
