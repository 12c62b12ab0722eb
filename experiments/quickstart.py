"""Quickstart: a dilated FCN trained on the embedded synthetic scenes, on a CPU, in minutes."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from datamodules.synthetic import SyntheticSegmentationDataModule
from experiments.base import Experiment, Variant, register
from experiments.builders import fcn_module, synthetic_datamodule
from lightning_modules.segmentation import SegmentationModule


@register
class Quickstart(Experiment):
    name = "quickstart"
    paper = "none (embedded default data)"
    table = "FCN on synthetic scenes"
    description = "Dilated FCN (output stride 8, auxiliary head) on procedural scenes; CPU, no download."
    # Both profiles are sized for a CPU.
    cpu_profiles = ("smoke", "small")
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
        return synthetic_datamodule(recipe)

    def build_module(
        self, variant: Variant, recipe: Mapping[str, Any], datamodule: SyntheticSegmentationDataModule
    ) -> SegmentationModule:
        return fcn_module(recipe, datamodule, **variant.params)
