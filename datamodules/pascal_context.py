"""PASCAL Context (Mottaghi et al. 2014): images of VOC 2010, 4,996 train / 5,104 val as ``trainval_merged.json``
splits them (the original release and the papers: 4,998 / 5,105; :mod:`datamodules.store.pascal_context`).

Layout (mmsegmentation's, made from ``trainval_merged.json`` with the Detail API by its
``tools/dataset_converters/pascal_context.py``)::

    root/VOCdevkit/VOC2010/JPEGImages/<id>.jpg
    root/VOCdevkit/VOC2010/SegmentationClassContext/<id>.png    0 background, 1..59 the classes (8- or 16-bit)
    root/VOCdevkit/VOC2010/ImageSets/SegmentationContext/{train,val}.txt

Two versions are benchmarked (see the protocol cheat sheet in ``sanet-danet-blocks.md``):

* :class:`PascalContext60DataModule`: 60 classes, background is class 0; the PNG values are the train ids.
* :class:`PascalContext59DataModule`: 59 classes, background is ignored (0 → 255) and class k → k − 1
  (mmsegmentation's ``reduce_zero_label``; PyTorch-Encoding's loader).

The class order is the Detail API's 59-class list, as in mmsegmentation's ``PascalContextDataset``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from datamodules.base import IGNORE_INDEX, Sample, SegmentationDataModule, lookup_label, read_label_png
from datamodules.voc import read_ids, voc_colormap

CONTEXT_CLASSES = (
    "aeroplane",
    "bag",
    "bed",
    "bedclothes",
    "bench",
    "bicycle",
    "bird",
    "boat",
    "book",
    "bottle",
    "building",
    "bus",
    "cabinet",
    "car",
    "cat",
    "ceiling",
    "chair",
    "cloth",
    "computer",
    "cow",
    "cup",
    "curtain",
    "dog",
    "door",
    "fence",
    "floor",
    "flower",
    "food",
    "grass",
    "ground",
    "horse",
    "keyboard",
    "light",
    "motorbike",
    "mountain",
    "mouse",
    "person",
    "plate",
    "platform",
    "pottedplant",
    "road",
    "rock",
    "sheep",
    "shelves",
    "sidewalk",
    "sign",
    "sky",
    "snow",
    "sofa",
    "table",
    "track",
    "train",
    "tree",
    "truck",
    "tvmonitor",
    "wall",
    "water",
    "window",
    "wood",
)

# Raw value 0..255 → train id of the 59-class version: 0 (background) and 255 → ignored, k → k − 1.
REDUCE_ZERO_LABEL = np.concatenate([[IGNORE_INDEX], np.arange(254), [IGNORE_INDEX]]).astype(np.uint8)


class PascalContextDataModule(SegmentationDataModule):
    """The layout shared by the 60- and 59-class versions; see the module docstring."""

    default_base_size = 520
    default_crop_size = 480
    default_splits = ("train", "val", "val")
    how_to_prepare = (
        "`python -m experiments data download pascal_context` makes it under the data root. By hand: unpack "
        "VOCtrainval_03-May-2010.tar (giving VOCdevkit/VOC2010), put trainval_merged.json in VOCdevkit/VOC2010 and "
        "run `python -m experiments data prepare pascal_context`, which writes SegmentationClassContext/ and "
        "ImageSets/SegmentationContext/{train,val}.txt."
    )

    def list_samples(self, split: str) -> list[Sample]:
        voc = self.require(self.root / "VOCdevkit" / "VOC2010", "the VOC 2010 devkit folder")
        labels = self.require(voc / "SegmentationClassContext", "the converted Context label folder")
        listing = self.require(
            voc / "ImageSets" / "SegmentationContext" / f"{split}.txt", f"the list file of split {split!r}"
        )
        images = [voc / "JPEGImages" / f"{image_id}.jpg" for image_id in read_ids(listing)]
        for image in images:
            if not image.is_file():
                raise FileNotFoundError(f"{self.name}: image {image} listed in {listing} does not exist.")
        return self.pair_up(images, lambda image: labels / f"{image.stem}.png")


class PascalContext60DataModule(PascalContextDataModule):
    """PASCAL Context with background as class 0 (60 classes)."""

    name = "PASCAL Context 60"
    num_classes = 60
    class_names = ("background", *CONTEXT_CLASSES)
    palette = voc_colormap(60)

    def read_label(self, path: Path) -> np.ndarray:
        return read_label_png(path)


class PascalContext59DataModule(PascalContextDataModule):
    """PASCAL Context without background (59 classes; background 0 → 255, class k → k − 1)."""

    name = "PASCAL Context 59"
    num_classes = 59
    class_names = CONTEXT_CLASSES
    palette = voc_colormap(60)[1:]

    def read_label(self, path: Path) -> np.ndarray:
        return lookup_label(REDUCE_ZERO_LABEL, read_label_png(path), path)
