"""SegmentationDataModule: datasets in their own published layout on disk.

A subclass says where each split's image / label files are (:meth:`list_samples`, which checks
the layout and names what is missing) and how a raw label file becomes train ids
(:meth:`read_label`). This class does the rest: the checks, the transforms and the loaders.

The checks come in three steps, each naming the file at fault:

- :meth:`~SegmentationDataModule.check_layout`: the dataset folder, the split lists / folders and every
  listed file exist (no file is opened; the runner calls it before it builds the network);
- ``setup``: every image and label has a readable header and an image and its label have the same size
  (:meth:`~SegmentationDataModule.check_files`; headers only, no pixel decoded, remembered per file in a
  per-user cache so that the next ``setup`` opens no file);
- loading a sample: the pixels decode, and the label values are class ids (a file cut short after a valid
  header, or a label value out of range, is found here, when the sample is first loaded).
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import warnings
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import ClassVar

import lightning as L
import numpy as np
import platformdirs
import torch
from lightning.pytorch.overrides.distributed import UnrepeatedDistributedSampler
from PIL import Image, UnidentifiedImageError
from torch.utils.data import DataLoader, Dataset, DistributedSampler
from torchvision import tv_tensors
from tqdm import tqdm

from datamodules.transforms import eval_transforms, train_transforms

IGNORE_INDEX = 255
Sample = tuple[Path, Path]
Size = tuple[int, int]  # (width, height), as Pillow gives it
CACHE_ENV = "ATTENTION_PAPERS_CACHE"
# The datasets each Lightning stage uses (None: all of them).
STAGE_DATASETS = {
    None: ("train", "val", "test"),
    "fit": ("train", "val"),
    "validate": ("val",),
    "test": ("test",),
    "predict": ("test",),
}


def default_num_workers() -> int:
    """All the CPUs this process may use, at most 8 (enough to feed one GPU at these crop sizes)."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:
        cpus = os.cpu_count() or 1
    return max(0, min(8, cpus))


def make_loader(dataset: Dataset, batch_size: int, train: bool, num_workers: int) -> DataLoader:
    """A loader that is also correct under DDP (``torch.distributed`` initialised).

    Training shuffles (each process a disjoint shard, reshuffled by ``set_epoch``, which Lightning
    calls) and drops the last partial batch. Evaluation never repeats a sample: Lightning's own
    ``DistributedSampler`` would pad the split to a multiple of the world size and count some
    images twice in the dataset-level scores.
    """
    sampler = None
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        sampler = (
            DistributedSampler(dataset, shuffle=True, drop_last=True)
            if train
            else UnrepeatedDistributedSampler(dataset, shuffle=False)
        )
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=train if sampler is None else None,
        sampler=sampler,
        drop_last=train and len(dataset) >= batch_size,
        num_workers=num_workers,
        persistent_workers=num_workers > 0,
        pin_memory=torch.cuda.is_available(),
    )


class SplitLoaders:
    """The four loaders of a DataModule whose ``setup`` fills ``train_set`` / ``val_set`` / ``test_set``.

    Batches are ``(images (B, 3, H, W), targets)``; training shuffles and drops the last partial batch,
    evaluation keeps the order (see :func:`make_loader`). ``predict`` uses the test split.
    """

    batch_size: int
    num_workers: int
    train_set: Dataset | None = None
    val_set: Dataset | None = None
    test_set: Dataset | None = None

    def _loader(self, dataset: Dataset | None, train: bool = False) -> DataLoader:
        if dataset is None:
            raise RuntimeError(f"{type(self).__name__}.setup() must be called before the dataloaders.")
        return make_loader(dataset, self.batch_size, train=train, num_workers=self.num_workers)

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_set, train=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val_set)

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.test_set)

    def predict_dataloader(self) -> DataLoader:
        return self._loader(self.test_set)


class NotAnImageError(ValueError):
    """A file that Pillow does not recognise as an image of any format."""


