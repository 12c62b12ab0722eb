"""fMoW-rgb (Functional Map of the World, Christie et al. 2018) as TNet's official code prepares it, 62 classes.

Layout: the fMoW-rgb release unpacked into ``root``, as the official scripts read it (Tpap/TNet,
``fMoW/match_test_gt.py`` and ``fMoW/create_TFRecords_fMoW.py``)::

    root/train/<category>/<category>_<n>/<category>_<n>_<k>_rgb.jpg     an image
    root/train/<category>/<category>_<n>/<category>_<n>_<k>_rgb.json    its metadata ("bounding_boxes")
    root/val/<category>/...                                              the same
    root/test/<seq>/<seq>_<k>_rgb.jpg                                    test images: categories hidden
    root/test_gt/<category>/<category>_<n>/<category>_<n>_<k>_rgb.json  their metadata, with categories
    root/test_gt_mapping.json   [{"input": "test_gt/<category>/<category>_<n>", "output": "test/<seq>"}, ...]

A metadata file's ``bounding_boxes`` (a list, or one box) holds ``{"box": [x, y, width, height], "category": ...,
"ID": ...}`` in pixels of the image. Class ids follow the official ``category_names`` list (:data:`CATEGORY_NAMES`,
not alphabetical: ``impoverished_settlement`` is 42), the order in which ``create_TFRecords_fMoW.py`` numbers
them. A test image takes the category of its mapping entry's ``input``, as ``match_test_gt.py`` moves it there.
Only the files the official scripts read count: ``<category>_*_rgb.jpg`` inside the sequence folders of a
category folder (train / val), ``*_rgb.jpg`` in a mapped test folder.

Variants:

- ``"full"``: whole images. Training draws the crop of :func:`~datamodules.inception.sample_distorted_bounding_box`
  around the image's boxes of its own category (``ID`` not −1; none: the whole image), as the official TFRecords
  keep them.
- ``"cropped"`` (official ``fMoW/crop_fMoW.py``): one sample per box of the image's own category (``ID`` not −1;
  a box of width or height <= 2 px is skipped), cropped with a context margin on each side of
  ``int(side · m / 2)`` pixels, ``m`` from the box's fraction of the image side (:func:`context_margin`: 0.15 for
  half the side or more, up to 2 under a tenth), clipped to the image. Test boxes come from ``test_gt``, as
  ``match_test_gt.py`` copies them.

Each image's shorter side is capped at load time, as ``create_TFRecords_fMoW.py`` stores them (:func:`load_image`):
1000 px for the full images (275 px for the 224 px full-image baseline), 224 px for the crops. Training then uses
:func:`~datamodules.inception.inception_train_transforms`, evaluation
:func:`~datamodules.inception.inception_eval_transforms` (whole image resized to ``S × S``), both in [−1, 1].
"""

from __future__ import annotations

import json
import math
import os
import warnings
from collections.abc import Sequence
from pathlib import Path, PurePosixPath
from typing import Any, NamedTuple

import lightning as L
import numpy as np
import torch
from torch.utils.data import Dataset
from torchvision import tv_tensors
from torchvision.transforms import InterpolationMode
from torchvision.transforms.v2 import functional as F
from tqdm import tqdm

from datamodules.base import (
    STAGE_DATASETS,
    FileSizeCache,
    SplitLoaders,
    default_num_workers,
    image_header_size,
    open_image,
)
from datamodules.inception import inception_eval_transforms, inception_train_transforms

