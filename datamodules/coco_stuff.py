"""COCO-Stuff 10k (Caesar et al. 2018), release v1.1: 9,000 train / 1,000 test images, 171 classes.

Layout (``cocostuff-10k-v1.1.zip`` unpacked into ``root``)::

    root/images/<id>.jpg
    root/annotations/<id>.mat          field S: uint8/uint16 labels, 0 unlabelled, 1..182 the COCO-Stuff ids
    root/imageLists/{train,test,all}.txt

Of the 182 ids (1..91 things, 92..182 stuff), 11 thing ids have no annotations (12 street sign, 26 hat,
29 shoe, 30 eye glasses, 45 plate, 66 mirror, 68 window, 69 desk, 71 door, 83 blender, 91 hair brush;
the ids of the COCO-Stuff ``labels.txt``). The train id of a used id is its rank among the 171 used ids
(1 → 0, 13 → 11, 182 → 170, as mmsegmentation's and PyTorch-Encoding's 171-class loaders); 0 and the
unused ids become 255. A deterministic palette (the VOC colour map without its black) colours the classes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from datamodules.base import IGNORE_INDEX, Sample, SegmentationDataModule, lookup_label
from datamodules.voc import load_mat, mat_label_map, read_ids, voc_colormap

MAX_ID = 182
UNUSED_IDS = (12, 26, 29, 30, 45, 66, 68, 69, 71, 83, 91)
USED_IDS = tuple(label_id for label_id in range(1, MAX_ID + 1) if label_id not in UNUSED_IDS)


def label_lookup_table() -> np.ndarray:
    """``table[id]`` for ids 0..182: rank among the used ids, 255 for 0 (unlabelled) and the unused ids."""
    table = np.full(MAX_ID + 1, IGNORE_INDEX, dtype=np.uint8)
    table[list(USED_IDS)] = np.arange(len(USED_IDS))
    return table


ID_TO_TRAIN_ID_TABLE = label_lookup_table()

COCO_STUFF_CLASSES = (
    # 80 things (COCO ids 1..90 without the unused ones)
    "person",
    "bicycle",
    "car",
    "motorcycle",
    "airplane",
    "bus",
    "train",
    "truck",
    "boat",
    "traffic light",
    "fire hydrant",
    "stop sign",
    "parking meter",
    "bench",
    "bird",
    "cat",
    "dog",
    "horse",
    "sheep",
    "cow",
    "elephant",
    "bear",
    "zebra",
    "giraffe",
    "backpack",
    "umbrella",
    "handbag",
    "tie",
    "suitcase",
    "frisbee",
    "skis",
    "snowboard",
    "sports ball",
    "kite",
    "baseball bat",
    "baseball glove",
    "skateboard",
    "surfboard",
    "tennis racket",
    "bottle",
    "wine glass",
    "cup",
    "fork",
    "knife",
    "spoon",
    "bowl",
    "banana",
    "apple",
    "sandwich",
    "orange",
    "broccoli",
    "carrot",
    "hot dog",
    "pizza",
    "donut",
    "cake",
    "chair",
    "couch",
    "potted plant",
    "bed",
    "dining table",
    "toilet",
    "tv",
    "laptop",
    "mouse",
    "remote",
    "keyboard",
    "cell phone",
    "microwave",
    "oven",
    "toaster",
    "sink",
    "refrigerator",
    "book",
    "clock",
    "vase",
    "scissors",
    "teddy bear",
    "hair drier",
    "toothbrush",
    # 91 stuff (ids 92..182)
    "banner",
    "blanket",
    "branch",
    "bridge",
    "building-other",
    "bush",
    "cabinet",
    "cage",
    "cardboard",
    "carpet",
    "ceiling-other",
    "ceiling-tile",
    "cloth",
    "clothes",
    "clouds",
    "counter",
    "cupboard",
    "curtain",
    "desk-stuff",
    "dirt",
    "door-stuff",
    "fence",
    "floor-marble",
    "floor-other",
    "floor-stone",
    "floor-tile",
    "floor-wood",
    "flower",
    "fog",
    "food-other",
    "fruit",
    "furniture-other",
    "grass",
    "gravel",
    "ground-other",
    "hill",
    "house",
    "leaves",
    "light",
    "mat",
    "metal",
    "mirror-stuff",
    "moss",
    "mountain",
    "mud",
    "napkin",
    "net",
    "paper",
    "pavement",
    "pillow",
    "plant-other",
    "plastic",
    "platform",
    "playingfield",
    "railing",
    "railroad",
    "river",
    "road",
    "rock",
    "roof",
    "rug",
    "salad",
    "sand",
    "sea",
    "shelf",
    "sky-other",
    "skyscraper",
    "snow",
    "solid-other",
    "stairs",
    "stone",
    "straw",
    "structural-other",
    "table",
    "tent",
    "textile-other",
    "towel",
    "tree",
    "vegetable",
    "wall-brick",
    "wall-concrete",
    "wall-other",
    "wall-panel",
    "wall-stone",
    "wall-tile",
    "wall-wood",
    "water-other",
    "waterdrops",
    "window-blind",
    "window-other",
    "wood",
)


class CocoStuff10kDataModule(SegmentationDataModule):
    """COCO-Stuff 10k v1.1, 171 classes; see the module docstring for the layout and label conversion."""

    name = "COCO-Stuff 10k"
    num_classes = 171
    class_names = COCO_STUFF_CLASSES
    palette = voc_colormap(172)[1:]
    default_base_size = 520
    default_crop_size = 512
    default_splits = ("train", "test", "test")
    how_to_prepare = (
        "`python -m experiments data download coco_stuff_10k` makes it under the data root. By hand: download "
        "cocostuff-10k-v1.1.zip (github.com/nightrome/cocostuff10k) and unpack it, giving images/, annotations/ "
        "and imageLists/."
    )

    def list_samples(self, split: str) -> list[Sample]:
        listing = self.require(self.root / "imageLists" / f"{split}.txt", f"the list file of split {split!r}")
        annotations = self.require(self.root / "annotations", "the annotation folder")
        images = [self.root / "images" / f"{image_id}.jpg" for image_id in read_ids(listing)]
        for image in images:
            if not image.is_file():
                raise FileNotFoundError(f"{self.name}: image {image} listed in {listing} does not exist.")
        return self.pair_up(images, lambda image: annotations / f"{image.stem}.mat")

    def read_label(self, path: Path) -> np.ndarray:
        mat = load_mat(path)
        if "S" not in mat:
            raise ValueError(f"label file {path} has no field 'S' (expected a COCO-Stuff 10k annotation .mat file).")
        return lookup_label(ID_TO_TRAIN_ID_TABLE, mat_label_map(mat["S"], path, "S"), path)
