"""Quickstart: a dilated FCN trained on the embedded synthetic scenes, on a CPU, in minutes."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from datamodules.synthetic import SyntheticSegmentationDataModule
from experiments.base import Experiment, Variant, register
from lightning_modules.fcn import FCN
from lightning_modules.segmentation import SegmentationModule


@register
class Quickstart(Experiment):
    name = "quickstart"
    paper = "none (embedded default data)"
    table = "FCN on synthetic scenes"
    description = "Dilated FCN (output stride 8, auxiliary head) on procedural scenes; CPU, no download."
    recipes: ClassVar[dict[str, dict[str, Any]]] = {
        "smoke": dict(
            backbone="test_resnet",
            num_classes=6,
            image_size=32,
            num_train=32,
            num_val=16,
            batch_size=8,
            max_epochs=1,
            lr=0.01,
            aux_weight=0.2,
            num_workers=0,
        ),
        "small": dict(
            backbone="test_resnet",
            num_classes=6,
            image_size=64,
            num_train=1024,
            num_val=128,
            batch_size=16,
            max_epochs=10,
            lr=0.03,
            aux_weight=0.2,
            num_workers=0,
        ),
    }

    def variants(self) -> list[Variant]:
        return [Variant("fcn", {"aux": True})]

    def build_datamodule(self, recipe: Mapping[str, Any]) -> SyntheticSegmentationDataModule:
        return SyntheticSegmentationDataModule(
            num_classes=recipe["num_classes"],
            image_size=recipe["image_size"],
            num_train=recipe["num_train"],
            num_val=recipe["num_val"],
            batch_size=recipe["batch_size"],
            num_workers=recipe["num_workers"],
        )

    def build_module(
        self, variant: Variant, recipe: Mapping[str, Any], datamodule: SyntheticSegmentationDataModule
    ) -> SegmentationModule:
        network = FCN(datamodule.num_classes, backbone=recipe["backbone"], output_stride=8, **variant.params)
        return SegmentationModule(
            network,
            datamodule.num_classes,
            loss_weights={"out": 1.0, "aux": recipe["aux_weight"]},
            lr=recipe["lr"],
            class_names=datamodule.class_names,
        )