# The official category_names (fMoW/train.py, crop_fMoW.py, create_TFRecords_fMoW.py): class id = position.
CATEGORY_NAMES = (
    "airport",
    "airport_hangar",
    "airport_terminal",
    "amusement_park",
    "aquaculture",
    "archaeological_site",
    "barn",
    "border_checkpoint",
    "burial_site",
    "car_dealership",
    "construction_site",
    "crop_field",
    "dam",
    "debris_or_rubble",
    "educational_institution",
    "electric_substation",
    "factory_or_powerplant",
    "fire_station",
    "flooded_road",
    "fountain",
    "gas_station",
    "golf_course",
    "ground_transportation_station",
    "helipad",
    "hospital",
    "interchange",
    "lake_or_pond",
    "lighthouse",
    "military_facility",
    "multi-unit_residential",
    "nuclear_powerplant",
    "office_building",
    "oil_or_gas_facility",
    "park",
    "parking_lot_or_garage",
    "place_of_worship",
    "police_station",
    "port",
    "prison",
    "race_track",
    "railway_bridge",
    "recreational_facility",
    "impoverished_settlement",
    "road_bridge",
    "runway",
    "shipyard",
    "shopping_mall",
    "single-unit_residential",
    "smokestack",
    "solar_farm",
    "space_facility",
    "stadium",
    "storage_tank",
    "surface_mine",
    "swimming_pool",
    "toll_booth",
    "tower",
    "tunnel_opening",
    "waste_disposal",
    "water_treatment_facility",
    "wind_farm",
    "zoo",
)
CATEGORY_IDS = {name: index for index, name in enumerate(CATEGORY_NAMES)}
NUM_CLASSES = len(CATEGORY_NAMES)
VARIANTS = ("full", "cropped")
SPLITS = ("train", "val", "test")
IMAGE_SUFFIX = "_rgb.jpg"
METADATA_SUFFIX = "_rgb.json"
TEST_GT_MAPPING = "test_gt_mapping.json"
# create_TFRecords_fMoW.py's --maximum_min_dim: the default, the 224 px full-image baseline's, the crops'.
FULL_MAX_SHORT_SIDE = 1000
BASELINE_224_MAX_SHORT_SIDE = 275
CROPPED_MAX_SHORT_SIDE = 224
# crop_fMoW.py: boxes of width or height <= 2 px are skipped; margins by the box's fraction of the image side.
MIN_BOX_SIDE = 2
CONTEXT_MARGINS = ((0.5, 0.15), (0.4, 0.2), (0.3, 0.3), (0.2, 0.5), (0.1, 1.0))
SMALL_BOX_MARGIN = 2.0
# create_TFRecords_fMoW.py decodes a JPEG at 1/8, 1/4 or 1/2 of its size when its shorter side exceeds 8, 4 or 2
# times the cap.
DECODE_RATIOS = (8, 4, 2)
HOW_TO_PREPARE = (
    "Download fMoW-rgb (https://github.com/fMoW/dataset) and unpack train/, val/, test/, test_gt/ and "
    "test_gt_mapping.json into one folder (`python -m experiments data download fmow` says how)."
)


class CropBox(NamedTuple):
    """A crop window in pixels of the source image: rows ``top:bottom``, columns ``left:right``."""

    top: int
    left: int
    bottom: int
    right: int


class FMoWSample(NamedTuple):
    """One sample: the image file, its class id, the metadata file whose boxes training uses (full variant) and,
    for a crop, its window and the shorter side the official decode ratio is computed from (:func:`load_image`)."""

    image: str
    label: int
    metadata: str | None = None
    crop: CropBox | None = None
    ratio_side: int | None = None


class ListedImage(NamedTuple):
    """An image found in the layout: its file, class id and metadata file (which must exist for a crop)."""

    image: Path
    label: int
    metadata: Path


def context_margin(fraction: float) -> float:
    """The context multiplier of ``crop_fMoW.py`` for a box covering ``fraction`` of the image side: 0.15 from
    0.5 up, 0.2 in [0.4, 0.5), 0.3 in [0.3, 0.4), 0.5 in [0.2, 0.3), 1 in [0.1, 0.2), 2 below 0.1."""
    for threshold, margin in CONTEXT_MARGINS:
        if fraction >= threshold:
            return margin
    return SMALL_BOX_MARGIN


