"""Megapixel digits: large canvases with a few small handwritten digits, the benchmark data for TNet's hard attention.

**Protocol.** Katharopoulos & Fleuret's Megapixel MNIST (ICML 2019, "Processing megapixel images with deep
attention-sampling models"; their generator is ``scripts/make_mnist.py`` in ``idiap/attention-sampling``) puts
5 digits on a large empty canvas: 3 of a target class and 2 drawn from the other classes, plus 50 straight-line
noise strokes of a digit's size. The label is the target (majority) class, so a classifier must find and read
several small digits among clutter; a glance at the whole image downsampled is not enough. Here the digits are
the 1,797 real handwritten UCI digits that scikit-learn ships (``sklearn.datasets.load_digits``: 8 × 8 pixels,
values 0..16, about 180 per class; no download), each upscaled bilinearly to ``digit_size`` px.

One image, drawn from ``np.random.default_rng([seed, 2, split_id, index])`` (so it depends only on the seed, the
split, its index and the geometry arguments, never on the order of the calls):

- the target class, uniform over the 10 classes; ``num_target`` distinct source digits of that class and
  ``num_digits - num_target`` distinct source digits of the other 9 classes, all from the split's source pool
  (the distractors uniform over those pool digits, as ``make_mnist.py`` draws them, so their classes are about
  uniform over the 9 and may repeat);
- each digit a ``digit_size`` square box whose top-left corner is uniform over the canvas positions where the
  box overlaps no box placed before (disjoint boxes, ``make_mnist.py``'s rule; they may touch);
- ``noise_strokes`` strokes, each the union of two straight lines through a ``digit_size`` square, at a uniform
  position whose square overlaps no digit box; strokes may cross each other (the brighter pixel wins).

**Noise strokes.** As in ``make_mnist.py``: a first line from the square's top-left corner at an angle
``u · 72°`` (``u`` uniform) from the vertical, running to the opposite edge; a second such line flipped
left-right with probability 1/3 and upside-down with probability 1/3; per-pixel intensity uniform in
[0.8, 1] of full ink; 50 strokes per image, 10 per digit. Three deliberate differences: the strokes are drawn
at the source digits' resolution (8 × 8 lines) and upscaled with the same bilinear resize, so at every
``digit_size`` they are as wide and as soft as the digits' strokes (their 1-px lines in 28-px squares would
be thinner and sharper than the digits here, an easy tell); each stroke is drawn afresh rather than picked
from a pool of 50 fixed patterns; and a stroke never covers a digit (theirs are pasted after the digits and
can erase part of one), so every digit is whole and the pixels of a digit box are exactly the upscaled digit.
(Their second flip acts on the same axis as the first, a slip; here it flips the rows, as its name says.)

**Geometry and defaults.** ``canvas_size=448, digit_size=16``: TNet processes the whole image first at a base
resolution of 112 px, where a 16-px digit on a 448 canvas spans 16 · 112 / 448 = 4 px, too small to read, so
the digits must be found at 112 and read at full resolution (as Megapixel MNIST's 28-px digits on 1500 px are
about 3.4 px in its 0.12-scale view). ``num_digits=5, num_target=3, noise_strokes=50`` are Megapixel MNIST's.
Larger canvases (896, 1500) work with any ``digit_size``; scale it with the canvas to keep 4 px at 112.
Random non-overlapping placement is guaranteed to succeed (it never gives up) when
``num_digits · (2 · digit_size − 1)² < (canvas_size − digit_size + 1)²``, which is checked up front: otherwise a
``ValueError`` says the canvas cannot hold the digits. Placement tries ``_PLACEMENT_TRIES`` uniform positions
(rejection sampling) and, if all of them overlap, draws uniformly from the free positions, which is the same
distribution.

**Splits.** The source digits are split once per seed into disjoint pools, stratified by class (a fixed
permutation of each class, ``np.random.default_rng([seed, 2])``): 60 % train, 20 % val, 20 % test, so no source
digit appears in two splits. ``num_target`` must be at most the smallest class pool (35 digits).

**Shapes and values.** :func:`render_megapixel_digits` gives a :class:`MegapixelRendering`: the canvas
``(S, S)`` uint8 (0 background, 255 full ink, i.e. source value 16) with the digit boxes ``(y0, x0, y1, x1)``
(half-open pixel ranges), their classes and source indices, the noise strokes' boxes, and the label.
:class:`MegapixelDigits` yields ``(image, label)``: ``image`` float32 ``(3, S, S)``, the grey canvas on three
channels scaled to [−1, 1] (background −1, full ink +1; TNet's input convention), ``label`` an ``int`` in 0..9.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import lightning as L
import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from datamodules.base import SplitLoaders
from datamodules.synthetic import _check_int, _is_int

NUM_CLASSES = 10
CLASS_NAMES = tuple(str(c) for c in range(NUM_CLASSES))
SPLITS = ("train", "val", "test")
POOL_FRACTIONS = (0.6, 0.2, 0.2)  # train, val, test share of each class's source digits
SOURCE_SIDE = 8  # the UCI digits are 8 x 8
SOURCE_MAX = 16.0  # and hold values 0..16
BASE_RESOLUTION = 112  # TNet's base scale: the side the whole image is first processed at
DEFAULT_NOISE_STROKES = 50  # Megapixel MNIST's
_STREAM = 2  # with the longer seed sequences, keeps these draws apart from the other synthetic data's
_PLACEMENT_TRIES = 64
_MAX_ANGLE = math.pi / 2.5  # noise lines: up to 72 degrees from the vertical, as make_mnist.py
_FLIP_PROBABILITY = 1 / 3
Box = tuple[int, int, int, int]  # (y0, x0, y1, x1), half-open


@dataclass(frozen=True)
class MegapixelRendering:
    """One rendered image and what is on it.

    Attributes:
        canvas: ``(S, S)`` uint8, 0 background, 255 full ink.
        label: the target class, the strict majority of ``classes``.
        boxes: ``(num_digits, 4)`` int64 digit boxes ``(y0, x0, y1, x1)``, half-open: rows ``y0:y1``, columns ``x0:x1``.
        classes: ``(num_digits,)`` int64 class of each digit (the ``num_target`` target digits first).
        sources: ``(num_digits,)`` int64 index of each digit in :func:`source_digits`.
        noise_boxes: ``(noise_strokes, 4)`` int64 squares of the noise strokes, as ``boxes``.
    """

    canvas: np.ndarray
    label: int
    boxes: np.ndarray
    classes: np.ndarray
    sources: np.ndarray
    noise_boxes: np.ndarray


@functools.cache
def source_digits() -> tuple[np.ndarray, np.ndarray]:
    """The UCI digits scikit-learn ships: images ``(1797, 8, 8)`` float32 in 0..16 and classes ``(1797,)`` int64.

    Read-only arrays, loaded once per process. scikit-learn is imported here, not with the module, so that
    ``import datamodules`` stays quick.
    """
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = digits.images.astype(np.float32)
    classes = digits.target.astype(np.int64)
    images.flags.writeable = False
    classes.flags.writeable = False
    return images, classes


@functools.cache
def source_pools(seed: int = 0) -> dict[str, np.ndarray]:
    """Indices into :func:`source_digits` of each split's pool: disjoint, stratified by class, sorted, read-only.

    Each class's digits are permuted with ``np.random.default_rng([seed, 2])`` (classes in order) and cut
    60 / 20 / 20 % (rounded) into train / val / test.
    """
    seed = _check_int("seed", seed, 0)
    _, classes = source_digits()
    rng = np.random.default_rng([seed, _STREAM])
    parts: dict[str, list[np.ndarray]] = {split: [] for split in SPLITS}
    for c in range(NUM_CLASSES):
        members = rng.permutation(np.flatnonzero(classes == c))
        num_train = round(POOL_FRACTIONS[0] * len(members))
        num_val = round(POOL_FRACTIONS[1] * len(members))
        parts["train"].append(members[:num_train])
        parts["val"].append(members[num_train : num_train + num_val])
        parts["test"].append(members[num_train + num_val :])
    pools = {}
    for split, chunks in parts.items():
        pool = np.sort(np.concatenate(chunks))
        pool.flags.writeable = False
        pools[split] = pool
    return pools


@functools.cache
def smallest_class_pool() -> int:
    """The fewest source digits of one class in one split's pool (the same for every seed): ``num_target``'s bound."""
    _, classes = source_digits()
    pools = source_pools(0)
    return min(int(np.sum(classes[pool] == c)) for pool in pools.values() for c in range(NUM_CLASSES))


def check_geometry(
    canvas_size: object, digit_size: object, num_digits: object, num_target: object, noise_strokes: object
) -> tuple[int, int, int, int, int]:
    """The arguments as ints after checking them; a ``ValueError`` naming the argument and what was expected."""
    canvas_size = _check_int("canvas_size", canvas_size, SOURCE_SIDE)
    if not (_is_int(digit_size) and SOURCE_SIDE <= digit_size <= canvas_size):
        raise ValueError(
            f"digit_size must be an integer in {SOURCE_SIDE}..canvas_size={canvas_size} (the {SOURCE_SIDE}x"
            f"{SOURCE_SIDE} source digits are only upscaled, and a digit must fit on the canvas), got {digit_size!r}."
        )
    digit_size = int(digit_size)
    num_digits = _check_int("num_digits", num_digits, 1)
    if not (_is_int(num_target) and num_digits / 2 < num_target <= num_digits):
        raise ValueError(
            f"num_target must be an integer with num_digits / 2 < num_target <= num_digits = {num_digits}, so that "
            f"the target class is a strict majority of the digits (the label), got {num_target!r}."
        )
    num_target = int(num_target)
    most = smallest_class_pool()
    if num_target > most:
        raise ValueError(
            f"num_target must be at most {most}, the fewest source digits of one class in a split's pool (an image "
            f"holds distinct source digits), got {num_target}."
        )
    noise_strokes = _check_int("noise_strokes", noise_strokes, 0)
    positions = (canvas_size - digit_size + 1) ** 2
    blocked = num_digits * (2 * digit_size - 1) ** 2
    if blocked >= positions:
        raise ValueError(
            f"a {canvas_size}x{canvas_size} canvas cannot hold {num_digits} non-overlapping digits of {digit_size} px "
            f"by random placement, which is guaranteed only when num_digits * (2 * "
            f"digit_size - 1)**2 < (canvas_size - digit_size + 1)**2, here {blocked} >= {positions}. Use a larger "
            "canvas_size, a smaller digit_size or fewer num_digits."
        )
    return canvas_size, digit_size, num_digits, num_target, noise_strokes


def _check_split(split: object) -> str:
    if split not in SPLITS:
        raise ValueError(f"split must be one of {', '.join(map(repr, SPLITS))}, got {split!r}.")
    return str(split)


def upscale(source: np.ndarray, size: int) -> np.ndarray:
    """A source-resolution image (values 0..16) resized to ``(size, size)`` with Pillow's bilinear filter, as uint8.

    0..16 maps to 0..255, rounded to the nearest integer.
    """
    resized = np.asarray(Image.fromarray(np.asarray(source, dtype=np.float32)).resize((size, size), Image.BILINEAR))
    return np.rint(np.clip(resized * (255.0 / SOURCE_MAX), 0.0, 255.0)).astype(np.uint8)


def _noise_line(rng: np.random.Generator) -> np.ndarray:
    """A straight line ``(8, 8)`` bool from the top-left corner to the opposite edge, ``u · 72°`` from the vertical."""
    slope = math.tan(rng.random() * _MAX_ANGLE)  # columns per row
    reach = SOURCE_SIDE - 0.51  # the last row / column, less a hair so that rounding stays inside
    rows = np.linspace(0.0, reach if slope <= 1.0 else reach / slope, 2 * SOURCE_SIDE)
    line = np.zeros((SOURCE_SIDE, SOURCE_SIDE), dtype=bool)
    line[np.rint(rows).astype(int), np.rint(slope * rows).astype(int)] = True
    return line


def noise_stroke(rng: np.random.Generator) -> np.ndarray:
    """A noise stroke at source resolution: ``(8, 8)`` float32, values 0 or 0.8..1 of full ink (16)."""
    first = _noise_line(rng)
    second = _noise_line(rng)
    if rng.random() < _FLIP_PROBABILITY:
        second = second[:, ::-1]
    if rng.random() < _FLIP_PROBABILITY:
        second = second[::-1, :]
    intensity = rng.uniform(0.8, 1.0, size=(SOURCE_SIDE, SOURCE_SIDE)) * SOURCE_MAX
    return ((first | second) * intensity).astype(np.float32)


def _place(rng: np.random.Generator, canvas_size: int, size: int, boxes: list[Box]) -> tuple[int, int]:
    """Top-left ``(y, x)`` of a ``size`` square, uniform over the positions where it overlaps none of ``boxes``.

    Rejection sampling with ``_PLACEMENT_TRIES`` candidates, then (all rejected) a uniform draw from the free
    positions; :func:`check_geometry` guarantees there is one.
    """
    high = canvas_size - size + 1
    candidates = rng.integers(0, high, size=(_PLACEMENT_TRIES, 2))
    if not boxes:
        return int(candidates[0, 0]), int(candidates[0, 1])
    b = np.asarray(boxes)
    y, x = candidates[:, :1], candidates[:, 1:]
    overlaps = (y < b[:, 2]) & (y + size > b[:, 0]) & (x < b[:, 3]) & (x + size > b[:, 1])
    free = np.flatnonzero(~overlaps.any(axis=1))
    if free.size:
        return int(candidates[free[0], 0]), int(candidates[free[0], 1])
    mask = np.ones((high, high), dtype=bool)
    for y0, x0, y1, x1 in boxes:
        mask[max(0, y0 - size + 1) : y1, max(0, x0 - size + 1) : x1] = False
    positions = np.flatnonzero(mask)
    if positions.size == 0:  # unreachable after check_geometry
        raise ValueError(f"no free position left for a {size}-px square on the {canvas_size}-px canvas.")
    y_free, x_free = divmod(int(positions[rng.integers(positions.size)]), high)
    return y_free, x_free


def render_megapixel_digits(
    index: int,
    split: str = "train",
    canvas_size: int = 448,
    digit_size: int = 16,
    num_digits: int = 5,
    num_target: int = 3,
    noise_strokes: int = DEFAULT_NOISE_STROKES,
    seed: int = 0,
) -> MegapixelRendering:
    """Render image ``index`` of ``split`` (see the module docstring): the uint8 canvas and its digits' boxes."""
    index = _check_int("index", index, 0)
    split = _check_split(split)
    canvas_size, digit_size, num_digits, num_target, noise_strokes = check_geometry(
        canvas_size, digit_size, num_digits, num_target, noise_strokes
    )
    seed = _check_int("seed", seed, 0)
    images, classes = source_digits()
    pool = source_pools(seed)[split]
    rng = np.random.default_rng([seed, _STREAM, SPLITS.index(split), index])

    label = int(rng.integers(NUM_CLASSES))
    in_class = classes[pool] == label
    targets = rng.choice(pool[in_class], num_target, replace=False)
    distractors = rng.choice(pool[~in_class], num_digits - num_target, replace=False)
    sources = np.concatenate([targets, distractors]).astype(np.int64)

    canvas = np.zeros((canvas_size, canvas_size), dtype=np.uint8)
    boxes: list[Box] = []
    for source in sources:
        y, x = _place(rng, canvas_size, digit_size, boxes)
        boxes.append((y, x, y + digit_size, x + digit_size))
        canvas[y : y + digit_size, x : x + digit_size] = upscale(images[source], digit_size)
    noise_boxes = []
    for _ in range(noise_strokes):
        stroke = upscale(noise_stroke(rng), digit_size)
        y, x = _place(rng, canvas_size, digit_size, boxes)  # off the digits, possibly over other strokes
        noise_boxes.append((y, x, y + digit_size, x + digit_size))
        region = canvas[y : y + digit_size, x : x + digit_size]
        np.maximum(region, stroke, out=region)
    return MegapixelRendering(
        canvas=canvas,
        label=label,
        boxes=np.asarray(boxes, dtype=np.int64).reshape(-1, 4),
        classes=classes[sources],
        sources=sources,
        noise_boxes=np.asarray(noise_boxes, dtype=np.int64).reshape(-1, 4),
    )


