"""TNet (Papadopoulos, Korus, Memon, NeurIPS 2021): hard-attention traversal of large images.

- :mod:`~lightning_modules.tnet.grid`: :func:`grid_geometry`, the official patch / stride / padding arithmetic;
- :mod:`~lightning_modules.tnet.positional_encoding`: :func:`positional_encoding` of the (y, x, s) triplets;
- :mod:`~lightning_modules.tnet.bagnet`: :class:`BagNet77`, the ImageNet feature extractor;
- :mod:`~lightning_modules.tnet.location`: :class:`LocationModule`, the ImageNet policy over a level's cells.
"""

from lightning_modules.tnet.bagnet import BagNet77
from lightning_modules.tnet.grid import grid_geometry
from lightning_modules.tnet.location import LocationModule
from lightning_modules.tnet.positional_encoding import positional_encoding

__all__ = ["BagNet77", "LocationModule", "grid_geometry", "positional_encoding"]
