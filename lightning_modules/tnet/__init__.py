"""TNet (Papadopoulos, Korus, Memon, NeurIPS 2021): hard-attention traversal of large images.

- :mod:`~lightning_modules.tnet.grid`: :func:`grid_geometry`, the official patch / stride / padding arithmetic;
- :mod:`~lightning_modules.tnet.traversal`: top-k cell choice, batched crops, child coordinates, the resize;
- :mod:`~lightning_modules.tnet.positional_encoding`: :func:`positional_encoding` of the (y, x, s) triplets;
- :mod:`~lightning_modules.tnet.bagnet`: :class:`BagNet77`, the ImageNet feature extractor;
- :mod:`~lightning_modules.tnet.extractors`: EfficientNet-B0 (fMoW) and any timm CNN as extractors;
- :mod:`~lightning_modules.tnet.location`: the ImageNet and fMoW policies over a level's cells;
- :mod:`~lightning_modules.tnet.fusion`: the two positional-encoding modules;
- :mod:`~lightning_modules.tnet.feature_weighting`: the CUB feature weighting module;
- :mod:`~lightning_modules.tnet.network`: :class:`TNet` and the builders;
- :mod:`~lightning_modules.tnet.baselines`: the whole-image baselines;
- :mod:`~lightning_modules.tnet.losses` and :mod:`~lightning_modules.tnet.module`: the loss and :class:`TNetModule`.
"""

from lightning_modules.tnet.bagnet import BagNet77
from lightning_modules.tnet.baselines import (
    WholeImageClassifier,
    bagnet77_baseline,
    efficientnet_b0_baseline,
    timm_baseline,
)
from lightning_modules.tnet.grid import grid_geometry
from lightning_modules.tnet.location import LocationModule, SELocationModule
from lightning_modules.tnet.losses import tnet_loss
from lightning_modules.tnet.module import TNetModule
from lightning_modules.tnet.network import TNet, TNetOutput, tnet_fmow, tnet_imagenet, tnet_timm
from lightning_modules.tnet.positional_encoding import positional_encoding

__all__ = [
    "BagNet77",
    "LocationModule",
    "SELocationModule",
    "TNet",
    "TNetModule",
    "TNetOutput",
    "WholeImageClassifier",
    "bagnet77_baseline",
    "efficientnet_b0_baseline",
    "grid_geometry",
    "positional_encoding",
    "timm_baseline",
    "tnet_fmow",
    "tnet_imagenet",
    "tnet_loss",
    "tnet_timm",
]