def to_tensor(canvas: np.ndarray) -> torch.Tensor:
    """A uint8 canvas ``(S, S)`` as the network input: float32 ``(3, S, S)`` in [−1, 1] (0 → −1, 255 → +1)."""
    grey = torch.from_numpy(np.ascontiguousarray(canvas)).float().div_(127.5).sub_(1.0)
    return grey.unsqueeze(0).repeat(3, 1, 1)


class MegapixelDigits(Dataset):
    """``num_images`` images of ``split`` (see :func:`render_megapixel_digits`), rendered on the fly.

    Item ``i`` is ``(image (3, S, S) float32 in [−1, 1], label int)``; :meth:`render` gives the canvas and its
    metadata.
    """

    def __init__(
        self,
        split: str = "train",
        num_images: int = 1000,
        canvas_size: int = 448,
        digit_size: int = 16,
        num_digits: int = 5,
        num_target: int = 3,
        noise_strokes: int = DEFAULT_NOISE_STROKES,
        seed: int = 0,
    ) -> None:
        self.split = _check_split(split)
        self.num_images = _check_int("num_images", num_images, 1)
        self.canvas_size, self.digit_size, self.num_digits, self.num_target, self.noise_strokes = check_geometry(
            canvas_size, digit_size, num_digits, num_target, noise_strokes
        )
        self.seed = _check_int("seed", seed, 0)
        self.num_classes = NUM_CLASSES
        self.class_names = list(CLASS_NAMES)

    def __len__(self) -> int:
        return self.num_images

    def render(self, i: int) -> MegapixelRendering:
        """Image ``i`` as a uint8 canvas with its digit boxes, classes and label."""
        if not (_is_int(i) and -self.num_images <= i < self.num_images):
            raise IndexError(f"index {i!r} out of range for {self.num_images} images.")
        return render_megapixel_digits(
            int(i) % self.num_images,
            self.split,
            self.canvas_size,
            self.digit_size,
            self.num_digits,
            self.num_target,
            self.noise_strokes,
            self.seed,
        )

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        """Return image ``(3, S, S)`` float32 in [−1, 1] and its class id."""
        rendering = self.render(i)
        return to_tensor(rendering.canvas), rendering.label


