"""TNet's feature weighting module, used only by the official CUB / NABirds code (``--feat_weighting``;
Tpap/TNet ``CUB/models_cub.py``, ``feature_weighting_module_cls``). ImageNet and fMoW average the features.

For the ``N`` features ``v_i`` of an image: the context ``c = mean_i v_i`` goes through a squeeze-and-excitation
gate (``Dense D → D/4`` + swish, ``Dense → D`` + sigmoid); each gated ``g ⊙ v_i`` is scored by ``Dense D → 1``;
the weights ``w = softmax`` of the scores over the ``N`` features; the output is ``Σ w_i v_i`` of the
**un-gated** features. Dense layers use the official dense initialiser.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from lightning_modules.tnet.initializers import keras_dense


class FeatureWeighting(nn.Module):
    """Softmax-weighted aggregation of an image's features (see the module docstring).

    Shapes: ``forward(v (B, N, D))`` → ``(aggregate (B, D), weights (B, N))``; the weights are returned
    detached, for inspection.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.se_reduce = keras_dense(channels, max(1, channels // 4))
        self.se_expand = keras_dense(max(1, channels // 4), channels)
        self.output_linear = keras_dense(channels, 1)

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        gate = torch.sigmoid(self.se_expand(F.silu(self.se_reduce(features.mean(dim=1)))))
        weights = torch.softmax(self.output_linear(features * gate[:, None, :]).squeeze(-1), dim=1)
        return (weights[..., None] * features).sum(dim=1), weights.detach()
