"""PASCAL Context: ``trainval_merged.json`` (PASCAL in Detail) → the label PNGs and lists that
:mod:`datamodules.pascal_context` reads, without the Detail API (not on PyPI; it needs compiling).

Output, under ``voc2010 = root/VOCdevkit/VOC2010`` (``JPEGImages`` comes from the VOC 2010 tar)::

    SegmentationClassContext/<image id>.png        uint8 greyscale: 0 background, k the class CONTEXT_CLASSES[k - 1]
    ImageSets/SegmentationContext/{train,val}.txt   the image ids of the split, sorted, one per line

This reproduces what mmsegmentation's ``tools/dataset_converters/pascal_context.py`` (and PyTorch-Encoding's
``encoding/datasets/pcontext.py``, which does the same on the fly) make with ``Detail(json, jpeg_dir, phase)``,
``getImgs()`` and ``getMask(img)`` from the Detail API (``ccvl/detail-api``, ``PythonAPI/detail/__init__.py``).
What those files do, read there:

* The JSON (a dict): ``images`` (``image_id`` e.g. 2008000002, ``file_name`` "2008_000002.jpg", ``height``,
  ``width``, ``phase`` "train" / "val" / "test"), ``annos_segmentation`` (``id``, ``image_id``, ``category_id``,
  ``segmentation``: an RLE ``{"size": [h, w], "counts": str}``, plus ``parts``, ``iscrowd``, ``area``, ``bbox``),
  ``categories`` (``category_id``, ``name``, ``supercategory``, ``parts``, ``onlysemantic``), and ``parts``,
  ``annos_occlusion``, ``annos_boundary``, ``annos_joints``, which the class mask does not use.
* ``Detail(..., phase)`` / ``getImgs()``: the images whose ``phase`` is that split (``__createIndex`` indexes
  ``images`` by ``image_id`` and ``annos_segmentation`` by ``id``; ``getImgs`` filters on ``img["phase"]``).
  The ``test`` images (no public labels) are left out.
* ``getMask(img)`` with no other argument (the class mask): a float array of zeros of the image's
  ``height`` × ``width``; every segmentation annotation of the image, in the order of ``annos_segmentation``
  (the order of the ``id`` index), is decoded with the COCO mask API's ``decode`` and its nonzero pixels are set
  to its ``category_id``: a later annotation overwrites an earlier one where they overlap; no annotation → 0.
  ``parts`` and ``iscrowd`` play no part in it.
* mmsegmentation maps the raw ids with ``np.digitize(mask, sorted(_mapping), right=True)``, ``_mapping`` being
  0 and the 59 raw ids of the benchmark classes, after asserting that every value of the mask is in
  ``_mapping``; the sorted position is the train id, written as an 8-bit PNG named after ``file_name``; the
  list files hold the ids of each phase, sorted.

The COCO mask API's ``decode`` only takes compressed RLE (``counts`` a string), so that is what the real file
holds; an uncompressed RLE (``counts`` a list of run lengths) is accepted as well. Everything is written
atomically (a temporary name in the same folder, then ``os.replace``): a killed run leaves no half-written file,
and running again skips the labels already there (a PNG of the right size), so a second run writes nothing.
"""

from __future__ import annotations

import json
import warnings
from collections import Counter
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from pycocotools import mask as mask_api
from tqdm import tqdm

from datamodules.store.atomic import write_atomically

JSON_URL = "https://codalabuser.blob.core.windows.net/public/trainval_merged.json"
LABEL_DIR = "SegmentationClassContext"
LIST_DIR = Path("ImageSets") / "SegmentationContext"
SPLITS = ("train", "val")

