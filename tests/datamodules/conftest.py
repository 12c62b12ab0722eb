"""Builders of small dataset trees in the real published layouts."""

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy.io import savemat


def write_image(path: Path, height: int, width: int, seed: int = 0, fmt: str | None = None) -> None:
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8)).save(path, format=fmt)


def write_label(path: Path, label: np.ndarray, palette: bool = False) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.fromarray(label.astype(np.uint8))
    if palette:
        # putpalette turns the "L" image into a "P" one whose indices are the label values
        image.putpalette(np.random.default_rng(0).integers(0, 256, 768, dtype=np.uint8).tolist())
    image.save(path)


@pytest.fixture
def save_16_bit():
    """``save(path, label)``: writes ``label`` as a 16-bit greyscale PNG holding its values as they are, and
    checks that Pillow reads the file back as 16-bit (mode ``I;16``, or ``I`` in some Pillow versions)."""

    def save(path: Path, label: np.ndarray) -> None:
        Image.fromarray(np.asarray(label).astype(np.uint16)).save(path)
        assert Image.open(path).mode in ("I;16", "I")

    return save


def blocky_label(height: int, width: int, values, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    blocks = rng.choice(np.asarray(values), size=(height // 8 + 1, width // 8 + 1))
    return np.kron(blocks, np.ones((8, 8), dtype=blocks.dtype))[:height, :width]


@pytest.fixture
def camvid_tree(tmp_path) -> Path:
    """A CamVid tree in SegNet's layout: 3 train, 2 val, 2 test images of 40x48, void = 11."""
    root = tmp_path / "camvid"
    for split, count in (("train", 3), ("val", 2), ("test", 2)):
        lines = []
        for i in range(count):
            name = f"0001TP_{split}{i:03d}"
            write_image(root / split / f"{name}.jpg", 40, 48, seed=i)
            write_label(root / f"{split}annot" / f"{name}.png", blocky_label(40, 48, range(12), seed=i))
            lines.append(f"{split}/{name}.jpg {split}annot/{name}.png")
        (root / "splits").mkdir(exist_ok=True)
        (root / "splits" / f"{split}.txt").write_text("\n".join(lines) + "\n")
    return root


def write_mat(path: Path, content: dict) -> None:
    """A MATLAB file; a dict value becomes a struct (as in SBD's ``GTcls``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    savemat(path, content)


def striped_label(height: int, width: int, values, background) -> np.ndarray:
    """Blocks of ``background`` values with one horizontal stripe of 4 rows per value of ``values`` on top."""
    label = blocky_label(height, width, background)
    for row, value in enumerate(values):
        label[4 * row : 4 * row + 4] = value
    return label


VOC_IDS = {
    "voc_train": ["2007_000032", "2007_000039", "2008_000001"],
    "voc_val": ["2007_000033", "2008_000002"],
    "sbd_train": ["2007_000032", "2007_000033", "2008_000003"],
    "sbd_val": ["2008_000004"],
}
# SBD label of the SBD-only id 2008_000004 (its image is only in SBD's img/) and of 2007_000032 (which
# also has a VOC PNG, which must win).
SBD_ONLY_LABEL = np.repeat(np.array([[7], [15]], dtype=np.uint8), 20, axis=0).repeat(48, axis=1)


@pytest.fixture
def voc_tree(tmp_path) -> Path:
    """VOC 2012 + SBD: VOC train 3 / val 2, SBD train 3 / val 1; train_aug = 5 ids; 40x48 images."""
    root = tmp_path / "voc"
    voc = root / "VOCdevkit" / "VOC2012"
    sbd = root / "benchmark_RELEASE" / "dataset"
    for seed, image_id in enumerate(VOC_IDS["voc_train"] + VOC_IDS["voc_val"]):
        write_image(voc / "JPEGImages" / f"{image_id}.jpg", 40, 48, seed=seed)
        label = striped_label(40, 48, (255,), range(21))  # a void (255) stripe on top
        write_label(voc / "SegmentationClass" / f"{image_id}.png", label, palette=True)
    write_image(voc / "JPEGImages" / "2008_000003.jpg", 40, 48, seed=10)
    for seed, image_id in enumerate(VOC_IDS["sbd_train"] + VOC_IDS["sbd_val"]):
        write_image(sbd / "img" / f"{image_id}.jpg", 40, 48, seed=20 + seed)
        label = SBD_ONLY_LABEL if image_id in ("2008_000004", "2007_000032") else blocky_label(40, 48, range(21))
        write_mat(sbd / "cls" / f"{image_id}.mat", {"GTcls": {"Segmentation": label, "CategoriesPresent": [1]}})
    lists = voc / "ImageSets" / "Segmentation"
    lists.mkdir(parents=True)
    for split in ("train", "val"):
        (lists / f"{split}.txt").write_text("\n".join(VOC_IDS[f"voc_{split}"]) + "\n")
        (sbd / f"{split}.txt").write_text("\n".join(VOC_IDS[f"sbd_{split}"]) + "\n")
    return root


# Raw Context values of the top stripes of every label: background, 5, 59.
CONTEXT_STRIPES = (0, 5, 59)


@pytest.fixture
def context_tree(tmp_path) -> Path:
    """PASCAL Context in mmsegmentation's layout: 3 train, 2 val images of 40x48, labels 0..59."""
    root = tmp_path / "context"
    voc = root / "VOCdevkit" / "VOC2010"
    lists = voc / "ImageSets" / "SegmentationContext"
    lists.mkdir(parents=True)
    for split, count in (("train", 3), ("val", 2)):
        ids = [f"2008_{split}{i:03d}" for i in range(count)]
        for seed, image_id in enumerate(ids):
            write_image(voc / "JPEGImages" / f"{image_id}.jpg", 40, 48, seed=seed)
            label = striped_label(40, 48, CONTEXT_STRIPES, range(60))
            write_label(voc / "SegmentationClassContext" / f"{image_id}.png", label)
        (lists / f"{split}.txt").write_text("\n".join(ids) + "\n")
    return root


# Raw Cityscapes label ids of the top stripes: car, unlabeled, license plate (-1 stored as 255), road, bicycle.
CITYSCAPES_STRIPES = (26, 0, 255, 7, 33)


@pytest.fixture
def cityscapes_tree(tmp_path) -> Path:
    """Cityscapes fine: train 3 images in 2 cities, val 2 images in 1 city, 40x48 PNGs, label ids 0..33."""
    root = tmp_path / "cityscapes"
    cities = {"train": ("aachen", "aachen", "bochum"), "val": ("frankfurt", "frankfurt")}
    for split, names in cities.items():
        for frame, city in enumerate(names):
            stem = f"{city}_000000_{frame:06d}"
            write_image(root / "leftImg8bit" / split / city / f"{stem}_leftImg8bit.png", 40, 48, seed=frame)
            label = striped_label(40, 48, CITYSCAPES_STRIPES, [*range(34), 255])
            write_label(root / "gtFine" / split / city / f"{stem}_gtFine_labelIds.png", label)
    return root


# Raw COCO-Stuff ids of the top stripes: person, street sign (unused), stop sign, wood, unlabelled.
COCO_STUFF_STRIPES = (1, 12, 13, 182, 0)


@pytest.fixture
def coco_stuff_tree(tmp_path) -> Path:
    """COCO-Stuff 10k v1.1: train 3, test 2 images of 40x48; annotations S (uint16) with ids 0..182."""
    root = tmp_path / "cocostuff-10k-v1.1"
    (root / "imageLists").mkdir(parents=True)
    for split, count in (("train", 3), ("test", 2)):
        ids = [f"COCO_{split}2014_{i:012d}" for i in range(count)]
        for seed, image_id in enumerate(ids):
            write_image(root / "images" / f"{image_id}.jpg", 40, 48, seed=seed)
            label = striped_label(40, 48, COCO_STUFF_STRIPES, range(183)).astype(np.uint16)
            write_mat(root / "annotations" / f"{image_id}.mat", {"S": label, "names": ["unlabeled"]})
        (root / "imageLists" / f"{split}.txt").write_text("\n".join(ids) + "\n")
    return root
