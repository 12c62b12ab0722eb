"""ImageNet (ILSVRC-2012) in the folder layout of the PyTorch ImageNet example.

::

    root/train/<wnid>/*.JPEG    e.g. root/train/n01440764/n01440764_10026.JPEG
    root/val/<wnid>/*.JPEG      the 50,000 validation images sorted into their class folders

Class ids follow the sorted ``train`` folder names (0..999), and the validation folders get the
same ids. Transforms are those of the SE, ECA and CBAM training code: random-size crop 224 (8-100 %
of the area, aspect 3/4-4/3) + horizontal flip for training; resize the shorter side to 256 and
take the centre 224 × 224 for validation; ImageNet mean / std normalisation.
"""

from __future__ import annotations

import os
from pathlib import Path

import lightning as L
import torch
from torch.utils.data import DataLoader
from torchvision import datasets
from torchvision.datasets.folder import IMG_EXTENSIONS
from torchvision.transforms import v2

from datamodules.base import SplitLoaders, default_num_workers
from datamodules.transforms import IMAGENET_MEAN, IMAGENET_STD

SPLITS = ("train", "val")


def imagenet_train_transforms(crop_size: int = 224) -> v2.Compose:
    """PIL image → random-size crop ``crop_size`` → flip → float32 ``(3, crop, crop)``, normalised."""
    return v2.Compose(
        [
            v2.RandomResizedCrop(crop_size, scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3), antialias=True),
            v2.RandomHorizontalFlip(),
            v2.ToImage(),
            v2.ToDtype(torch.float32, scale=True),
            v2.Normalize(mean=list(IMAGENET_MEAN), std=list(IMAGENET_STD)),
        ]
    )


def imagenet_eval_transforms(crop_size: int = 224, resize_size: int = 256) -> v2.Compose:
    """PIL image → shorter side ``resize_size`` → centre crop ``crop_size`` → float32, normalised."""
    return v2.Compose(
        [
            v2.Resize(resize_size, antialias=True),
            v2.CenterCrop(crop_size),
            v2.ToImage(),
            v2.ToDtype(torch.float32, scale=True),
            v2.Normalize(mean=list(IMAGENET_MEAN), std=list(IMAGENET_STD)),
        ]
    )


def _is_image(path: Path) -> bool:
    return path.is_file() and path.name.lower().endswith(IMG_EXTENSIONS)


def list_classes(split_dir: Path) -> list[str]:
    """Sorted class folders of ``split_dir``; raises ``FileNotFoundError`` naming what is missing."""
    if not split_dir.is_dir():
        raise FileNotFoundError(
            f"ImageNet: split folder {split_dir} does not exist; expected {split_dir}/<wnid>/*.JPEG."
        )
    entries = list(os.scandir(split_dir))
    classes = sorted(entry.name for entry in entries if entry.is_dir())
    if not classes:
        loose = sum(1 for entry in entries if _is_image(Path(entry.path)))
        hint = (
            f" It holds {loose} images directly: sort them into one folder per class (<wnid>), e.g. with the "
            "valprep.sh script of the PyTorch ImageNet example."
            if loose
            else ""
        )
        raise FileNotFoundError(f"ImageNet: {split_dir} has no class folders (<wnid>/*.JPEG).{hint}")
    return classes


class _ClassFolder(datasets.ImageFolder):
    """``ImageFolder`` with the class ids of another split (val uses train's ids)."""

    def __init__(self, root: Path, class_to_idx: dict[str, int], transform: v2.Transform) -> None:
        self._class_to_idx = class_to_idx
        super().__init__(str(root), transform=transform)

    def find_classes(self, directory: str) -> tuple[list[str], dict[str, int]]:
        present = set(list_classes(Path(directory)))
        unknown = sorted(present - set(self._class_to_idx))
        if unknown:
            raise FileNotFoundError(
                f"ImageNet: {directory} has class folders {unknown[:5]}{' ...' if len(unknown) > 5 else ''} "
                "that the train split lacks."
            )
        mapping = {name: idx for name, idx in self._class_to_idx.items() if name in present}
        return sorted(mapping, key=mapping.get), mapping