@contextmanager
def open_image(path: Path, kind: str) -> Iterator[Image.Image]:
    """``Image.open(path)`` for the body, with the errors of the file named (``kind``: ``"image"`` or ``"label"``).

    Raises:
        FileNotFoundError: the file does not exist.
        NotAnImageError: Pillow recognises no image format in it.
        ValueError: it cannot be decoded (a header or pixel data cut short, say), in the body too.
    """
    try:
        with Image.open(path) as image:
            yield image
    except FileNotFoundError as err:
        raise FileNotFoundError(f"{kind} file {path} does not exist.") from err
    except UnidentifiedImageError as err:
        raise NotAnImageError(f"cannot decode {kind} file {path}: {err}. The file is corrupt or not an image.") from err
    except (OSError, SyntaxError) as err:
        raise ValueError(f"cannot decode {kind} file {path}: {err}. The file is corrupt or not an image.") from err


@contextmanager
def open_label(path: Path) -> Iterator[Image.Image]:
    """:func:`open_image` of a label file that must be a single-channel label map (:data:`LABEL_IMAGE_MODES`).

    Raises:
        ValueError: for another mode (an RGB colour-coded label, say), and as :func:`open_image`.
    """
    with open_image(path, "label") as image:
        if image.mode not in LABEL_IMAGE_MODES:
            raise ValueError(
                f"label file {path} has image mode {image.mode!r}; expected a single-channel label map "
                "(8-bit 'L' or palette 'P', or 16-bit greyscale) whose pixel values are class ids."
            )
        yield image


def read_image(path: Path) -> np.ndarray:
    """RGB uint8 ``(H, W, 3)``; a clear error for a missing or undecodable file."""
    with open_image(path, "image") as image:
        return np.array(image.convert("RGB"))


# 8-bit greyscale, palette, and 16-bit greyscale in each byte order; older Pillow versions (and some formats)
# open 16-bit greyscale as 32-bit ``I``.
LABEL_IMAGE_MODES = ("L", "P", "I;16", "I;16B", "I;16L", "I")
MAX_REPORTED_VALUES = 10


def size_mismatch_error(image: Path, image_size: Size, label: Path, label_size: Size) -> ValueError:
    """The error for an image and its label of different ``(width, height)``."""
    return ValueError(
        f"image {image} is {image_size[0]}x{image_size[1]} (WxH) but its label {label} is "
        f"{label_size[0]}x{label_size[1]}: an image and its label must have the same size."
    )


def image_header_size(path: Path) -> Size:
    """``(width, height)`` of an image file from its header: Pillow decodes no pixel until asked.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: Pillow cannot identify the file as an image (garbage bytes, a header cut short), naming it.
    """
    with open_image(path, "image") as image:
        return image.size


def cache_dir() -> Path:
    """The per-user cache folder: ``$ATTENTION_PAPERS_CACHE``, else platformdirs' (``~/.cache/attention-papers``)."""
    return Path(os.environ.get(CACHE_ENV) or platformdirs.user_cache_dir("attention-papers"))


class FileSizeCache:
    """The ``(width, height)`` of a dataset's files, read from their headers once and kept in the user's cache folder.

    One JSON file per dataset folder (named by a hash of its resolved path; the folder itself may not be
    writable), one entry per file: its byte size, modification time (ns) and image size. A file whose byte
    size or modification time changed is read again. A missing, corrupt or foreign cache file is ignored
    (every file is read again); a cache that cannot be written is reported in a warning, never an error.
    """

    VERSION = 1

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.resolved = str(self.root.resolve())
        digest = hashlib.sha256(self.resolved.encode()).hexdigest()[:16]
        self.path = cache_dir() / "file-sizes" / f"{digest}.json"
        self.entries = self._read()
        self.changed = False

    def _read(self) -> dict[str, list[int]]:
        try:
            content = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}
        valid = isinstance(content, dict) and content.get("version") == self.VERSION
        if not valid or content.get("root") != self.resolved or not isinstance(content.get("files"), dict):
            return {}
        return content["files"]

    def _key(self, path: Path) -> str:
        try:
            return str(path.relative_to(self.root))
        except ValueError:
            return str(path.resolve())

    def size(self, path: Path, read: Callable[[Path], Size]) -> Size:
        """``(width, height)`` of ``path``: the remembered one if the file is unchanged, else ``read(path)``'s."""
        stat = path.stat()
        stamp = [stat.st_size, stat.st_mtime_ns]
        key = self._key(path)
        entry = self.entries.get(key)
        if isinstance(entry, list) and len(entry) == 4 and entry[:2] == stamp:
            return entry[2], entry[3]
        width, height = read(path)
        self.entries[key] = [*stamp, width, height]
        self.changed = True
        return width, height

    def save(self) -> None:
        """Write the entries atomically (temporary file, then rename) if any was added."""
        if not self.changed:
            return
        content = {"version": self.VERSION, "root": self.resolved, "files": self.entries}
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.", suffix=".tmp")
            try:
                with os.fdopen(fd, "w") as file:
                    json.dump(content, file)
                os.replace(tmp, self.path)
            finally:
                Path(tmp).unlink(missing_ok=True)
        except OSError as err:
            warnings.warn(
                f"cannot write the file check cache {self.path} ({err}); the next setup reads every header again. "
                f"Set {CACHE_ENV} to a writable folder to keep it.",
                stacklevel=3,
            )
            return
        self.changed = False