# The raw Detail category ids of the 60-class version: 0 (no annotation, background) then the 59 benchmark
# classes, sorted, so that RAW_CONTEXT_IDS[k] is the raw id of train id k: mmsegmentation's ``_mapping`` after its
# ``np.sort`` (the same 59 ids as the Detail API's ``eval_orders``). The Detail category ids number PASCAL Context's
# 459 labels alphabetically (1 accordion, 2 aeroplane, 3 air conditioner, ...), so sorted ids give sorted names: the
# names of RAW_CONTEXT_IDS[1:] are datamodules.pascal_context.CONTEXT_CLASSES in order (aeroplane ... wood).
RAW_CONTEXT_IDS: tuple[int, ...] = (
    0, 2, 9, 18, 19, 22, 23, 25, 31, 33, 34, 44, 45, 46, 59, 65, 68, 72, 80, 85,
    98, 104, 105, 113, 115, 144, 158, 159, 162, 187, 189, 207, 220, 232, 258, 259, 260, 284, 295, 296,
    308, 324, 326, 347, 349, 354, 355, 360, 366, 368, 397, 415, 416, 420, 424, 427, 440, 445, 454, 458,
)  # fmt: skip
NUM_CONTEXT_CLASSES = len(RAW_CONTEXT_IDS)  # 60, background included

# Images per split that trainval_merged.json gives (its ``phase`` field), hence the converted set of
# mmsegmentation and PyTorch-Encoding: 4,996 train / 5,104 val (and 4,188 test without labels). Source: the
# Detail API's author in ccvl/detail-api issue #1 (getImgs(phase="train") == 4996, "val" == 5104, "trainval" ==
# 10100), confirmed by PyTorch-Encoding issue #155 (its train.pth / val.pth hold 4,996 / 5,104 images; the
# organisers changed the split slightly after the CVPR 2017 workshop).
PUBLISHED_COUNTS: dict[str, int] = {"train": 4996, "val": 5104}
# The counts of the original release (Mottaghi et al. 2014, the .mat labels; 10,103 images), quoted by the papers.
PAPER_COUNTS: dict[str, int] = {"train": 4998, "val": 5105}

# Raw category id → train id. A raw id that is not among the 60 becomes 0 (background): PASCAL Context's 59-class
# benchmark counts every other class as background. mmsegmentation and PyTorch-Encoding assert instead that no
# such id occurs (without the assert, np.digitize would give it the index of the next larger id in the list, a
# wrong class); their converters run through the real file, so none occurs there and both ways give the same PNGs.
_TRAIN_ID = np.zeros(max(RAW_CONTEXT_IDS) + 1, dtype=np.uint8)
_TRAIN_ID[list(RAW_CONTEXT_IDS)] = np.arange(NUM_CONTEXT_CLASSES, dtype=np.uint8)


def train_id(raw_id: int) -> int:
    """The train id (0..59) of a raw Detail category id: its index in :data:`RAW_CONTEXT_IDS`, else 0."""
    if isinstance(raw_id, bool) or not isinstance(raw_id, (int, np.integer)) or raw_id < 0:
        raise ValueError(f"category id {raw_id!r} is not a non-negative integer.")
    return int(_TRAIN_ID[raw_id]) if raw_id < len(_TRAIN_ID) else 0


def context_class_names(categories: Iterable[Mapping[str, Any]]) -> tuple[str, ...]:
    """The names that the JSON's ``categories`` give to train ids 1..59 (:data:`RAW_CONTEXT_IDS` ``[1:]``).

    Raises:
        ValueError: one of the 59 ids is not among the categories.
    """
    names = {category["category_id"]: category["name"] for category in categories}
    missing = [raw for raw in RAW_CONTEXT_IDS[1:] if raw not in names]
    if missing:
        raise ValueError(f"the categories lack the PASCAL Context ids {missing}.")
    return tuple(names[raw] for raw in RAW_CONTEXT_IDS[1:])


