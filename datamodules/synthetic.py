"""Procedural segmentation scenes: the embedded default dataset, which needs no download.

A scene is a background (class 0: smooth colour gradient plus low-frequency colour blobs, random hue,
low saturation) with 2 to 6 objects painted on it in order, so later objects occlude earlier ones and
the label map follows. Each object class has a fixed shape, a class-specific texture (orientation and
period of stripes, checkerboard, dots, concentric rings or smooth shading) and a saturated colour
family, so a small CNN can recognise it from a local neighbourhood. Objects get a random size
(relative to the image side), position (possibly cut by the image border) and rotation; texture
periods scale with the image side. Boundaries are exact: every pixel is inside or outside an object,
with no anti-aliasing, and the image is painted from the same test as the mask. Mild per-pixel noise
keeps the image from being piecewise constant.

Scene ``index`` is drawn from ``np.random.default_rng([seed, index])``, so it depends only on
``(index, image_size, num_classes, seed)`` and never on the order of the calls.
"""

from __future__ import annotations

import colorsys
import math
from collections.abc import Callable
from dataclasses import dataclass

import lightning as L
import numpy as np
import torch
from torch.utils.data import Dataset

from datamodules.base import IGNORE_INDEX, SplitLoaders
from datamodules.transforms import IMAGENET_MEAN, IMAGENET_STD

MIN_IMAGE_SIDE = 16
# The DataModule's val and test scenes are the indices starting at these offsets (train starts at 0),
# so the three splits never share a scene and do not change when another split's size changes.
VAL_INDEX_OFFSET = 10**9
TEST_INDEX_OFFSET = 2 * 10**9

_REFERENCE_SIDE = 64  # texture periods below are in pixels at this image side
_NOISE_STD = 0.02  # per-pixel Gaussian noise, in [0, 1] intensity units

Array = np.ndarray


def _disc(u: Array, v: Array) -> Array:
    return u * u + v * v <= 1.0


def _square(u: Array, v: Array) -> Array:
    return np.maximum(np.abs(u), np.abs(v)) <= 0.8


def _triangle(u: Array, v: Array) -> Array:
    # Equilateral triangle with circumradius 1: inside the three edges at distance 0.5 from the centre.
    inside = v >= -0.5
    for angle in (math.pi / 6, 5 * math.pi / 6):
        inside &= u * math.cos(angle) + v * math.sin(angle) <= 0.5
    return inside


def _ring(u: Array, v: Array) -> Array:
    rho2 = u * u + v * v
    return (rho2 <= 1.0) & (rho2 >= 0.55**2)


def _cross(u: Array, v: Array) -> Array:
    au, av = np.abs(u), np.abs(v)
    return ((au <= 0.3) & (av <= 1.0)) | ((av <= 0.3) & (au <= 1.0))


def _ellipse(u: Array, v: Array) -> Array:
    return u * u + (v / 0.55) ** 2 <= 1.0


_STAR_POINTS = 5
_STAR_INNER = 0.45


def _star(u: Array, v: Array) -> Array:
    # Fold the polar angle into the sector between an outer tip (angle 0, radius 1) and the next inner
    # corner (angle pi/5, radius _STAR_INNER); inside means on the centre's side of the edge joining them.
    sector = 2 * math.pi / _STAR_POINTS
    phi = np.mod(np.arctan2(v, u), sector)
    phi = np.minimum(phi, sector - phi)
    rho = np.hypot(u, v)
    x, y = rho * np.cos(phi), rho * np.sin(phi)
    ix, iy = _STAR_INNER * math.cos(sector / 2), _STAR_INNER * math.sin(sector / 2)
    return (ix - 1.0) * y - iy * (x - 1.0) >= 0.0


def _stripe_bar(u: Array, v: Array) -> Array:
    return (np.abs(u) <= 1.0) & (np.abs(v) <= 0.3)


def _bands(t: Array) -> Array:
    return np.mod(np.floor(t), 2.0)


def _horizontal_stripes(a: Array, b: Array, period: float, phase: float) -> Array:
    return _bands(b / period + phase)


def _vertical_stripes(a: Array, b: Array, period: float, phase: float) -> Array:
    return _bands(a / period + phase)