def read_label_png(path: Path) -> np.ndarray:
    """The raw values of a single-channel label image, ``(H, W)``, exactly as stored.

    uint8 for an 8-bit greyscale (``L``) or palette (``P``) PNG, uint16 for a 16-bit greyscale one
    (``I;16``, ``I;16B``, ``I;16L``), int32 for mode ``I``; always in native byte order. Nothing is
    cast or clipped, so the conversion to train ids (:func:`lookup_label`, :func:`check_label_values`)
    sees every value and refuses those that are not label ids, a 16-bit label scaled by 256 among them.
    """
    with open_label(path) as image:
        label = np.array(image)
    # Big-endian 16-bit (I;16B) arrives as '>u2', which torch.from_numpy refuses.
    return label.astype(label.dtype.newbyteorder("="), copy=False)


def label_values_error(path: Path, values: Sequence[int], expected: str) -> ValueError:
    """The error for label file ``path`` holding ``values`` (distinct, sorted) where ``expected`` belong.

    Shows the smallest values and the largest one, which tells how far out of range the file is.
    """
    shown = (
        str(list(values))
        if len(values) <= MAX_REPORTED_VALUES
        else f"[{', '.join(map(str, values[: MAX_REPORTED_VALUES - 1]))}, ..., {values[-1]}] "
        f"({len(values)} distinct values)"
    )
    message = f"label file {path} contains values {shown}; expected {expected}."
    if all(value > 0 and value % 256 == 0 for value in values):
        message += (
            " They are all multiples of 256: a 16-bit label must hold the class ids themselves, "
            "not the ids scaled by 256."
        )
    return ValueError(message)


def lookup_label(table: np.ndarray, raw: np.ndarray, path: Path) -> np.ndarray:
    """Train ids ``table[raw]`` of the raw label map ``raw`` read from label file ``path``.

    ``table`` has one entry per raw label id ``0..len(table)-1``. Any other value is a ``ValueError``
    naming the file and the values, where plain indexing would raise a bare ``IndexError`` (values
    past the table, such as a 16-bit label scaled by 256) or silently index from the end (negative ones).
    """
    outside = (raw < 0) | (raw >= len(table))
    if outside.any():
        raise label_values_error(path, np.unique(raw[outside]).tolist(), f"raw label ids 0..{len(table) - 1}")
    return table[raw]


def check_label_values(label: np.ndarray, num_classes: int, path: Path) -> None:
    """Raise unless every train id of ``label`` is a class id ``0..num_classes-1`` or the ignore index."""
    # Python ints: a negative value or one past uint8 is reported as it is, never wrapped around.
    bad = [value for value in np.unique(label).tolist() if not (0 <= value < num_classes or value == IGNORE_INDEX)]
    if bad:
        raise label_values_error(
            path,
            bad,
            f"class ids 0..{num_classes - 1} or {IGNORE_INDEX} (ignored) after conversion to train ids",
        )