def decode_segmentation(segmentation: Any, height: int, width: int) -> np.ndarray:
    """The ``(height, width)`` binary mask of one RLE: compressed (``counts`` a string, as in the real file) or
    uncompressed (``counts`` a list of run lengths, column-major, starting with a run of zeros).

    Raises:
        ValueError: not an RLE, or one of another size than the image.
    """
    if not isinstance(segmentation, Mapping) or "counts" not in segmentation or "size" not in segmentation:
        raise ValueError(f"segmentation is not an RLE {{'size': [h, w], 'counts': ...}}: {str(segmentation)[:80]}")
    if list(segmentation["size"]) != [height, width]:
        raise ValueError(f"RLE of size {list(segmentation['size'])} in an image of {height}x{width} (h x w).")
    counts = segmentation["counts"]
    if isinstance(counts, list):
        rle = mask_api.frPyObjects({"size": [height, width], "counts": counts}, height, width)
    elif isinstance(counts, (str, bytes)):
        rle = {"size": [height, width], "counts": counts}
    else:
        raise ValueError(f"RLE counts of type {type(counts).__name__}, expected a string or a list.")
    return mask_api.decode(rle)


def context_mask(annotations: Iterable[Mapping[str, Any]], height: int, width: int) -> np.ndarray:
    """The ``(height, width)`` uint8 train-id mask (0..59) of one image's segmentation annotations.

    As the Detail API's ``getMask`` then mmsegmentation's mapping: each annotation, in the given order, sets its
    pixels to the train id of its ``category_id`` (a later one wins where they overlap); unannotated pixels and
    raw ids outside the 60 are 0 (see ``_TRAIN_ID``).
    """
    mask = np.zeros((height, width), dtype=np.uint8)
    for annotation in annotations:
        label = train_id(annotation["category_id"])
        mask[decode_segmentation(annotation["segmentation"], height, width) != 0] = label
    return mask


def _field(record: Any, key: str, what: str, source: Path) -> Any:
    if not isinstance(record, Mapping) or key not in record:
        raise ValueError(f"{source}: {what} has no {key!r} field; not the Detail format of trainval_merged.json.")
    return record[key]


def load_detail_json(json_path: Path) -> dict[str, Any]:
    """The parsed annotation file, checked to have the Detail fields this module reads.

    Raises:
        FileNotFoundError: no file at ``json_path``.
        ValueError: not JSON, or not the Detail format.
    """
    json_path = Path(json_path)
    if not json_path.is_file():
        raise FileNotFoundError(f"PASCAL Context annotation file {json_path} not found; download it from {JSON_URL}.")
    try:
        with open(json_path, "rb") as file:
            data = json.load(file)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"{json_path} is not valid JSON ({error}); download it again from {JSON_URL}.") from error
    for key in ("images", "annos_segmentation", "categories"):
        if not isinstance(_field(data, key, "the top level", json_path), list):
            raise ValueError(f"{json_path}: {key!r} is not a list; not the Detail format of trainval_merged.json.")
    return data


def _normalised(name: str) -> str:
    return "".join(character for character in name.lower() if character.isalnum())


def _warn_if_names_differ(categories: list[Mapping[str, Any]], json_path: Path) -> None:
    """Warn when the file names the 59 classes otherwise than CONTEXT_CLASSES (another version of the file)."""
    from datamodules.pascal_context import CONTEXT_CLASSES  # here: that module may one day import this one

    try:
        names = context_class_names(categories)
    except ValueError as error:
        warnings.warn(f"{json_path}: {error}", stacklevel=3)
        return
    differ = [
        f"{k}: {name!r} != {expected!r}"
        for k, (name, expected) in enumerate(zip(names, CONTEXT_CLASSES, strict=True), start=1)
        if _normalised(name) != _normalised(expected)
    ]
    if differ:
        warnings.warn(f"{json_path}: class names differ from CONTEXT_CLASSES: {', '.join(differ)}", stacklevel=3)


def _has_size(path: Path, size: tuple[int, int]) -> bool:
    try:
        with Image.open(path) as image:
            return image.size == size
    except OSError:  # missing or unreadable (UnidentifiedImageError is an OSError)
        return False


def _write_if_changed(path: Path, text: str) -> None:
    if not (path.is_file() and path.read_text() == text):
        write_atomically(path, lambda file: file.write(text.encode()))


