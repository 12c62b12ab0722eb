"""How TNet adds a feature's position to it: the positional-encoding modules (official
``positional_encoding_module_cls``).

- :class:`ConcatPositionalFusion` (ImageNet, ``ImageNet/models.py``): ``v = W [h ; PE] + b``, a linear layer from
  ``2D`` to ``D`` with no activation, the encoding as wide as the feature (``D``). Glorot-normal weights, zero
  biases. ``D = 512``: 524,800 parameters.
- :class:`AdditivePositionalFusion` (fMoW / CUB, ``fMoW/models_fMoW.py``): ``v = swish(h + W·PE + b)``, the
  encoding ``D / pos_dim_divisor`` wide (``pos_dim_divisor = 4``), ``W`` from that width to ``D`` with the
  official dense initialiser. ``D = 1280``: 410,880 parameters.

Both expose ``encoding_channels``, the width of the
:func:`~lightning_modules.tnet.positional_encoding.positional_encoding` they take.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from lightning_modules.tnet.initializers import glorot_linear, keras_dense


class ConcatPositionalFusion(nn.Module):
    """``v = Linear_{2D → D}([h ; PE])``.

    Shapes: ``forward(h (M, D), encoding (M, D))`` → ``(M, D)``.
    """

    def __init__(self, channels: int = 512) -> None:
        super().__init__()
        self.encoding_channels = channels
        self.linear = glorot_linear(2 * channels, channels)

    def forward(self, features: torch.Tensor, encoding: torch.Tensor) -> torch.Tensor:
        return self.linear(torch.cat([features, encoding], dim=1))


class AdditivePositionalFusion(nn.Module):
    """``v = swish(h + Linear_{D / divisor → D}(PE))``.

    Shapes: ``forward(h (M, D), encoding (M, D // divisor))`` → ``(M, D)``.
    """

    def __init__(self, channels: int = 1280, pos_dim_divisor: int = 4) -> None:
        super().__init__()
        if pos_dim_divisor < 1 or channels // pos_dim_divisor < 12:
            raise ValueError(
                f"pos_dim_divisor must leave an encoding of at least 12 channels, got {channels} // {pos_dim_divisor}."
            )
        self.encoding_channels = channels // pos_dim_divisor
        self.linear = keras_dense(self.encoding_channels, channels)

    def forward(self, features: torch.Tensor, encoding: torch.Tensor) -> torch.Tensor:
        return F.silu(features + self.linear(encoding))
