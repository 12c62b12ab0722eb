"""Baselines on real CamVid: the dilated FCN of the DANet / SANet papers and DeepLabV3+.

CamVid is not one of the papers' benchmarks; it is the real dataset every session can reach, so
these runs check the whole pipeline on real images and give the reference the attention heads
are compared with. Backbones train from scratch here (``pretrained=False``).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import lightning as L

from datamodules.camvid import CamVidDataModule
from experiments.base import Experiment, Variant, register
from experiments.builders import fcn_module, segmentation_module, synthetic_datamodule
from lightning_modules.deeplab import DeepLabV3Plus
from lightning_modules.segmentation import SegmentationModule

CAMVID_ROOT = str(Path(__file__).resolve().parents[2] / "shared" / "data" / "camvid")

_SMOKE = dict(
    data="synthetic",
    root=None,
    backbone="test_resnet",
    num_classes=6,
    image_size=32,
    num_train=16,
    num_val=8,
    batch_size=4,
    max_epochs=1,
    lr=0.01,
    aux_weight=0.2,
    num_workers=0,
)
_CAMVID = dict(
    data="camvid",
    root=CAMVID_ROOT,
    base_size=360,
    crop_size=(360, 480),
    eval_short_side=None,
    batch_size=8,
    num_workers=None,
    aux_weight=0.2,
)


@register
class CamVidBaselines(Experiment):
    name = "baselines.camvid"
    paper = "FCN / DeepLabV3+ baselines"
    table = "CamVid (SegNet split), test"
    description = "Dilated FCN (ResNet, output stride 8, auxiliary head on stage 3) and DeepLabV3+ from scratch."
    recipes: ClassVar[dict[str, dict[str, Any]]] = {
        "smoke": _SMOKE,
        "small": {**_CAMVID, "backbone": "resnet50", "max_epochs": 120, "lr": 0.01},
    }

    def variants(self) -> list[Variant]:
        return [
            Variant("fcn", {"architecture": "fcn"}),
            Variant("deeplabv3plus", {"architecture": "deeplabv3plus"}),
        ]

    def build_datamodule(self, recipe: Mapping[str, Any]) -> L.LightningDataModule:
        if recipe["data"] == "synthetic":
            return synthetic_datamodule(recipe)
        return CamVidDataModule(
            recipe["root"],
            crop_size=tuple(recipe["crop_size"]),
            base_size=recipe["base_size"],
            batch_size=recipe["batch_size"],
            num_workers=recipe["num_workers"],
            eval_short_side=recipe["eval_short_side"],
        )

    def build_module(
        self, variant: Variant, recipe: Mapping[str, Any], datamodule: L.LightningDataModule
    ) -> SegmentationModule:
        if variant.params["architecture"] == "fcn":
            return fcn_module(recipe, datamodule)
        network = DeepLabV3Plus(datamodule.num_classes, backbone=recipe["backbone"], output_stride=16)
        return segmentation_module(network, recipe, datamodule, {"out": 1.0})