def context_crop_box(box: Sequence[int], height: int, width: int) -> CropBox | None:
    """The crop of box ``[x, y, w, h]`` (pixels) in an image of ``height × width``, as ``crop_fMoW.py`` cuts it.

    Each side grows by ``int(w · m_x / 2)`` (columns) or ``int(h · m_y / 2)`` (rows) pixels, ``m`` the
    :func:`context_margin` of ``w / width`` and ``h / height``, and is clipped to the image. None for a box the
    official script skips: width or height <= 2 px, or nothing left inside the image.
    """
    x, y, w, h = box
    if w <= MIN_BOX_SIDE or h <= MIN_BOX_SIDE:
        return None
    grow_x = int(w * context_margin(w / width) / 2.0)
    grow_y = int(h * context_margin(h / height) / 2.0)
    crop = CropBox(max(y - grow_y, 0), max(x - grow_x, 0), min(y + h + grow_y, height), min(x + w + grow_x, width))
    if crop.top >= crop.bottom or crop.left >= crop.right:
        return None
    return crop


def decode_ratio(short_side: int, max_short_side: int) -> int:
    """The JPEG decode ratio of ``create_TFRecords_fMoW.py``: 8, 4 or 2 when the shorter side exceeds that many
    times the cap, else 1."""
    for ratio in DECODE_RATIOS:
        if short_side > ratio * max_short_side:
            return ratio
    return 1


def capped_size(height: int, width: int, max_short_side: int) -> tuple[int, int]:
    """``(height, width)`` after ``create_TFRecords_fMoW.py``'s cap of the shorter side at ``max_short_side``.

    The script asks ``tf.image.resize(..., preserve_aspect_ratio=True)`` for the cap by ``ceil(cap · long / short)``;
    TF then scales both sides by the smaller of the two ratios (float32) and rounds half to even, so the longer
    side becomes ``round(cap · long / short)``, not the ``ceil`` asked for. Unchanged when the shorter side fits.
    """
    if min(height, width) <= max_short_side:
        return height, width
    if height <= width:
        target = (max_short_side, math.ceil(max_short_side * (width / height)))
    else:
        target = (math.ceil(max_short_side * (height / width)), max_short_side)
    scale = min(np.float32(target[0]) / np.float32(height), np.float32(target[1]) / np.float32(width))
    return int(np.round(scale * np.float32(height))), int(np.round(scale * np.float32(width)))


