"""Cityscapes (Cordts et al. 2016), fine annotations: 2,975 train / 500 val / 1,525 test images of 2048×1024.

Layout (``leftImg8bit_trainvaltest.zip`` and ``gtFine_trainvaltest.zip`` unpacked into ``root``)::

    root/leftImg8bit/{train,val,test}/<city>/<city>_<seq>_<frame>_leftImg8bit.png
    root/gtFine/{train,val,test}/<city>/<city>_<seq>_<frame>_gtFine_labelIds.png

The ``labelIds`` PNGs (8-bit, or 16-bit holding the same ids) hold the 34 label ids (0..33; the license
plate's id −1 is written as 255). A 256-entry lookup table turns them into the 19 train ids of the
official table (``labels.py`` of cityscapesScripts, column ``trainId``); every other id, the license
plate included, becomes 255. A value past the table (only a 16-bit PNG can hold one) is an error.
The palette is that table's ``color`` column.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from datamodules.base import IGNORE_INDEX, Sample, SegmentationDataModule, lookup_label, read_label_png

# label id → train id of the 19 evaluated classes (cityscapesScripts helpers/labels.py).
LABEL_TO_TRAIN_ID = {
    7: 0,  # road
    8: 1,  # sidewalk
    11: 2,  # building
    12: 3,  # wall
    13: 4,  # fence
    17: 5,  # pole
    19: 6,  # traffic light
    20: 7,  # traffic sign
    21: 8,  # vegetation
    22: 9,  # terrain
    23: 10,  # sky
    24: 11,  # person
    25: 12,  # rider
    26: 13,  # car
    27: 14,  # truck
    28: 15,  # bus
    31: 16,  # train
    32: 17,  # motorcycle
    33: 18,  # bicycle
}


def label_lookup_table() -> np.ndarray:
    """``table[label id]`` = train id, 255 for every id that is not evaluated."""
    table = np.full(256, IGNORE_INDEX, dtype=np.uint8)
    for label_id, train_id in LABEL_TO_TRAIN_ID.items():
        table[label_id] = train_id
    return table


LABEL_TO_TRAIN_ID_TABLE = label_lookup_table()
IMAGE_SUFFIX = "_leftImg8bit.png"
LABEL_SUFFIX = "_gtFine_labelIds.png"


def label_name(image: Path) -> str:
    """``<city>_<seq>_<frame>_leftImg8bit.png`` → ``<city>_<seq>_<frame>_gtFine_labelIds.png``."""
    return image.name.removesuffix(IMAGE_SUFFIX) + LABEL_SUFFIX


class CityscapesDataModule(SegmentationDataModule):
    """Cityscapes fine, 19 classes; see the module docstring for the layout and label conversion."""

    name = "Cityscapes"
    num_classes = 19
    class_names = (
        "road",
        "sidewalk",
        "building",
        "wall",
        "fence",
        "pole",
        "traffic light",
        "traffic sign",
        "vegetation",
        "terrain",
        "sky",
        "person",
        "rider",
        "car",
        "truck",
        "bus",
        "train",
        "motorcycle",
        "bicycle",
    )
    palette = (
        (128, 64, 128),
        (244, 35, 232),
        (70, 70, 70),
        (102, 102, 156),
        (190, 153, 153),
        (153, 153, 153),
        (250, 170, 30),
        (220, 220, 0),
        (107, 142, 35),
        (152, 251, 152),
        (70, 130, 180),
        (220, 20, 60),
        (255, 0, 0),
        (0, 0, 142),
        (0, 0, 70),
        (0, 60, 100),
        (0, 80, 100),
        (0, 0, 230),
        (119, 11, 32),
    )
    default_base_size = 1024
    default_crop_size = 768
    default_splits = ("train", "val", "val")
    how_to_prepare = (
        "Download leftImg8bit_trainvaltest.zip and gtFine_trainvaltest.zip from www.cityscapes-dataset.com and "
        "unpack both into the same folder (`python -m experiments data prepare cityscapes` unpacks them)."
    )

    def list_samples(self, split: str) -> list[Sample]:
        images_dir = self.require(self.root / "leftImg8bit" / split, f"the image folder of split {split!r}")
        labels_dir = self.require(self.root / "gtFine" / split, f"the gtFine label folder of split {split!r}")
        images = sorted(images_dir.glob(f"*/*{IMAGE_SUFFIX}"))
        return self.pair_up(images, lambda image: labels_dir / image.parent.name / label_name(image))

    def read_label(self, path: Path) -> np.ndarray:
        return lookup_label(LABEL_TO_TRAIN_ID_TABLE, read_label_png(path), path)
