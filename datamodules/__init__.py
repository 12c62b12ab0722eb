"""Lightning DataModules and datasets for the segmentation experiments."""

from datamodules.base import IGNORE_INDEX, SegmentationDataModule
from datamodules.camvid import CamVidDataModule
from datamodules.cityscapes import CityscapesDataModule
from datamodules.coco_stuff import CocoStuff10kDataModule
from datamodules.fmow import FMoWDataModule
from datamodules.megapixel_digits import MegapixelDigitsDataModule
from datamodules.pascal_context import PascalContext59DataModule, PascalContext60DataModule
from datamodules.synthetic import (
    CLASS_NAMES,
    MAX_NUM_CLASSES,
    SyntheticScenes,
    SyntheticSegmentationDataModule,
    render_scene,
)
from datamodules.transforms import IMAGENET_MEAN, IMAGENET_STD
from datamodules.voc import VOCAugDataModule

__all__ = [
    "CLASS_NAMES",
    "IGNORE_INDEX",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "MAX_NUM_CLASSES",
    "CamVidDataModule",
    "CityscapesDataModule",
    "CocoStuff10kDataModule",
    "FMoWDataModule",
    "MegapixelDigitsDataModule",
    "PascalContext59DataModule",
    "PascalContext60DataModule",
    "SegmentationDataModule",
    "SyntheticScenes",
    "SyntheticSegmentationDataModule",
    "VOCAugDataModule",
    "render_scene",
]
