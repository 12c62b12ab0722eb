"""Gated-SCNN (Takikawa et al., ICCV 2019): the network, its losses, boundary targets and image gradients.

- :mod:`~lightning_modules.gscnn.network`: :class:`GSCNN` (regular stream, gated shape stream, ASPP with the
  edge branch, decoder) and :func:`shape_stream_maps` for figures;
- :mod:`~lightning_modules.gscnn.canny`: :func:`image_gradients`, Canny of the batch on its device;
- :mod:`~lightning_modules.gscnn.edges`: :func:`edge_targets`, the boundary band of the label maps;
- :mod:`~lightning_modules.gscnn.losses`: the four loss terms;
- :mod:`~lightning_modules.gscnn.module`: :class:`GSCNNModule`, the LightningModule that sums them.
"""

from lightning_modules.gscnn.canny import image_gradients
from lightning_modules.gscnn.edges import edge_targets
from lightning_modules.gscnn.module import GSCNNModule
from lightning_modules.gscnn.network import GSCNN, released_state_dict, shape_stream_maps, shape_stream_parameters

__all__ = [
    "GSCNN",
    "GSCNNModule",
    "edge_targets",
    "image_gradients",
    "released_state_dict",
    "shape_stream_maps",
    "shape_stream_parameters",
]