class SegmentationFiles(Dataset):
    """Pairs of (image file, label file) → ``(image (3, H, W) float32, label (H, W) int64)``."""

    def __init__(
        self,
        samples: Sequence[Sample],
        read_label: Callable[[Path], np.ndarray],
        num_classes: int,
        transform: Callable | None = None,
    ) -> None:
        self.samples = list(samples)
        self.read_label = read_label
        self.num_classes = num_classes
        self.transform = transform

    def __len__(self) -> int:
        return len(self.samples)

    def load(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """The checked raw pair: RGB uint8 ``(H, W, 3)`` and train ids uint8/int ``(H, W)``."""
        image_path, label_path = self.samples[index]
        image = read_image(image_path)
        label = self.read_label(label_path)
        if image.shape[:2] != label.shape[:2]:
            # setup compared the headers; the decoded pixels may still disagree if a file changed since.
            image_size, label_size = image.shape[1::-1], label.shape[1::-1]
            raise size_mismatch_error(image_path, image_size, label_path, label_size)
        check_label_values(label, self.num_classes, label_path)
        return image, label

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image, label = self.load(index)
        image_tv = tv_tensors.Image(torch.from_numpy(image).permute(2, 0, 1).contiguous())
        label_tv = tv_tensors.Mask(torch.from_numpy(label.astype(np.int64)))
        if self.transform is not None:
            image_tv, label_tv = self.transform(image_tv, label_tv)
        return image_tv.as_subclass(torch.Tensor), label_tv.as_subclass(torch.Tensor)


class SegmentationDataModule(L.LightningDataModule, ABC):
    """Base of the benchmark DataModules.

    Args:
        root: the dataset folder, in the dataset's own published layout.
        crop_size: training crop ``(h, w)`` or a side.
        base_size: the shorter side that the random scale multiplies (PyTorch-Encoding's base size).
        scale_range: random scale of the base size for training.
        batch_size: training batch size; ``val_batch_size`` for validation / test.
        num_workers: loader processes; default: the CPUs available, at most 8.
        splits: names of the (train, val, test) splits in the dataset's layout.
        eval_short_side: evaluate at reduced resolution (shorter side resized to this, labels with
            :func:`~datamodules.transforms.resize_labels`); ``None``, the benchmarks' protocol, keeps the full image.
    """

    name: ClassVar[str]
    num_classes: ClassVar[int]
    class_names: ClassVar[tuple[str, ...]]
    palette: ClassVar[tuple[tuple[int, int, int], ...]]
    default_base_size: ClassVar[int]
    default_crop_size: ClassVar[int]
    default_splits: ClassVar[tuple[str, str, str]]
    how_to_prepare: ClassVar[str] = ""
    ignore_index = IGNORE_INDEX
    in_chans = 3

    def __init__(
        self,
        root: str | os.PathLike,
        crop_size: int | Sequence[int] | None = None,
        base_size: int | None = None,
        scale_range: tuple[float, float] = (0.5, 2.0),
        batch_size: int = 8,
        val_batch_size: int = 1,
        num_workers: int | None = None,
        splits: tuple[str, str, str] | None = None,
        eval_short_side: int | None = None,
    ) -> None:
        super().__init__()
        self.root = Path(root)
        self.crop_size = crop_size if crop_size is not None else self.default_crop_size
        self.base_size = base_size if base_size is not None else self.default_base_size
        self.scale_range = scale_range
        self.batch_size = batch_size
        self.val_batch_size = val_batch_size
        self.num_workers = default_num_workers() if num_workers is None else num_workers
        self.splits = splits if splits is not None else self.default_splits
        self.eval_short_side = eval_short_side
        self.datasets: dict[str, SegmentationFiles] = {}

    @abstractmethod
    def list_samples(self, split: str) -> list[Sample]:
        """(image, label) paths of ``split``; raises ``FileNotFoundError`` naming what is missing."""

    @abstractmethod
    def read_label(self, path: Path) -> np.ndarray:
        """Train ids ``(H, W)`` of a label file: ``0..num_classes-1``, ``255`` ignored."""

    def missing(self, what: str, where: Path) -> FileNotFoundError:
        """The error for a missing part of the layout, with the preparation instructions."""
        return FileNotFoundError(
            f"{self.name}: {what} not found at {where}. Expected the layout described in "
            f"{type(self).__module__}.{type(self).__name__}. {self.how_to_prepare}"
        )

    def require(self, path: Path, what: str) -> Path:
        if not path.exists():
            raise self.missing(what, path)
        return path

    def pair_up(self, images: Sequence[Path], label_for: Callable[[Path], Path]) -> list[Sample]:
        """Pair each image with its label file, naming the first image whose label is missing."""
        samples = []
        for image in images:
            label = label_for(image)
            if not label.is_file():
                raise FileNotFoundError(f"{self.name}: image {image} has no label file (expected {label}).")
            samples.append((image, label))
        return samples

    def label_size(self, path: Path) -> Size:
        """``(width, height)`` of label file ``path`` for :meth:`check_files`.

        A label image is checked from its header, mode included (:data:`LABEL_IMAGE_MODES`, as
        :func:`read_label_png` reads it); a label that is no image (the ``.mat`` files of SBD and COCO-Stuff)
        is read whole with :meth:`read_label`, which names the file if it cannot.
        """
        try:
            with open_label(path) as image:
                return image.size
        except NotAnImageError:
            height, width = self.read_label(path).shape[:2]
            return width, height

    def stage_splits(self, stage: str | None) -> dict[str, str]:
        """The datasets (``train`` / ``val`` / ``test``) that ``stage`` uses, with their split names; all for None."""
        names = dict(zip(("train", "val", "test"), self.splits, strict=True))
        return {key: names[key] for key in STAGE_DATASETS.get(stage, ())}

    def check_layout(self, stage: str | None = None) -> dict[str, list[Sample]]:
        """The samples of each dataset ``stage`` uses, after checking that the dataset folder, the split lists /
        folders and every listed file exist. Opens no image: cheap enough to run before a network is built.

        Raises:
            FileNotFoundError: naming what is missing, where it was looked for and how to prepare the dataset.
        """
        if not self.root.is_dir():
            raise self.missing("the dataset folder", self.root)
        samples = {}
        for key, split in self.stage_splits(stage).items():
            samples[key] = self.list_samples(split)
            if not samples[key]:
                raise self.missing(f"any sample of split {split!r}", self.root)
        return samples

    def check_files(self, split: str, samples: Sequence[Sample], cache: FileSizeCache) -> None:
        """Check that every image and label of ``split`` has a readable header and that both have one size.

        Reads headers only (no pixel is decoded) and remembers the sizes in ``cache``; shows a progress bar
        when the check takes more than a few seconds.

        Raises:
            ValueError: naming the first file that is not a readable image / label, or the first pair of
                different sizes.
        """
        bar = tqdm(samples, desc=f"{self.name}: checking the {split} files", unit="pair", delay=2, leave=False)
        for image, label in bar:
            image_size = cache.size(image, image_header_size)
            label_size = cache.size(label, self.label_size)
            if image_size != label_size:
                raise size_mismatch_error(image, image_size, label, label_size)

    def transform(self, train: bool) -> Callable:
        if train:
            return train_transforms(self.crop_size, self.base_size, self.scale_range, self.ignore_index)
        return eval_transforms(self.eval_short_side)

    def setup(self, stage: str | None = None) -> None:
        """The datasets of ``stage``, after :meth:`check_layout` and :meth:`check_files` (see the module docstring)."""
        splits = self.stage_splits(stage)
        samples = self.check_layout(stage)
        cache = FileSizeCache(self.root)
        try:
            for key, pairs in samples.items():
                self.check_files(splits[key], pairs, cache)
        finally:
            # What was read before a bad file stays remembered: the next setup resumes there.
            cache.save()
        for key, pairs in samples.items():
            self.datasets[key] = SegmentationFiles(
                pairs, self.read_label, self.num_classes, self.transform(key == "train")
            )

    def _loader(self, split: str, batch_size: int, shuffle: bool) -> DataLoader:
        if split not in self.datasets:
            raise RuntimeError(f"{type(self).__name__}.setup() must run before the {split} dataloader.")
        return make_loader(self.datasets[split], batch_size, train=shuffle, num_workers=self.num_workers)

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", self.batch_size, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", self.val_batch_size, shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", self.val_batch_size, shuffle=False)

    def predict_dataloader(self) -> DataLoader:
        return self.test_dataloader()
