"""TNet's location modules: a policy over the cells of a level's grid.

:class:`LocationModule` is the ImageNet one (Tpap/TNet ``ImageNet/models.py``, ``location_module_cls`` and
``meshgrid_positional_encoding``). For grid features ``G`` (``C_loc × n × n``) and the image's global feature
``h`` (``D``):

1. ``G`` and ``h`` are detached: the policy's loss never trains the feature extractor;
2. ``U = [G ; h tiled over the grid ; a_y·m_y + b_y ; a_x·m_x + b_x]``, where ``m_y``, ``m_x`` are the cell
   coordinates in ``[−1, 1]`` (``linspace``) and ``a, b`` learned scalars initialised to 1 and 0;
3. ``q = conv₁ₓ₁(LeakyReLU₀.₂(conv₁ₓ₁(U)))``, ``C_loc + D + 2 → D → 1``, with biases, Glorot-normal weights;
4. ``π = softmax(q / ‖q‖₂)`` over the ``n²`` cells, flattened row by row.

The L2 normalisation bounds the logits to ``[−1, 1]``, so ``π_max / π_min ≤ e²``: the policy stays soft without an
entropy term (the official code has none). ``torch.nn.functional.normalize`` guards ``q = 0`` with ``1e-12``
where the official ``tf.linalg.normalize`` would divide by zero.

Parameters with ImageNet's BagNet-77 (``C_loc = 1024``, ``D = 512``): 788,485.

:class:`SELocationModule` is the fMoW / CUB one (``fMoW/models_fMoW.py``, ``location_module_cls``): it reads the
grid features only (detached), ``1×1 conv C → C`` + swish, a squeeze-and-excitation gate (``C → C/2`` swish
``→ C`` sigmoid) for context, the two learned coordinate channels, ``1×1 conv C + 2 → C`` + swish, ``1×1 conv
C → 1``, then the same L2-normalised softmax. Parameters with EfficientNet-B0's 80-channel grid: 19,725.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from lightning_modules.tnet.bagnet import LEAKY_SLOPE, glorot_conv
from lightning_modules.tnet.initializers import keras_conv


class CoordinateScaling(nn.Module):
    """A learned affine map ``a·m + b`` of a coordinate channel (official ``Dense(1)``, init ``a = 1``, ``b = 0``)."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(1))
        self.bias = nn.Parameter(torch.zeros(1))

    def forward(self, coordinates: torch.Tensor) -> torch.Tensor:
        return self.weight * coordinates + self.bias


def coordinate_channels(
    batch: int,
    height: int,
    width: int,
    height_scaling: CoordinateScaling,
    width_scaling: CoordinateScaling,
    like: torch.Tensor,
) -> torch.Tensor:
    """``(batch, 2, height, width)``: the scaled row and column coordinates, each a ``linspace(−1, 1)``."""
    rows = torch.linspace(-1.0, 1.0, height, device=like.device, dtype=like.dtype)
    cols = torch.linspace(-1.0, 1.0, width, device=like.device, dtype=like.dtype)
    y = height_scaling(rows)[:, None].expand(height, width)
    x = width_scaling(cols)[None, :].expand(height, width)
    return torch.stack([y, x]).expand(batch, 2, height, width)


def normalised_softmax(logits: torch.Tensor) -> torch.Tensor:
    """``softmax(q / ‖q‖₂)`` over the cells of ``(B, 1, n, n)`` logits, flattened row by row to ``(B, n²)``."""
    return torch.softmax(F.normalize(logits.flatten(1), dim=1), dim=1)


class LocationModule(nn.Module):
    """The policy ``π`` over a level's ``n × n`` cells (see the module docstring).

    Args:
        location_channels: channels of the grid features ``G`` (1024 for BagNet-77).
        global_channels: size of the global feature ``h`` (512), also the hidden width.

    Shapes: ``forward(G (B, location_channels, n, n), h (B, global_channels))`` → ``π (B, n·n)``, rows summing to 1.
    """

    def __init__(self, location_channels: int = 1024, global_channels: int = 512) -> None:
        super().__init__()
        self.height_scaling = CoordinateScaling()
        self.width_scaling = CoordinateScaling()
        self.conv = glorot_conv(location_channels + global_channels + 2, global_channels)
        self.output_linear = glorot_conv(global_channels, 1)

    def forward(self, grid: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
        grid, features = grid.detach(), features.detach()
        batch, _, height, width = grid.shape
        inputs = torch.cat(
            [
                grid,
                features[:, :, None, None].expand(-1, -1, height, width),
                coordinate_channels(batch, height, width, self.height_scaling, self.width_scaling, grid),
            ],
            dim=1,
        )
        return normalised_softmax(self.output_linear(F.leaky_relu(self.conv(inputs), LEAKY_SLOPE)))


class SELocationModule(nn.Module):
    """The fMoW / CUB policy ``π`` over a level's cells (see the module docstring); the global feature is unused.

    Args:
        location_channels: channels ``C`` of the grid features (80 for EfficientNet-B0).

    Shapes: ``forward(G (B, C, n, n), h)`` → ``π (B, n·n)``; ``h`` is accepted for a common interface.
    """

    def __init__(self, location_channels: int = 80) -> None:
        super().__init__()
        channels = location_channels
        self.init_conv = keras_conv(channels, channels)
        self.se_reduce = keras_conv(channels, max(1, channels // 2))
        self.se_expand = keras_conv(max(1, channels // 2), channels)
        self.height_scaling = CoordinateScaling()
        self.width_scaling = CoordinateScaling()
        self.final_conv = keras_conv(channels + 2, channels)
        self.output_linear = keras_conv(channels, 1)

    def forward(self, grid: torch.Tensor, features: torch.Tensor | None = None) -> torch.Tensor:
        x = F.silu(self.init_conv(grid.detach()))
        gate = torch.sigmoid(self.se_expand(F.silu(self.se_reduce(x.mean(dim=(-2, -1), keepdim=True)))))
        x = x * gate
        batch, _, height, width = x.shape
        coordinates = coordinate_channels(batch, height, width, self.height_scaling, self.width_scaling, x)
        x = F.silu(self.final_conv(torch.cat([x, coordinates], dim=1)))
        return normalised_softmax(self.output_linear(x))