def _diagonal_stripes(a: Array, b: Array, period: float, phase: float) -> Array:
    return _bands((a + b) / (period * math.sqrt(2.0)) + phase)


def _antidiagonal_stripes(a: Array, b: Array, period: float, phase: float) -> Array:
    return _bands((a - b) / (period * math.sqrt(2.0)) + phase)


def _checkerboard(a: Array, b: Array, period: float, phase: float) -> Array:
    return _bands(np.floor(a / period + phase) + np.floor(b / period + 2 * phase))


def _dots(a: Array, b: Array, period: float, phase: float) -> Array:
    fa = np.mod(a / period + phase, 1.0) - 0.5
    fb = np.mod(b / period + phase, 1.0) - 0.5
    return (fa * fa + fb * fb <= 0.3**2).astype(np.float64)


def _concentric(a: Array, b: Array, period: float, phase: float) -> Array:
    return _bands(np.hypot(a, b) / period + phase)


def _smooth(a: Array, b: Array, period: float, phase: float) -> Array:
    return 0.5 + 0.5 * np.cos(2 * math.pi * (a / period + phase))


Shape = Callable[[Array, Array], Array]
Texture = Callable[[Array, Array, float, float], Array]


@dataclass(frozen=True)
class _ObjectClass:
    name: str
    shape: Shape  # (u, v) in object coordinates, radius 1 -> bool inside
    texture: Texture  # (a, b, period, phase) in pixels from the object centre -> weight of the light colour
    hue: float  # centre of the class's hue family
    period: float  # texture period in pixels at the reference image side


_OBJECT_CLASSES = (
    _ObjectClass("disc", _disc, _horizontal_stripes, 0.00, 6.0),
    _ObjectClass("square", _square, _checkerboard, 0.62, 4.0),
    _ObjectClass("triangle", _triangle, _dots, 0.33, 6.0),
    _ObjectClass("ring", _ring, _smooth, 0.15, 40.0),
    _ObjectClass("cross", _cross, _diagonal_stripes, 0.87, 5.0),
    _ObjectClass("ellipse", _ellipse, _concentric, 0.50, 4.0),
    _ObjectClass("star", _star, _vertical_stripes, 0.075, 4.0),
    _ObjectClass("stripe-bar", _stripe_bar, _antidiagonal_stripes, 0.75, 7.0),
)

CLASS_NAMES = ("background", *(c.name for c in _OBJECT_CLASSES))
MAX_NUM_CLASSES = len(CLASS_NAMES)
_PALETTE = (
    (0, 0, 0),
    *(tuple(round(255 * x) for x in colorsys.hsv_to_rgb(c.hue, 0.85, 0.95)) for c in _OBJECT_CLASSES),
)


def _is_int(value: object) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _check_int(name: str, value: object, minimum: int, maximum: int | None = None) -> int:
    if _is_int(value) and value >= minimum and (maximum is None or value <= maximum):
        return int(value)
    expected = f"an integer >= {minimum}" if maximum is None else f"an integer in {minimum}..{maximum}"
    raise ValueError(f"{name} must be {expected}, got {value!r}.")


def _check_num_classes(num_classes: object) -> int:
    if _is_int(num_classes) and 2 <= num_classes <= MAX_NUM_CLASSES:
        return int(num_classes)
    raise ValueError(
        f"num_classes must be an integer in 2..{MAX_NUM_CLASSES} (background plus up to "
        f"{MAX_NUM_CLASSES - 1} shape classes: {', '.join(CLASS_NAMES[1:])}), got {num_classes!r}."
    )


def _check_image_size(image_size: object) -> tuple[int, int]:
    size = (image_size, image_size) if _is_int(image_size) else image_size
    if isinstance(size, (tuple, list)) and len(size) == 2 and all(_is_int(s) and s >= MIN_IMAGE_SIDE for s in size):
        return int(size[0]), int(size[1])
    raise ValueError(
        f"image_size must be an integer or an (height, width) pair of integers, each >= {MIN_IMAGE_SIDE}, "
        f"got {image_size!r}."
    )


def _hsv(hue: float, saturation: float, value: float) -> Array:
    return np.array(colorsys.hsv_to_rgb(hue % 1.0, saturation, value))


