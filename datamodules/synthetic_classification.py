"""Procedural classification images: the embedded default for the classification experiments.

An image is one object on a background, painted with the shape classes of
:mod:`datamodules.synthetic`: class ``c`` is the ``c``-th shape (disc, square, triangle, ring, cross,
ellipse, star, stripe bar) with its own texture (stripes of a set orientation, checkerboard, dots,
rings or smooth shading) and colour family, so a small CNN learns the class from shape, texture
and colour. The object sits near the centre (centre within the middle fifth of each side, radius
0.25-0.4 of the shorter side) with a random rotation, texture phase and shade; the background is
the segmentation scenes' smooth gradient with colour blobs, plus mild pixel noise.

Image ``index`` has class ``index % num_classes`` (balanced splits) and is drawn from
``np.random.default_rng([seed, index, 1])``: it depends only on ``(index, image_size, num_classes,
seed)``, never on the order of the calls.
"""

from __future__ import annotations

import math

import lightning as L
import numpy as np
import torch
from torch.utils.data import Dataset

from datamodules.base import SplitLoaders
from datamodules.synthetic import (
    _NOISE_STD,
    _OBJECT_CLASSES,
    _REFERENCE_SIDE,
    TEST_INDEX_OFFSET,
    VAL_INDEX_OFFSET,
    _check_image_size,
    _check_int,
    _hsv,
    _paint_background,
)
from datamodules.transforms import IMAGENET_MEAN, IMAGENET_STD

CLASS_NAMES = tuple(spec.name for spec in _OBJECT_CLASSES)
MAX_NUM_CLASSES = len(CLASS_NAMES)
_STREAM = 1  # keeps these images' random numbers apart from the segmentation scenes'


def _check_num_classes(num_classes: object) -> int:
    integer = isinstance(num_classes, (int, np.integer)) and not isinstance(num_classes, bool)
    if integer and 2 <= num_classes <= MAX_NUM_CLASSES:
        return int(num_classes)
    raise ValueError(
        f"num_classes must be an integer in 2..{MAX_NUM_CLASSES} (one class per shape: {', '.join(CLASS_NAMES)}), "
        f"got {num_classes!r}."
    )


def render_sample(index: int, image_size: int | tuple[int, int], num_classes: int, seed: int) -> tuple[np.ndarray, int]:
    """Render image ``index``: a uint8 RGB image ``(H, W, 3)`` and its class id ``index % num_classes``."""
    index = _check_int("index", index, 0)
    h, w = _check_image_size(image_size)
    num_classes = _check_num_classes(num_classes)
    seed = _check_int("seed", seed, 0)
    label = index % num_classes
    rng = np.random.default_rng([seed, index, _STREAM])

    ys = np.arange(h, dtype=np.float64)[:, None] + 0.5
    xs = np.arange(w, dtype=np.float64)[None, :] + 0.5
    image = _paint_background(rng, ys, xs)

    spec = _OBJECT_CLASSES[label]
    side = min(h, w)
    radius = rng.uniform(0.25, 0.4) * side
    cy, cx = rng.uniform(0.4, 0.6) * h, rng.uniform(0.4, 0.6) * w
    rotation = rng.uniform(0.0, 2 * math.pi)
    tilt = rng.uniform(-0.15, 0.15)
    period = spec.period * max(1.0, side / _REFERENCE_SIDE) * rng.uniform(0.85, 1.15)
    phase = rng.random()
    hue = spec.hue + rng.uniform(-0.03, 0.03)
    saturation, value = rng.uniform(0.65, 1.0), rng.uniform(0.65, 1.0)
    light = _hsv(hue, saturation, value)
    dark = _hsv(hue, saturation, value * rng.uniform(0.4, 0.6))

    dy, dx = ys - cy, xs - cx  # (H, 1), (1, W)
    cos_r, sin_r = math.cos(rotation), math.sin(rotation)
    inside = spec.shape((cos_r * dx + sin_r * dy) / radius, (cos_r * dy - sin_r * dx) / radius)
    cos_t, sin_t = math.cos(tilt), math.sin(tilt)
    weight = spec.texture(cos_t * dx + sin_t * dy, cos_t * dy - sin_t * dx, period, phase)
    colour = dark + weight[..., None] * (light - dark)
    image[inside] = colour[inside]

    image = image + rng.normal(0.0, _NOISE_STD, size=image.shape)
    return np.rint(np.clip(image, 0.0, 1.0) * 255.0).astype(np.uint8), label