class ImageNetDataModule(SplitLoaders, L.LightningDataModule):
    """ImageNet train / val from ``root/train/<wnid>`` and ``root/val/<wnid>`` (see the module docstring).

    Args:
        root: the folder holding ``train`` and ``val``.
        batch_size: images per batch and process (256 in the papers' single-node recipes).
        num_workers: loader processes (default: the CPUs available, at most 8).
        crop_size, resize_size: 224 and 256 (validation: resize the shorter side, centre crop).
        train_transform, eval_transform: other preprocessing of the PIL images of each split (e.g. TNet's
            TF-slim Inception pipeline of :mod:`datamodules.inception`), in place of the ones above.

    Batches are images ``(B, 3, crop, crop)`` float32 and labels ``(B,)`` int64. The test loader is
    the val split (ImageNet's test labels are not public). ``num_classes`` and ``class_names`` (the
    wnids) come from the train folders and can be read before :meth:`setup`.
    """

    in_chans = 3

    def __init__(
        self,
        root: str | os.PathLike,
        batch_size: int = 256,
        num_workers: int | None = None,
        crop_size: int = 224,
        resize_size: int = 256,
        train_transform: v2.Transform | None = None,
        eval_transform: v2.Transform | None = None,
    ) -> None:
        super().__init__()
        self.root = Path(root)
        self.batch_size = batch_size
        self.num_workers = default_num_workers() if num_workers is None else num_workers
        self.crop_size = crop_size
        self.resize_size = resize_size
        self.train_transform = train_transform or imagenet_train_transforms(crop_size)
        self.eval_transform = eval_transform or imagenet_eval_transforms(crop_size, resize_size)
        self.save_hyperparameters(ignore=["train_transform", "eval_transform"])
        self._classes: list[str] | None = None
        self.train_set: datasets.ImageFolder | None = None
        self.val_set: datasets.ImageFolder | None = None

    def check_layout(self, stage: str | None = None) -> list[str]:
        """The class folders (wnids) of the train split, after checking that both split folders exist (every
        ``stage`` needs both: the class ids come from train)."""
        if not self.root.is_dir():
            raise FileNotFoundError(
                f"ImageNet root {self.root} does not exist; expected {self.root}/train/<wnid>/*.JPEG and "
                f"{self.root}/val/<wnid>/*.JPEG."
            )
        missing = [split for split in SPLITS if not (self.root / split).is_dir()]
        if missing:
            raise FileNotFoundError(
                f"ImageNet root {self.root} lacks the split folder(s) {', '.join(missing)}; expected "
                f"{self.root}/train/<wnid>/*.JPEG and {self.root}/val/<wnid>/*.JPEG."
            )
        return list_classes(self.root / "train")

    @property
    def class_names(self) -> list[str]:
        if self._classes is None:
            self._classes = self.check_layout()
        return self._classes

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def _dataset(self, split: str, transform: v2.Transform) -> datasets.ImageFolder:
        class_to_idx = {name: i for i, name in enumerate(self.class_names)}
        try:
            return _ClassFolder(self.root / split, class_to_idx, transform)
        except FileNotFoundError as err:
            if str(err).startswith("ImageNet"):
                raise
            raise FileNotFoundError(f"ImageNet {split} split in {self.root / split}: {err}") from err

    def setup(self, stage: str | None = None) -> None:
        """Check the layout and index both splits (walks every class folder once)."""
        self._classes = self.check_layout()
        if self.train_set is None and stage in (None, "fit"):
            self.train_set = self._dataset("train", self.train_transform)
        if self.val_set is None:
            self.val_set = self._dataset("val", self.eval_transform)

    def test_dataloader(self) -> DataLoader:
        """The validation split again (the papers report ImageNet val)."""
        return self._loader(self.val_set)

    def predict_dataloader(self) -> DataLoader:
        return self.test_dataloader()