def _paint_background(rng: np.random.Generator, ys: Array, xs: Array) -> Array:
    """The class-0 image (H, W, 3) in [0, 1]-ish float: a two-colour gradient plus Gaussian colour blobs."""
    h, w = ys.shape[0], xs.shape[1]
    hue = rng.random()
    start = _hsv(hue, rng.uniform(0.05, 0.4), rng.uniform(0.3, 0.8))
    end = _hsv(hue + rng.uniform(-0.15, 0.15), rng.uniform(0.05, 0.4), rng.uniform(0.3, 0.8))
    angle = rng.uniform(0.0, 2 * math.pi)
    ramp = (xs * math.cos(angle) + ys * math.sin(angle)) / math.hypot(h, w) + 0.5
    image = start + ramp[..., None] * (end - start)
    side = min(h, w)
    for _ in range(rng.integers(2, 5)):
        cy, cx = rng.uniform(0, h), rng.uniform(0, w)
        sigma = rng.uniform(0.1, 0.35) * side
        blob = np.exp(-((ys - cy) ** 2) / (2 * sigma**2)) * np.exp(-((xs - cx) ** 2) / (2 * sigma**2))
        image = image + blob[..., None] * rng.uniform(-0.15, 0.15, size=3)
    return image


def _paint_object(rng: np.random.Generator, image: Array, mask: Array, ys: Array, xs: Array, label: int) -> None:
    """Paint one object of class ``label`` over ``image`` (H, W, 3) and ``mask`` (H, W) in place."""
    spec = _OBJECT_CLASSES[label - 1]
    h, w = mask.shape
    side = min(h, w)
    radius = rng.uniform(0.14, 0.3) * side
    cy, cx = rng.uniform(-0.05, 1.05) * h, rng.uniform(-0.05, 1.05) * w
    rotation = rng.uniform(0.0, 2 * math.pi)
    texture_tilt = rng.uniform(-0.15, 0.15)
    period = spec.period * max(1.0, side / _REFERENCE_SIDE) * rng.uniform(0.85, 1.15)
    phase = rng.random()
    saturation, value = rng.uniform(0.65, 1.0), rng.uniform(0.65, 1.0)
    hue = spec.hue + rng.uniform(-0.03, 0.03)
    light = _hsv(hue, saturation, value)
    dark = _hsv(hue, saturation, value * rng.uniform(0.4, 0.6))

    # Every shape lies within 1.2 radii of its centre: work on that window only.
    reach = 1.2 * radius
    y0, y1 = max(0, math.floor(cy - reach)), min(h, math.ceil(cy + reach) + 1)
    x0, x1 = max(0, math.floor(cx - reach)), min(w, math.ceil(cx + reach) + 1)
    dy, dx = ys[y0:y1] - cy, xs[:, x0:x1] - cx
    cos_r, sin_r = math.cos(rotation), math.sin(rotation)
    inside = spec.shape((cos_r * dx + sin_r * dy) / radius, (cos_r * dy - sin_r * dx) / radius)
    cos_t, sin_t = math.cos(texture_tilt), math.sin(texture_tilt)
    weight = spec.texture(cos_t * dx + sin_t * dy, cos_t * dy - sin_t * dx, period, phase)
    colour = dark + weight[..., None] * (light - dark)
    image[y0:y1, x0:x1][inside] = colour[inside]
    mask[y0:y1, x0:x1][inside] = label