class MegapixelDigitsDataModule(SplitLoaders, L.LightningDataModule):
    """Train / val / test splits of :class:`MegapixelDigits`, from disjoint source-digit pools.

    Batches are images ``(B, 3, S, S)`` float32 in [−1, 1] and labels ``(B,)`` int64. The defaults are
    Megapixel MNIST's counts (5,000 train, 1,000 test images) with a val split of the test's size.
    """

    num_classes = NUM_CLASSES
    in_chans = 3

    def __init__(
        self,
        canvas_size: int = 448,
        digit_size: int = 16,
        num_digits: int = 5,
        num_target: int = 3,
        noise_strokes: int = DEFAULT_NOISE_STROKES,
        num_train: int = 5000,
        num_val: int = 1000,
        num_test: int = 1000,
        batch_size: int = 32,
        num_workers: int = 0,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.canvas_size, self.digit_size, self.num_digits, self.num_target, self.noise_strokes = check_geometry(
            canvas_size, digit_size, num_digits, num_target, noise_strokes
        )
        self.num_train = _check_int("num_train", num_train, 1)
        self.num_val = _check_int("num_val", num_val, 1)
        self.num_test = _check_int("num_test", num_test, 1)
        self.batch_size = _check_int("batch_size", batch_size, 1)
        self.num_workers = _check_int("num_workers", num_workers, 0)
        self.seed = _check_int("seed", seed, 0)
        self.class_names = list(CLASS_NAMES)
        self.save_hyperparameters()
        self.train_set: MegapixelDigits | None = None
        self.val_set: MegapixelDigits | None = None
        self.test_set: MegapixelDigits | None = None

    def _images(self, split: str, num_images: int) -> MegapixelDigits:
        return MegapixelDigits(
            split,
            num_images,
            self.canvas_size,
            self.digit_size,
            self.num_digits,
            self.num_target,
            self.noise_strokes,
            self.seed,
        )

    def setup(self, stage: str | None = None) -> None:
        """Build the three splits (cheap: images are rendered when loaded), whatever the stage."""
        self.train_set = self._images("train", self.num_train)
        self.val_set = self._images("val", self.num_val)
        self.test_set = self._images("test", self.num_test)
