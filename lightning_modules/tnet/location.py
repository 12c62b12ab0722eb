"""TNet's location module on ImageNet: a policy over the cells of a level's grid (Tpap/TNet ``ImageNet/models.py``,
``location_module_cls`` and ``meshgrid_positional_encoding``).

For grid features ``G`` (``C_loc × n × n``) and the image's global feature ``h`` (``D``):

1. ``G`` and ``h`` are detached: the policy's loss never trains the feature extractor;
2. ``U = [G ; h tiled over the grid ; a_y·m_y + b_y ; a_x·m_x + b_x]``, where ``m_y``, ``m_x`` are the cell
   coordinates in ``[−1, 1]`` (``linspace``) and ``a, b`` learned scalars initialised to 1 and 0;
3. ``q = conv₁ₓ₁(LeakyReLU₀.₂(conv₁ₓ₁(U)))``, ``C_loc + D + 2 → D → 1``, with biases, Glorot-normal weights;
4. ``π = softmax(q / ‖q‖₂)`` over the ``n²`` cells, flattened row by row.

The L2 normalisation bounds the logits to ``[−1, 1]``, so ``π_max / π_min ≤ e²``: the policy stays soft without an
entropy term (the official code has none). ``torch.nn.functional.normalize`` guards ``q = 0`` with ``1e-12``
where the official ``tf.linalg.normalize`` would divide by zero.

Parameters with ImageNet's BagNet-77 (``C_loc = 1024``, ``D = 512``): 788,485.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from lightning_modules.tnet.bagnet import LEAKY_SLOPE, glorot_conv


class CoordinateScaling(nn.Module):
    """A learned affine map ``a·m + b`` of a coordinate channel (official ``Dense(1)``, init ``a = 1``, ``b = 0``)."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(1))
        self.bias = nn.Parameter(torch.zeros(1))

    def forward(self, coordinates: torch.Tensor) -> torch.Tensor:
        return self.weight * coordinates + self.bias


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
        rows = torch.linspace(-1.0, 1.0, height, device=grid.device, dtype=grid.dtype)
        cols = torch.linspace(-1.0, 1.0, width, device=grid.device, dtype=grid.dtype)
        y = self.height_scaling(rows)[:, None].expand(height, width)
        x = self.width_scaling(cols)[None, :].expand(height, width)
        inputs = torch.cat(
            [
                grid,
                features[:, :, None, None].expand(-1, -1, height, width),
                y.expand(batch, 1, height, width),
                x.expand(batch, 1, height, width),
            ],
            dim=1,
        )
        logits = self.output_linear(F.leaky_relu(self.conv(inputs), LEAKY_SLOPE)).flatten(1)
        return torch.softmax(F.normalize(logits, dim=1), dim=1)
