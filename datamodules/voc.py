"""PASCAL VOC 2012 with the SBD augmented training set ("train_aug": 10,582 images; val: 1,449).

Layout (the VOC 2012 devkit and the SBD release, side by side under ``root``)::

    root/VOCdevkit/VOC2012/JPEGImages/<id>.jpg
    root/VOCdevkit/VOC2012/SegmentationClass/<id>.png       palette PNG: 0 background, 1..20, 255 void
    root/VOCdevkit/VOC2012/ImageSets/Segmentation/{train,val,trainval}.txt
    root/benchmark_RELEASE/dataset/img/<id>.jpg
    root/benchmark_RELEASE/dataset/cls/<id>.mat             struct GTcls, field Segmentation: uint8 0..20
    root/benchmark_RELEASE/dataset/{train,val}.txt

Splits: ``"train_aug"`` = (SBD train ∪ SBD val ∪ VOC train) − VOC val, the set used by DeepLab,
PyTorch-Encoding and mmsegmentation; any other name is a VOC list file under
``ImageSets/Segmentation`` (``"train"``, ``"val"``, ``"trainval"``).

Labels: the VOC PNG where the id has one (VOC's finer annotation, with the 255 void border), else
the SBD ``.mat`` (no void). Both already hold the 21 train ids (0 background, 1..20 the classes),
so no conversion is needed; 255 stays ignored. Images come from ``JPEGImages``, else from SBD's
``img`` (the same photographs).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np
from scipy.io import loadmat
from scipy.io.matlab import MatReadError

from datamodules.base import Sample, SegmentationDataModule, read_label_png

TRAIN_AUG = "train_aug"


def voc_colormap(count: int) -> tuple[tuple[int, int, int], ...]:
    """The PASCAL VOC devkit colour map (bits of the index spread over R, G, B); distinct for ``count <= 256``."""
    colours = []
    for index in range(count):
        red = green = blue = 0
        value = index
        for bit in range(7, -1, -1):
            red |= (value & 1) << bit
            green |= ((value >> 1) & 1) << bit
            blue |= ((value >> 2) & 1) << bit
            value >>= 3
        colours.append((red, green, blue))
    return tuple(colours)


def load_mat(path: Path) -> dict:
    """A MATLAB file as nested dicts (``scipy.io.loadmat(..., simplify_cells=True)``), with clear errors."""
    try:
        return loadmat(path, simplify_cells=True)
    except FileNotFoundError as err:
        raise FileNotFoundError(f"label file {path} does not exist.") from err
    except (ValueError, TypeError, OSError, MatReadError) as err:
        raise ValueError(
            f"cannot read MATLAB label file {path}: {err}. The file is corrupt or not a .mat file."
        ) from err


def mat_label_map(value: object, path: Path, field: str) -> np.ndarray:
    """The label map in ``field`` of MATLAB label file ``path``, as stored: no cast, which could wrap values around."""
    label = np.asarray(value)
    if not np.issubdtype(label.dtype, np.integer) or label.ndim != 2:
        raise ValueError(
            f"label file {path}: field {field} is {label.dtype} {label.shape}, expected a 2-D integer map."
        )
    return label


def read_ids(path: Path) -> list[str]:
    """The image ids of a list file, one per line, blank lines skipped."""
    return [line.strip() for line in path.read_text().splitlines() if line.strip()]


def train_aug_ids(
    sbd_train: Iterable[str], sbd_val: Iterable[str], voc_train: Iterable[str], voc_val: Iterable[str]
) -> list[str]:
    """(SBD train ∪ SBD val ∪ VOC train) − VOC val, sorted: 10,582 ids on the real lists."""
    return sorted((set(sbd_train) | set(sbd_val) | set(voc_train)) - set(voc_val))


class VOCAugDataModule(SegmentationDataModule):
    """PASCAL VOC 2012 (Everingham et al. 2010) + SBD (Hariharan et al. 2011); see the module docstring."""

    name = "PASCAL VOC 2012 + SBD"
    num_classes = 21
    class_names = (
        "background",
        "aeroplane",
        "bicycle",
        "bird",
        "boat",
        "bottle",
        "bus",
        "car",
        "cat",
        "chair",
        "cow",
        "diningtable",
        "dog",
        "horse",
        "motorbike",
        "person",
        "pottedplant",
        "sheep",
        "sofa",
        "train",
        "tvmonitor",
    )
    palette = voc_colormap(21)
    default_base_size = 520
    default_crop_size = 480
    default_splits = (TRAIN_AUG, "val", "val")
    how_to_prepare = (
        "`python -m experiments data download voc` makes it under the data root. By hand: unpack "
        "VOCtrainval_11-May-2012.tar (giving VOCdevkit/VOC2012) and SBD's benchmark.tgz (giving "
        "benchmark_RELEASE/dataset) into the same folder."
    )

    @property
    def voc_dir(self) -> Path:
        return self.root / "VOCdevkit" / "VOC2012"

    @property
    def sbd_dir(self) -> Path:
        return self.root / "benchmark_RELEASE" / "dataset"

    def voc_list(self, split: str) -> list[str]:
        path = self.voc_dir / "ImageSets" / "Segmentation" / f"{split}.txt"
        return read_ids(self.require(path, f"the VOC list file of split {split!r}"))

    def sbd_list(self, split: str) -> list[str]:
        return read_ids(self.require(self.sbd_dir / f"{split}.txt", f"the SBD list file of split {split!r}"))

    def split_ids(self, split: str) -> list[str]:
        """The ids of ``split``: the ``train_aug`` formula or a VOC list file."""
        if split == TRAIN_AUG:
            return train_aug_ids(
                self.sbd_list("train"), self.sbd_list("val"), self.voc_list("train"), self.voc_list("val")
            )
        return self.voc_list(split)

    def sample(self, image_id: str) -> Sample:
        """The image (VOC, else SBD) and label (VOC PNG, else SBD .mat) of one id."""
        images = (self.voc_dir / "JPEGImages" / f"{image_id}.jpg", self.sbd_dir / "img" / f"{image_id}.jpg")
        labels = (self.voc_dir / "SegmentationClass" / f"{image_id}.png", self.sbd_dir / "cls" / f"{image_id}.mat")
        image = next((path for path in images if path.is_file()), None)
        if image is None:
            raise FileNotFoundError(
                f"{self.name}: image {image_id!r} not found (looked for {images[0]} and {images[1]})."
            )
        label = next((path for path in labels if path.is_file()), None)
        if label is None:
            raise FileNotFoundError(
                f"{self.name}: image {image} has no label file (expected {labels[0]} or {labels[1]})."
            )
        return image, label

    def list_samples(self, split: str) -> list[Sample]:
        self.require(self.voc_dir, "the VOC 2012 devkit folder")
        if split == TRAIN_AUG:
            self.require(self.sbd_dir, "the SBD dataset folder")
        return [self.sample(image_id) for image_id in self.split_ids(split)]

    def read_label(self, path: Path) -> np.ndarray:
        if path.suffix == ".png":
            return read_label_png(path)
        if path.suffix == ".mat":
            try:
                label = load_mat(path)["GTcls"]["Segmentation"]
            except (KeyError, TypeError, IndexError) as err:
                raise ValueError(
                    f"label file {path} has no GTcls.Segmentation field (expected an SBD cls/<id>.mat file)."
                ) from err
            return mat_label_map(label, path, "GTcls.Segmentation")
        raise ValueError(f"label file {path} is neither a VOC .png nor an SBD .mat file.")