def convert_detail_annotations(json_path: Path, voc2010: Path, progress: bool = True) -> dict[str, int]:
    """Write ``voc2010/SegmentationClassContext/<id>.png`` for every train and val image of ``json_path`` and
    ``voc2010/ImageSets/SegmentationContext/{train,val}.txt``; returns the number of images per split.

    The whole file is checked before anything is written. Labels already there with the image's size are kept,
    and a list file is rewritten only when its content changes, so a second run writes nothing.

    Raises:
        FileNotFoundError: ``json_path`` missing, or the JPEG of a listed image missing under ``voc2010/JPEGImages``.
        ValueError: ``json_path`` not JSON or not the Detail format; an annotation of a category id that is not
            among the file's categories, or of an image that is not in it; an RLE that does not fit its image; a
            JPEG of another size than the file gives.
    """
    json_path, voc2010 = Path(json_path), Path(voc2010)
    data = load_detail_json(json_path)
    categories = data["categories"]
    known = {_field(category, "category_id", "a category", json_path) for category in categories}
    _warn_if_names_differ(categories, json_path)

    images: dict[Any, dict[str, Any]] = {}
    for image in data["images"]:
        images[_field(image, "image_id", "an image", json_path)] = image
    # Indexed by annotation id, as the Detail API does: the file's order, a repeated id keeping its first place.
    by_id: dict[Any, Mapping[str, Any]] = {}
    for annotation in data["annos_segmentation"]:
        by_id[_field(annotation, "id", "a segmentation annotation", json_path)] = annotation
    annotations: dict[Any, list[Mapping[str, Any]]] = {}
    for annotation_id, annotation in by_id.items():
        image_id = _field(annotation, "image_id", f"annotation {annotation_id}", json_path)
        if image_id not in images:
            raise ValueError(f"{json_path}: annotation {annotation_id} is of image {image_id}, not in 'images'.")
        annotations.setdefault(image_id, []).append(annotation)

    jpegs = voc2010 / "JPEGImages"
    todo: dict[str, list[tuple[str, dict[str, Any]]]] = {split: [] for split in SPLITS}
    owners: dict[str, Any] = {}
    for image_id, image in images.items():
        split = _field(image, "phase", f"image {image_id}", json_path)
        if split not in SPLITS:
            continue  # "test": no public labels
        name = Path(_field(image, "file_name", f"image {image_id}", json_path)).stem
        if owners.setdefault(name, image_id) != image_id:
            raise ValueError(f"{json_path}: images {owners[name]} and {image_id} have the same file name {name}.")
        size = (_field(image, "width", f"image {name}", json_path), _field(image, "height", f"image {name}", json_path))
        jpeg = jpegs / image["file_name"]
        if not jpeg.is_file():
            raise FileNotFoundError(
                f"image {name} of {json_path} has no JPEG at {jpeg}; unpack the VOC 2010 trainval tar into "
                f"{voc2010.parent.parent} first."
            )
        with Image.open(jpeg) as opened:
            found = opened.size
        if found != size:
            raise ValueError(f"JPEG {jpeg} is {found[0]}x{found[1]} but {json_path} gives {size[0]}x{size[1]}.")
        for annotation in annotations.get(image_id, []):
            category = annotation.get("category_id")
            if category not in known:
                raise ValueError(
                    f"{json_path}: annotation {annotation.get('id')} of image {name} has category id {category!r}, "
                    "which is not among the file's categories."
                )
        todo[split].append((name, image))

    labels = voc2010 / LABEL_DIR
    labels.mkdir(parents=True, exist_ok=True)
    for stale in labels.glob(".*.png.*.tmp"):  # left by a killed run
        stale.unlink(missing_ok=True)
    everything = [(name, image) for split in SPLITS for name, image in todo[split]]
    for name, image in tqdm(everything, desc="PASCAL Context labels", unit="image", disable=not progress):
        target = labels / f"{name}.png"
        if _has_size(target, (image["width"], image["height"])):
            continue
        try:
            mask = context_mask(annotations.get(image["image_id"], []), image["height"], image["width"])
        except (KeyError, ValueError) as error:
            raise ValueError(f"{json_path}: image {name}: {error}") from error
        write_atomically(target, lambda file, mask=mask: Image.fromarray(mask).save(file, format="PNG"))

    lists = voc2010 / LIST_DIR
    lists.mkdir(parents=True, exist_ok=True)
    for split in SPLITS:
        _write_if_changed(lists / f"{split}.txt", "".join(f"{name}\n" for name in sorted(n for n, _ in todo[split])))
    return {split: len(todo[split]) for split in SPLITS}


