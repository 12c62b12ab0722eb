"""Pieces that several experiments build the same way from their recipes."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import lightning as L
from torch import nn

from datamodules.synthetic import SyntheticSegmentationDataModule
from lightning_modules.fcn import FCN
from lightning_modules.segmentation import SegmentationModule


def synthetic_datamodule(recipe: Mapping[str, Any]) -> SyntheticSegmentationDataModule:
    """The embedded scenes of a ``smoke`` (or quickstart) recipe; the test split mirrors the val size."""
    return SyntheticSegmentationDataModule(
        num_classes=recipe["num_classes"],
        image_size=recipe["image_size"],
        num_train=recipe["num_train"],
        num_val=recipe["num_val"],
        num_test=recipe["num_val"],
        batch_size=recipe["batch_size"],
        num_workers=recipe["num_workers"],
    )


def segmentation_module(
    network: nn.Module, recipe: Mapping[str, Any], datamodule: L.LightningDataModule, loss_weights: dict[str, float]
) -> SegmentationModule:
    """A SegmentationModule with the recipe's learning rate and the DataModule's classes."""
    return SegmentationModule(
        network,
        datamodule.num_classes,
        loss_weights=loss_weights,
        lr=recipe["lr"],
        class_names=datamodule.class_names,
    )


def fcn_module(recipe: Mapping[str, Any], datamodule: L.LightningDataModule, **fcn_kwargs: Any) -> SegmentationModule:
    """The dilated FCN baseline (output stride 8, auxiliary head weighted by ``aux_weight``)."""
    network = FCN(datamodule.num_classes, backbone=recipe["backbone"], output_stride=8, **fcn_kwargs)
    return segmentation_module(network, recipe, datamodule, {"out": 1.0, "aux": recipe["aux_weight"]})
