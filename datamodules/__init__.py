"""Lightning DataModules and datasets for the segmentation experiments."""

from datamodules.synthetic import (
    CLASS_NAMES,
    IGNORE_INDEX,
    IMAGENET_MEAN,
    IMAGENET_STD,
    MAX_NUM_CLASSES,
    SyntheticScenes,
    SyntheticSegmentationDataModule,
    render_scene,
)

__all__ = [
    "CLASS_NAMES",
    "IGNORE_INDEX",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "MAX_NUM_CLASSES",
    "SyntheticScenes",
    "SyntheticSegmentationDataModule",
    "render_scene",
]