def render_scene(index: int, image_size: tuple[int, int], num_classes: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Render scene ``index``: a uint8 RGB image (H, W, 3) and a uint8 label map (H, W).

    Labels are 0..num_classes-1 (0 = background, c >= 1 = ``CLASS_NAMES[c]``); 255 never occurs.
    The result is deterministic in ``(index, image_size, num_classes, seed)`` and independent of call order.
    """
    index = _check_int("index", index, 0)
    h, w = _check_image_size(image_size)
    num_classes = _check_num_classes(num_classes)
    seed = _check_int("seed", seed, 0)
    rng = np.random.default_rng([seed, index])

    ys = np.arange(h, dtype=np.float64)[:, None] + 0.5
    xs = np.arange(w, dtype=np.float64)[None, :] + 0.5
    image = _paint_background(rng, ys, xs)
    mask = np.zeros((h, w), dtype=np.uint8)

    # Distinct classes first (so most scenes hold several), repeats only once every class is used.
    num_objects = int(rng.integers(2, 7))
    num_shapes = num_classes - 1
    labels = rng.permutation(num_shapes)[:num_objects] + 1
    if num_objects > num_shapes:
        labels = np.concatenate([labels, rng.integers(1, num_classes, size=num_objects - num_shapes)])
    for label in labels:
        _paint_object(rng, image, mask, ys, xs, int(label))

    image = image + rng.normal(0.0, _NOISE_STD, size=image.shape)
    return np.rint(np.clip(image, 0.0, 1.0) * 255.0).astype(np.uint8), mask


class SyntheticScenes(Dataset):
    """``num_images`` procedural scenes (see :func:`render_scene`), rendered on the fly.

    Item ``i`` is scene ``index_offset + i``: an image float32 tensor (3, H, W) normalised with
    ``IMAGENET_MEAN`` / ``IMAGENET_STD`` and a mask int64 tensor (H, W) with values 0..num_classes-1.

    Attributes:
        class_names: ``"background"`` then one name per shape class, ``num_classes`` names.
        palette: one ``(r, g, b)`` display colour per class.
    """

    def __init__(
        self,
        num_images: int,
        image_size: int | tuple[int, int] = 64,
        num_classes: int = 6,
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
        self.palette = list(_PALETTE[: self.num_classes])
        self._mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
        self._std = torch.tensor(IMAGENET_STD).view(3, 1, 1)

    def __len__(self) -> int:
        return self.num_images

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Return image (3, H, W) float32, normalised, and mask (H, W) int64."""
        if not -self.num_images <= i < self.num_images:
            raise IndexError(f"index {i} out of range for {self.num_images} scenes.")
        image, mask = render_scene(
            self.index_offset + i % self.num_images, self.image_size, self.num_classes, self.seed
        )
        image_t = torch.from_numpy(image).permute(2, 0, 1).float().div_(255.0)
        return (image_t - self._mean) / self._std, torch.from_numpy(mask).long()


class SyntheticSegmentationDataModule(SplitLoaders, L.LightningDataModule):
    """Train / val / test splits of :class:`SyntheticScenes`.

    All splits share ``seed``; train uses scenes ``0..num_train-1``, val scenes from ``VAL_INDEX_OFFSET``
    and test scenes from ``TEST_INDEX_OFFSET``, so no scene is in two splits. Batches are image tensors
    (B, 3, H, W) float32 and masks (B, H, W) int64.
    """

    ignore_index = IGNORE_INDEX
    in_chans = 3

    def __init__(
        self,
        num_classes: int = 6,
        image_size: int | tuple[int, int] = 64,
        num_train: int = 512,
        num_val: int = 64,
        num_test: int = 64,
        batch_size: int = 16,
        num_workers: int = 0,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.num_classes = _check_num_classes(num_classes)
        self.image_size = _check_image_size(image_size)
        split_limit = VAL_INDEX_OFFSET
        self.num_train = _check_int("num_train", num_train, 1, split_limit)
        self.num_val = _check_int("num_val", num_val, 1, split_limit)
        self.num_test = _check_int("num_test", num_test, 1, split_limit)
        self.batch_size = _check_int("batch_size", batch_size, 1)
        self.num_workers = _check_int("num_workers", num_workers, 0)
        self.seed = _check_int("seed", seed, 0)
        self.class_names = list(CLASS_NAMES[: self.num_classes])
        self.palette = list(_PALETTE[: self.num_classes])
        self.save_hyperparameters()
        self.train_set: SyntheticScenes | None = None
        self.val_set: SyntheticScenes | None = None
        self.test_set: SyntheticScenes | None = None

    def _scenes(self, num_images: int, index_offset: int) -> SyntheticScenes:
        return SyntheticScenes(num_images, self.image_size, self.num_classes, self.seed, index_offset=index_offset)

    def setup(self, stage: str | None = None) -> None:
        """Build the three splits (cheap: scenes are rendered when loaded), whatever the stage."""
        self.train_set = self._scenes(self.num_train, 0)
        self.val_set = self._scenes(self.num_val, VAL_INDEX_OFFSET)
        self.test_set = self._scenes(self.num_test, TEST_INDEX_OFFSET)
