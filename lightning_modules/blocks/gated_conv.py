"""Gated Convolutional Layer (GCL) of Gated-SCNN (Takikawa et al., ICCV 2019, Sec. 3.2).

Official code: ``my_functionals/GatedSpatialConv.py``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def check_gate_inputs(features: torch.Tensor, gate: torch.Tensor, channels: int) -> None:
    """Raise ``ValueError`` unless ``features`` is ``(B, channels, H, W)`` and ``gate`` is ``(B, 1, H, W)``."""
    if features.ndim != 4 or features.shape[1] != channels:
        raise ValueError(f"features must have shape (B, {channels}, H, W), got {tuple(features.shape)}.")
    batch, _, height, width = features.shape
    if gate.shape != (batch, 1, height, width):
        raise ValueError(
            f"gate must have shape (B, 1, H, W) = ({batch}, 1, {height}, {width}) to match the features, "
            f"got {tuple(gate.shape)}."
        )


class GatedSpatialConv2d(nn.Module):
    """The GCL exactly as coded in the official ``my_functionals/GatedSpatialConv.py`` (``GatedSpatialConv2d(C, C)``).

    With shape-stream features ``s`` ``(B, C, H, W)`` and a one-channel gate ``r`` ``(B, 1, H, W)`` from the regular
    stream:

    - ``α = σ(BN₁(W₂ · ReLU(W₁ · BN_{C+1}([s; r]) + b₁) + b₂))``, with ``W₁`` a 1×1 convolution
      ``(C+1) → (C+1)`` and ``W₂`` a 1×1 convolution ``(C+1) → 1``, both with bias; the paper's "normalised 1×1
      convolution" ``σ(C_{1×1}(s ‖ r))``;
    - ``ŝ = W_t · (s ⊙ (α + 1))``: the paper's ``((s ⊙ α) + s)ᵀ w``, with ``W_t`` a 1×1 convolution ``C → C``
      without bias, Xavier-normal initialised; ``α`` is broadcast over the channels.

    Parameters: ``(C+1)² + 4(C+1) + 3 + C²``, i.e. 2,248 / 616 / 184 for C = 32 / 16 / 8.

    The attribute names are the official ones (``weight`` for ``W_t``, ``_gate_conv`` for the α stack with the
    indices 0..5), so that released GSCNN checkpoints load by name.

    Args:
        channels: C.

    Shapes: ``forward(features (B, C, H, W), gate (B, 1, H, W))`` → ``(B, C, H, W)``, or with
    ``return_gate=True`` the pair ``(output, α (B, 1, H, W))``; :meth:`gate` returns ``α`` alone.

    Raises:
        ValueError: if ``channels < 1``, or the inputs do not have the shapes above.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        if channels < 1:
            raise ValueError(f"channels must be a positive integer, got {channels}.")
        self.channels = channels
        self.weight = nn.Parameter(torch.empty(channels, channels, 1, 1))
        nn.init.xavier_normal_(self.weight)
        self._gate_conv = nn.Sequential(
            nn.BatchNorm2d(channels + 1),
            nn.Conv2d(channels + 1, channels + 1, 1),
            nn.ReLU(),
            nn.Conv2d(channels + 1, 1, 1),
            nn.BatchNorm2d(1),
            nn.Sigmoid(),
        )

    def gate(self, features: torch.Tensor, gate: torch.Tensor) -> torch.Tensor:
        """``α``: ``(B, C, H, W)``, ``(B, 1, H, W)`` → ``(B, 1, H, W)`` in (0, 1)."""
        check_gate_inputs(features, gate, self.channels)
        return self._gate_conv(torch.cat([features, gate], dim=1))

    def forward(
        self, features: torch.Tensor, gate: torch.Tensor, return_gate: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        alpha = self.gate(features, gate)
        output = F.conv2d(features * (alpha + 1), self.weight)
        return (output, alpha) if return_gate else output