def resize_bilinear_uint8(image: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """``create_TFRecords_fMoW.py``'s resize: uint8 → float in [0, 1] → bilinear (half-pixel centres, no
    antialiasing) → uint8 as ``tf.image.convert_image_dtype`` makes it (``x · 255.5``, truncated)."""
    resized = F.resize(image.float() / 255.0, list(size), interpolation=InterpolationMode.BILINEAR, antialias=False)
    return (resized * 255.5).clamp(0, 255).to(torch.uint8)


def load_image(
    path: str | os.PathLike,
    max_short_side: int,
    crop: CropBox | None = None,
    ratio_side: int | None = None,
    official_decode_ratio: bool = True,
) -> tuple[torch.Tensor, tuple[int, int]]:
    """An image as ``create_TFRecords_fMoW.py`` stores it: uint8 ``(3, H, W)``, and the source's ``(height, width)``.

    1. With ``official_decode_ratio``, a JPEG whose shorter side (``ratio_side`` if given) exceeds 2, 4 or 8 times
       ``max_short_side`` is decoded at 1/2, 1/4 or 1/8 of its size by libjpeg's DCT scaling (Pillow's ``draft``,
       TF's ``decode_jpeg(ratio=...)``); another format is box-averaged by the same factor.
    2. ``crop`` (pixels of the source) is cut, scaled by that factor (``crop_fMoW.py`` cut it at full size and the
       TFRecord script decoded the cut at the reduced size: the window may move by under one output pixel).
    3. A shorter side still above ``max_short_side`` is resized bilinearly (:func:`capped_size`,
       :func:`resize_bilinear_uint8`).

    The official cropped set computes the ratio from the size that ``crop_fMoW.py`` copied into the crop's metadata:
    the source image's for the first crop of an image, the previous crop's for the next ones (its
    ``img_height`` / ``img_width`` are updated on the source's metadata after the copy); ``ratio_side`` carries it.

    Raises:
        FileNotFoundError, ValueError: the file is missing or cannot be decoded (naming it).
    """
    with open_image(Path(path), "image") as image:
        width, height = image.size
        ratio = decode_ratio(ratio_side or min(height, width), max_short_side) if official_decode_ratio else 1
        if ratio > 1:
            image.draft("RGB", (width // ratio, height // ratio))
        scale = 1 if image.size == (width, height) else ratio
        pixels = image.convert("RGB")
    if crop is not None:
        top, left = crop.top // scale, crop.left // scale
        bottom = min(top + -(-(crop.bottom - crop.top) // scale), pixels.height)
        right = min(left + -(-(crop.right - crop.left) // scale), pixels.width)
        pixels = pixels.crop((left, top, right, bottom))
    if ratio > scale:  # no DCT scaling (not a JPEG): a box average by the same factor
        pixels = pixels.reduce(ratio // scale)
    tensor = F.pil_to_tensor(pixels)
    size = capped_size(tensor.shape[-2], tensor.shape[-1], max_short_side)
    if size != tuple(tensor.shape[-2:]):
        tensor = resize_bilinear_uint8(tensor, size)
    return tensor, (height, width)


def _metadata_error(path: Path, problem: str) -> ValueError:
    return ValueError(
        f"fMoW: metadata file {path} {problem}; expected the fMoW-rgb JSON with 'bounding_boxes': a list of "
        '{"box": [x, y, width, height] (integer pixels), "category": <name>, "ID": <int>}.'
    )


def read_boxes(path: str | os.PathLike) -> list[dict[str, Any]]:
    """The ``bounding_boxes`` of a metadata file (one box becomes a list of one, as the official scripts do), each
    checked: ``box`` four integers with width and height >= 0, ``category`` a string.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: it is not JSON, has no ``bounding_boxes``, or a box is malformed (naming the file).
    """
    path = Path(path)
    try:
        content = json.loads(path.read_text())
    except FileNotFoundError as err:
        raise FileNotFoundError(f"fMoW: metadata file {path} does not exist.") from err
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise _metadata_error(path, f"cannot be read as JSON ({err})") from err
    if not isinstance(content, dict) or "bounding_boxes" not in content:
        raise _metadata_error(path, "has no 'bounding_boxes'")
    boxes = content["bounding_boxes"]
    boxes = [boxes] if isinstance(boxes, dict) else boxes
    if not isinstance(boxes, list):
        raise _metadata_error(path, f"has 'bounding_boxes' of type {type(boxes).__name__}")
    for entry in boxes:
        box = entry.get("box") if isinstance(entry, dict) else None
        valid_box = (
            isinstance(box, list)
            and len(box) == 4
            and all(isinstance(v, int) and not isinstance(v, bool) for v in box)
            and box[2] >= 0
            and box[3] >= 0
        )
        if not valid_box or not isinstance(entry.get("category"), str):
            raise _metadata_error(path, f"has a malformed box {entry!r}")
    return boxes


def own_boxes(boxes: Sequence[dict[str, Any]], category: str) -> list[list[int]]:
    """The ``[x, y, w, h]`` of the boxes of ``category`` whose ``ID`` is not −1 (the official scripts' filter; a box
    without ``ID`` is kept), in file order."""
    return [entry["box"] for entry in boxes if entry["category"] == category and entry.get("ID") != -1]


def normalized_boxes(boxes: Sequence[Sequence[int]], height: int, width: int) -> torch.Tensor:
    """``(N, 4)`` ``(xmin, ymin, xmax, ymax)`` as fractions of the image, clipped to [0, 1] (official
    ``_find_image_bounding_boxes``, which divides by the metadata's image size: the image's own)."""
    if not boxes:
        return torch.zeros(0, 4)
    xywh = torch.tensor(boxes, dtype=torch.float64)
    xyxy = torch.cat([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], dim=1)
    return (xyxy / torch.tensor([width, height, width, height], dtype=torch.float64)).clamp(0, 1).float()


class FMoWImages(Dataset):
    """``(image float32 (3, S, S) in [−1, 1], class id)`` pairs of :class:`FMoWSample`; see :func:`load_image`.

    With ``use_boxes`` (full-image training), the transform is called with the image and the
    ``tv_tensors.BoundingBoxes`` of its own category (:func:`own_boxes`) and returns both.
    """

    def __init__(
        self,
        samples: Sequence[FMoWSample],
        transform: Any,
        max_short_side: int,
        official_decode_ratio: bool = True,
        use_boxes: bool = False,
    ) -> None:
        self.samples = list(samples)
        self.transform = transform
        self.max_short_side = max_short_side
        self.official_decode_ratio = official_decode_ratio
        self.use_boxes = use_boxes

    def __len__(self) -> int:
        return len(self.samples)

    def load(self, index: int) -> tv_tensors.Image:
        """Sample ``index``'s stored image, uint8 ``(3, H, W)``, before the transform."""
        sample = self.samples[index]
        image, _ = load_image(
            sample.image, self.max_short_side, sample.crop, sample.ratio_side, self.official_decode_ratio
        )
        return tv_tensors.Image(image)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        sample = self.samples[index]
        image, (height, width) = load_image(
            sample.image, self.max_short_side, sample.crop, sample.ratio_side, self.official_decode_ratio
        )
        image = tv_tensors.Image(image)
        if self.use_boxes and sample.metadata is not None:
            fractions = normalized_boxes(
                own_boxes(read_boxes(sample.metadata), CATEGORY_NAMES[sample.label]), height, width
            )
            canvas = tuple(image.shape[-2:])
            scale = torch.tensor([canvas[1], canvas[0], canvas[1], canvas[0]], dtype=torch.float32)
            boxes = tv_tensors.BoundingBoxes(fractions * scale, format="XYXY", canvas_size=canvas)
            out, _ = self.transform(image, boxes)
        else:
            out = self.transform(image)
        return out.as_subclass(torch.Tensor), sample.label


def default_max_short_side(variant: str, image_size: int) -> int:
    """The official cap of the shorter side: 224 for the crops, 275 for the full images at 224 px (the baseline's
    TFRecords), 1000 otherwise (TNet at 448 and 896 px, the 448 / 896 px baselines)."""
    if variant == "cropped":
        return CROPPED_MAX_SHORT_SIDE
    return BASELINE_224_MAX_SHORT_SIDE if image_size == 224 else FULL_MAX_SHORT_SIDE


def _positive_int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}.")
    return value


def _sorted_entries(folder: Path) -> list[os.DirEntry]:
    return sorted(os.scandir(folder), key=lambda entry: entry.name)


class FMoWDataModule(SplitLoaders, L.LightningDataModule):
    """fMoW-rgb train / val / test (see the module docstring for the layout, the variants and the preparation).

    Args:
        root: the folder holding ``train``, ``val``, ``test``, ``test_gt`` and ``test_gt_mapping.json``.
        image_size: the side ``S`` of the network's ``S × S`` input: 224, 448 or 896 in the paper.
        variant: ``"full"`` (whole images) or ``"cropped"`` (the official box crops).
        max_short_side: the cap of each image's shorter side at load time; None: the official one
            (:func:`default_max_short_side`: 1000 for full images, 275 for full images at 224, 224 for crops).
        batch_size: images per batch and process (64 in the paper's recipes, 32 for the 448 / 896 px baselines).
        num_workers: loader processes (default: the CPUs available, at most 8).
        test_gt_mapping: the test ground-truth mapping (default ``root/test_gt_mapping.json``).
        official_decode_ratio: decode large JPEGs at a reduced size first, as the official TFRecords do
            (:func:`load_image`); False resizes from the full decode.

    Batches are images ``(B, 3, S, S)`` float32 in [−1, 1] and labels ``(B,)`` int64. ``setup`` checks the layout
    (:meth:`check_layout`) and every image's header (remembered in the per-user cache of
    :class:`~datamodules.base.FileSizeCache`); the cropped variant also reads every metadata file there, the full
    one reads a training image's metadata when it loads the image.
    """

    name = "fMoW"
    num_classes = NUM_CLASSES
    class_names = CATEGORY_NAMES
    in_chans = 3

    def __init__(
        self,
        root: str | os.PathLike,
        image_size: int = 224,
        variant: str = "full",
        max_short_side: int | None = None,
        batch_size: int = 64,
        num_workers: int | None = None,
        test_gt_mapping: str | os.PathLike | None = None,
        official_decode_ratio: bool = True,
    ) -> None:
        super().__init__()
        if variant not in VARIANTS:
            raise ValueError(f"variant must be one of {', '.join(map(repr, VARIANTS))}, got {variant!r}.")
        self.root = Path(root)
        self.image_size = _positive_int("image_size", image_size)
        self.variant = variant
        self.max_short_side = (
            default_max_short_side(variant, image_size)
            if max_short_side is None
            else _positive_int("max_short_side", max_short_side)
        )
        self.batch_size = _positive_int("batch_size", batch_size)
        self.num_workers = default_num_workers() if num_workers is None else num_workers
        self.test_gt_mapping = Path(test_gt_mapping) if test_gt_mapping is not None else self.root / TEST_GT_MAPPING
        self.official_decode_ratio = official_decode_ratio
        self.save_hyperparameters()
        self.train_set: FMoWImages | None = None
        self.val_set: FMoWImages | None = None
        self.test_set: FMoWImages | None = None

    def missing(self, what: str, where: Path, expected: str) -> FileNotFoundError:
        return FileNotFoundError(f"fMoW: {what} {where} does not exist; expected {expected}. {HOW_TO_PREPARE}")

    def list_category_split(self, split: str) -> list[ListedImage]:
        """The images of ``train`` or ``val``, category by category in the official order.

        Raises:
            FileNotFoundError: the split folder is missing or holds no image, or an image has no metadata file.
            ValueError: a folder of the split is not one of the 62 categories.
        """
        folder = self.root / split
        layout = f"{folder}/<category>/<category>_<n>/<category>_<n>_<k>{IMAGE_SUFFIX} (and {METADATA_SUFFIX})"
        if not folder.is_dir():
            raise self.missing("split folder", folder, layout)
        entries = _sorted_entries(folder)
        unknown = [entry.name for entry in entries if entry.is_dir() and entry.name not in CATEGORY_IDS]
        if unknown:
            raise ValueError(
                f"fMoW: {folder} has the folder(s) {unknown[:5]}{' ...' if len(unknown) > 5 else ''}, which are not "
                f"fMoW-rgb categories; expected only category folders, named as in datamodules.fmow.CATEGORY_NAMES "
                f"({', '.join(CATEGORY_NAMES[:3])}, ..., {CATEGORY_NAMES[-1]})."
            )
        present = {entry.name for entry in entries if entry.is_dir()}
        listed = []
        for category in CATEGORY_NAMES:
            if category not in present:
                continue
            for sequence in _sorted_entries(folder / category):
                if not sequence.is_dir():
                    continue
                files = _sorted_entries(Path(sequence.path))
                names = {entry.name for entry in files}
                for entry in files:
                    if not (entry.name.startswith(f"{category}_") and entry.name.endswith(IMAGE_SUFFIX)):
                        continue
                    metadata = entry.name.removesuffix(IMAGE_SUFFIX) + METADATA_SUFFIX
                    metadata_path = Path(sequence.path) / metadata
                    if metadata not in names:
                        raise FileNotFoundError(
                            f"fMoW: image {entry.path} has no metadata file (expected {metadata_path})."
                        )
                    listed.append(ListedImage(Path(entry.path), CATEGORY_IDS[category], metadata_path))
        if not listed:
            raise self.missing(f"any image of split {split!r} in", folder, layout)
        return listed

    def read_test_mapping(self) -> list[tuple[str, str]]:
        """``(input, output)`` of each entry of the test ground-truth mapping, its category checked.

        Raises:
            FileNotFoundError: the mapping file is missing.
            ValueError: it is not a JSON list of ``{"input": "test_gt/<category>/<category>_<n>", "output":
                "test/<seq>"}``, or an entry names an unknown category (naming the file and the entry).
        """
        path = self.test_gt_mapping
        if not path.is_file():
            raise self.missing(
                "the test ground-truth mapping",
                path,
                f'the {TEST_GT_MAPPING} of the fMoW-rgb release ([{{"input": "test_gt/<category>/<category>_<n>", '
                '"output": "test/<seq>"}, ...]), which gives each test folder its category; pass '
                "test_gt_mapping=... if it is elsewhere",
            )
        try:
            content = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, ValueError) as err:
            raise ValueError(f"fMoW: cannot read the test ground-truth mapping {path} as JSON: {err}.") from err
        expected = 'a JSON list of {"input": "test_gt/<category>/<category>_<n>", "output": "test/<seq>"}'
        if not isinstance(content, list):
            raise ValueError(
                f"fMoW: the test ground-truth mapping {path} holds a {type(content).__name__}; expected {expected}."
            )
        pairs = []
        for entry in content:
            valid = isinstance(entry, dict) and all(isinstance(entry.get(key), str) for key in ("input", "output"))
            parts = PurePosixPath(entry["input"]).parts if valid else ()
            if len(parts) < 3:
                raise ValueError(
                    f"fMoW: the test ground-truth mapping {path} has the entry {entry!r}; expected {expected}."
                )
            if parts[1] not in CATEGORY_IDS:
                raise ValueError(
                    f"fMoW: the test ground-truth mapping {path} has the entry {entry!r}, whose category "
                    f"{parts[1]!r} is not an fMoW-rgb category (datamodules.fmow.CATEGORY_NAMES)."
                )
            pairs.append((entry["input"], entry["output"]))
        if not pairs:
            raise ValueError(f"fMoW: the test ground-truth mapping {path} is empty; expected {expected}.")
        return pairs

    def list_test_split(self) -> list[ListedImage]:
        """The test images of each mapping entry, labelled with its category (official ``match_test_gt.py``).

        The metadata of ``test/<seq>/<seq>_<k>_rgb.jpg`` is
        ``test_gt/<category>/<category>_<n>/<category>_<n>_<k>_rgb.json`` (the entry's ``input`` folder).

        Raises:
            FileNotFoundError: the test folder, the mapping or a mapped test folder is missing, or no image is found.
            ValueError: as :meth:`read_test_mapping`.
        """
        folder = self.root / "test"
        if not folder.is_dir():
            raise self.missing("split folder", folder, f"{folder}/<seq>/<seq>_<k>{IMAGE_SUFFIX}")
        listed = []
        mapped = set()
        for source, target in self.read_test_mapping():
            images = self.root / target
            if not images.is_dir():
                raise FileNotFoundError(
                    f"fMoW: test folder {images} does not exist; the test ground-truth mapping {self.test_gt_mapping} "
                    f"maps it to {source}. {HOW_TO_PREPARE}"
                )
            mapped.add(images.resolve())
            label = CATEGORY_IDS[PurePosixPath(source).parts[1]]
            test_prefix, gt_prefix = PurePosixPath(target).name, PurePosixPath(source).name
            for entry in _sorted_entries(images):
                if entry.name.endswith(IMAGE_SUFFIX):
                    metadata = entry.name.replace(test_prefix, gt_prefix).removesuffix(IMAGE_SUFFIX) + METADATA_SUFFIX
                    listed.append(ListedImage(Path(entry.path), label, self.root / source / metadata))
        unmapped = [
            entry.name
            for entry in _sorted_entries(folder)
            if entry.is_dir() and Path(entry.path).resolve() not in mapped
        ]
        if unmapped:
            warnings.warn(
                f"fMoW: {len(unmapped)} test folder(s) have no entry in {self.test_gt_mapping} and are left out, as "
                f"match_test_gt.py leaves them: {unmapped[:5]}{' ...' if len(unmapped) > 5 else ''}.",
                stacklevel=3,
            )
        if not listed:
            raise self.missing("any mapped test image in", folder, f"{folder}/<seq>/<seq>_<k>{IMAGE_SUFFIX}")
        return listed

    def check_layout(self, stage: str | None = None) -> dict[str, list[ListedImage]]:
        """The images of each split ``stage`` uses (``fit``: train, val; ``validate``: val; ``test`` / ``predict``:
        test; None: all), after checking the folders, metadata files and test mapping exist. Opens no image.

        Raises:
            FileNotFoundError, ValueError: naming what is missing or unexpected and where.
        """
        if not self.root.is_dir():
            raise self.missing(
                "dataset folder", self.root, "train/, val/, test/, test_gt/ and test_gt_mapping.json in it"
            )
        return {
            key: self.list_test_split() if key == "test" else self.list_category_split(key)
            for key in STAGE_DATASETS.get(stage, ())
        }

    def crops(self, listed: ListedImage, cache: FileSizeCache) -> list[FMoWSample]:
        """The cropped variant's samples of one image: one per box of its category (official ``crop_fMoW.py``).

        Raises:
            FileNotFoundError, ValueError: the metadata file is missing or malformed (naming it).
        """
        width, height = cache.size(listed.image, image_header_size)
        seen = (height, width)  # the size the official crop's metadata carries (see load_image)
        samples = []
        for box in own_boxes(read_boxes(listed.metadata), CATEGORY_NAMES[listed.label]):
            crop = context_crop_box(box, height, width)
            if crop is None:
                continue
            samples.append(FMoWSample(str(listed.image), listed.label, None, crop, min(seen)))
            seen = (crop.bottom - crop.top, crop.right - crop.left)
        return samples

    def _dataset(self, key: str, listed: list[ListedImage], cache: FileSizeCache) -> FMoWImages:
        samples = []
        bar = tqdm(listed, desc=f"fMoW: checking the {key} files", unit="image", delay=2, leave=False)
        for item in bar:
            if self.variant == "cropped":
                samples.extend(self.crops(item, cache))
            else:
                cache.size(item.image, image_header_size)
                samples.append(FMoWSample(str(item.image), item.label, str(item.metadata)))
        if not samples:
            raise ValueError(
                f"fMoW: no box of its own category in any {key} image of {self.root} (the cropped variant keeps one "
                "sample per such box)."
            )
        train = key == "train"
        transform = inception_train_transforms(self.image_size) if train else inception_eval_transforms(self.image_size)
        return FMoWImages(
            samples,
            transform,
            self.max_short_side,
            self.official_decode_ratio,
            use_boxes=train and self.variant == "full",
        )

    def setup(self, stage: str | None = None) -> None:
        """Check the layout and the image headers, and index the splits of ``stage`` (see the class docstring)."""
        listed = self.check_layout(stage)
        cache = FileSizeCache(self.root)
        try:
            for key, items in listed.items():
                if getattr(self, f"{key}_set") is None:
                    setattr(self, f"{key}_set", self._dataset(key, items, cache))
        finally:
            cache.save()