class SyntheticClassification(Dataset):
    """``num_images`` procedural images (see :func:`render_sample`), rendered on the fly.

    Item ``i`` is image ``index_offset + i``: a float32 tensor ``(3, H, W)`` normalised with
    ``IMAGENET_MEAN`` / ``IMAGENET_STD`` and its class id (``int``).
    """

    def __init__(
        self,
        num_images: int,
        image_size: int | tuple[int, int] = 32,
        num_classes: int = 8,
        seed: int = 0,
        *,
        index_offset: int = 0,
    ) -> None:
        self.num_images = _check_int("num_images", num_images, 1)
        self.image_size = _check_image_size(image_size)
        self.num_classes = _check_num_classes(num_classes)
        self.seed = _check_int("seed", seed, 0)
        self.index_offset = _check_int("index_offset", index_offset, 0)
        self.class_names = list(CLASS_NAMES[: self.num_classes])
        self._mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
        self._std = torch.tensor(IMAGENET_STD).view(3, 1, 1)

    def __len__(self) -> int:
        return self.num_images

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        """Return image ``(3, H, W)`` float32, normalised, and its class id."""
        if not -self.num_images <= i < self.num_images:
            raise IndexError(f"index {i} out of range for {self.num_images} images.")
        image, label = render_sample(
            self.index_offset + i % self.num_images, self.image_size, self.num_classes, self.seed
        )
        image_t = torch.from_numpy(image).permute(2, 0, 1).float().div_(255.0)
        return (image_t - self._mean) / self._std, label


class SyntheticClassificationDataModule(SplitLoaders, L.LightningDataModule):
    """Train / val / test splits of :class:`SyntheticClassification`.

    Train uses images ``0..num_train-1``, val images from ``VAL_INDEX_OFFSET`` and test images from
    ``TEST_INDEX_OFFSET``, so no image is in two splits. Batches are images ``(B, 3, H, W)`` float32
    and labels ``(B,)`` int64.
    """

    in_chans = 3

    def __init__(
        self,
        num_classes: int = 8,
        image_size: int | tuple[int, int] = 32,
        num_train: int = 1024,
        num_val: int = 256,
        num_test: int = 256,
        batch_size: int = 32,
        num_workers: int = 0,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.num_classes = _check_num_classes(num_classes)
        self.image_size = _check_image_size(image_size)
        self.num_train = _check_int("num_train", num_train, 1, VAL_INDEX_OFFSET)
        self.num_val = _check_int("num_val", num_val, 1, VAL_INDEX_OFFSET)
        self.num_test = _check_int("num_test", num_test, 1, VAL_INDEX_OFFSET)
        self.batch_size = _check_int("batch_size", batch_size, 1)
        self.num_workers = _check_int("num_workers", num_workers, 0)
        self.seed = _check_int("seed", seed, 0)
        self.class_names = list(CLASS_NAMES[: self.num_classes])
        self.save_hyperparameters()
        self.train_set: SyntheticClassification | None = None
        self.val_set: SyntheticClassification | None = None
        self.test_set: SyntheticClassification | None = None

    def _images(self, num_images: int, index_offset: int) -> SyntheticClassification:
        return SyntheticClassification(
            num_images, self.image_size, self.num_classes, self.seed, index_offset=index_offset
        )

    def setup(self, stage: str | None = None) -> None:
        """Build the three splits (cheap: images are rendered when loaded), whatever the stage."""
        self.train_set = self._images(self.num_train, 0)
        self.val_set = self._images(self.num_val, VAL_INDEX_OFFSET)
        self.test_set = self._images(self.num_test, TEST_INDEX_OFFSET)