def _read_ids(path: Path) -> list[str]:
    return [line.strip() for line in path.read_text().splitlines() if line.strip()]


def _check_pair(image_id: str, listing: Path, jpeg: Path, png: Path | None) -> list[str]:
    """Problems of one listed image: the files exist, have the same size, and the label values are <= 59."""
    problems = []
    if not jpeg.is_file():
        problems.append(f"missing: {jpeg} (listed in {listing})")
    if png is not None and not png.is_file():
        problems.append(f"missing: {png} (listed in {listing})")
    if problems or png is None:
        return problems
    try:
        with Image.open(jpeg) as image:
            jpeg_size = image.size
        with Image.open(png) as label:
            png_size = label.size
            values = np.asarray(label)
    except OSError as error:
        return [f"unreadable: {image_id}: {error}"]
    if png_size != jpeg_size:
        problems.append(f"size: {png} is {png_size[0]}x{png_size[1]} but {jpeg} is {jpeg_size[0]}x{jpeg_size[1]}")
    if values.ndim != 2:
        problems.append(f"values: {png} has {values.ndim} dimensions, expected a single-channel label")
    elif values.size and values.max() >= NUM_CONTEXT_CLASSES:
        above = np.unique(values[values >= NUM_CONTEXT_CLASSES])
        problems.append(f"values: {png} holds {above.tolist()[:5]} above {NUM_CONTEXT_CLASSES - 1}")
    return problems


def check_converted(
    voc2010: Path, expected_counts: Mapping[str, int] | None = None, *, progress: bool = True
) -> list[str]:
    """Problems of a converted tree (an empty list: none): each list file exists, lists each image once, and as
    many as ``expected_counts`` (default :data:`PUBLISHED_COUNTS`; only the splits it names are counted, ``{}``
    counts none); every listed id has a JPEG and a PNG of the same size (headers), the PNG's values are <= 59;
    no image is in both splits.
    """
    voc2010 = Path(voc2010)
    counts = PUBLISHED_COUNTS if expected_counts is None else expected_counts
    labels = voc2010 / LABEL_DIR
    problems = []
    if not labels.is_dir():
        problems.append(f"missing: label folder {labels}")
    listed: dict[str, set[str]] = {}
    for split in SPLITS:
        listing = voc2010 / LIST_DIR / f"{split}.txt"
        if not listing.is_file():
            problems.append(f"missing: list file {listing}")
            continue
        ids = _read_ids(listing)
        listed[split] = set(ids)
        if len(ids) != len(listed[split]):
            repeated = sorted(image_id for image_id, times in Counter(ids).items() if times > 1)
            problems.append(f"repeated: {listing} lists {repeated[:5]} more than once")
        if split in counts and len(ids) != counts[split]:
            problems.append(f"count: {listing} lists {len(ids):,} images, expected {counts[split]:,}")
        for image_id in tqdm(ids, desc=f"checking {split}", unit="image", disable=not progress, leave=False):
            png = labels / f"{image_id}.png" if labels.is_dir() else None
            problems += _check_pair(image_id, listing, voc2010 / "JPEGImages" / f"{image_id}.jpg", png)
    if len(listed) == len(SPLITS):
        both = sorted(set.intersection(*listed.values()))
        if both:
            problems.append(f"overlap: {len(both)} images in both train and val, e.g. {both[:5]}")
    return problems
