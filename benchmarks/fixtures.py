"""Small dataset trees in the published layouts of the benchmark DataModules, for timing their loaders.

:func:`write_tree` writes ``num_images`` training images plus one validation image (so that every split a
DataModule sets up exists), each with a label of the raw ids that the DataModule converts to train ids.
An image is a scene of smooth colour regions (Voronoi cells under a vertical brightness ramp), each with its
own stripe texture, plus mild sensor noise, so that encoding and decoding cost about what they cost on
photographs; the label gives each cell one raw id. Cityscapes images are PNG, the others JPEG, as in the
real datasets; the VOC PNG labels carry VOC's void (255) border between objects.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from functools import partial
from pathlib import Path

import numpy as np
from PIL import Image
from scipy.io import savemat

from datamodules.coco_stuff import USED_IDS
from datamodules.voc import voc_colormap

NUM_CELLS = 24
CELL_STEP = 4  # the Voronoi cells are computed at 1/CELL_STEP of the resolution and upsampled
NOISE_STD = 2.0
JPEG_QUALITY = 90
VOID = 255

# Raw label ids written per dataset: Cityscapes' 34 label ids and the license plate (-1, stored as 255);
# VOC / PASCAL Context / CamVid values with background or void; COCO-Stuff's unlabelled 0 and used ids.
CITYSCAPES_IDS = (*range(34), 255)
COCO_STUFF_IDS = (0, *USED_IDS)

Scene = tuple[str, int, np.ndarray, np.ndarray]
Scenes = Callable[[Sequence[int]], Iterator[Scene]]


def draw_scene(rng: np.random.Generator, height: int, width: int, ids: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """An RGB uint8 image ``(H, W, 3)`` and its raw label ``(H, W)`` (uint16), one id of ``ids`` per cell."""
    h, w = -(-height // CELL_STEP), -(-width // CELL_STEP)
    centres = rng.uniform((0, 0), (h, w), size=(NUM_CELLS, 2))
    ys, xs = np.ogrid[:h, :w]
    distances = (ys[..., None] - centres[:, 0]) ** 2 + (xs[..., None] - centres[:, 1]) ** 2
    cells = distances.argmin(axis=-1).repeat(CELL_STEP, axis=0).repeat(CELL_STEP, axis=1)[:height, :width]

    angle = rng.uniform(0.0, np.pi, NUM_CELLS)
    frequency = 2 * np.pi / rng.uniform(3.0, 30.0, NUM_CELLS)
    amplitude = rng.uniform(5.0, 30.0, NUM_CELLS).astype(np.float32)
    colour = rng.uniform(20.0, 235.0, (NUM_CELLS, 3)).astype(np.float32)
    y = np.arange(height, dtype=np.float32)[:, None]
    x = np.arange(width, dtype=np.float32)[None, :]
    slope_x = (np.cos(angle) * frequency).astype(np.float32)
    slope_y = (np.sin(angle) * frequency).astype(np.float32)
    phase = slope_x[cells] * x + slope_y[cells] * y
    shading = amplitude[cells] * np.sin(phase) + 40.0 * (0.5 - y / height)
    image = colour[cells] + shading[..., None] + NOISE_STD * rng.standard_normal((height, width, 3), np.float32)
    labels = np.asarray(ids, dtype=np.uint16)[rng.integers(0, len(ids), NUM_CELLS)]
    return np.clip(image, 0, 255).astype(np.uint8), labels[cells]


def scenes(num_images: int, height: int, width: int, seed: int, ids: Sequence[int]) -> Iterator[Scene]:
    """``(split, index, image, label)`` of ``num_images`` "train" scenes and one "val" scene."""
    for split, count in (("train", num_images), ("val", 1)):
        for index in range(count):
            rng = np.random.default_rng([seed, split == "val", index])
            yield split, index, *draw_scene(rng, height, width, ids)


def void_border(label: np.ndarray, width: int = 2) -> np.ndarray:
    """Pixels within ``width`` of a change of label value (VOC's void outline of the objects)."""
    border = np.zeros(label.shape, dtype=bool)
    for shift in range(1, width + 1):
        border[:, shift:] |= label[:, shift:] != label[:, :-shift]
        border[shift:] |= label[shift:] != label[:-shift]
    return border


def save_image(path: Path, image: np.ndarray) -> None:
    """RGB image as PNG or JPEG (by suffix)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    options = {"quality": JPEG_QUALITY} if path.suffix == ".jpg" else {}
    Image.fromarray(image).save(path, **options)


def save_label(path: Path, label: np.ndarray, palette: Sequence[tuple[int, int, int]] | None = None) -> None:
    """8-bit label PNG, a palette (``P``) image when ``palette`` is given."""
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.fromarray(label.astype(np.uint8))
    if palette is not None:
        image.putpalette([channel for colour in palette for channel in colour])
    image.save(path)


def save_mat(path: Path, content: dict) -> None:
    """Compressed MATLAB file, as SBD's and COCO-Stuff's annotations."""
    path.parent.mkdir(parents=True, exist_ok=True)
    savemat(path, content, do_compression=True)


def save_lists(folder: Path, lists: dict[str, list[str]]) -> None:
    """One ``<split>.txt`` per entry, one line per item."""
    folder.mkdir(parents=True, exist_ok=True)
    for split, lines in lists.items():
        (folder / f"{split}.txt").write_text("".join(f"{line}\n" for line in lines))


def write_cityscapes(root: Path, draw: Scenes) -> None:
    for split, index, image, label in draw(CITYSCAPES_IDS):
        city = ("aachen", "bochum")[index % 2] if split == "train" else "frankfurt"
        stem = f"{city}_{index:06d}_000019"
        save_image(root / "leftImg8bit" / split / city / f"{stem}_leftImg8bit.png", image)
        save_label(root / "gtFine" / split / city / f"{stem}_gtFine_labelIds.png", label)


def write_voc(root: Path, draw: Scenes) -> None:
    """Even training ids in VOC 2012 (PNG label with void border), odd ones SBD-only (``.mat``, no void)."""
    voc, sbd = root / "VOCdevkit" / "VOC2012", root / "benchmark_RELEASE" / "dataset"
    lists: dict[str, list[str]] = {"train": [], "val": []}
    sbd_lists: dict[str, list[str]] = {"train": [], "val": []}
    for split, index, image, label in draw(range(21)):
        image_id = f"20{11 if split == 'train' else 12}_{index:06d}"
        if split == "train" and index % 2:
            save_image(sbd / "img" / f"{image_id}.jpg", image)
            save_mat(sbd / "cls" / f"{image_id}.mat", {"GTcls": {"Segmentation": label.astype(np.uint8)}})
            sbd_lists[split].append(image_id)
        else:
            save_image(voc / "JPEGImages" / f"{image_id}.jpg", image)
            label[void_border(label)] = VOID
            save_label(voc / "SegmentationClass" / f"{image_id}.png", label, voc_colormap(256))
            lists[split].append(image_id)
    save_lists(voc / "ImageSets" / "Segmentation", {**lists, "trainval": lists["train"] + lists["val"]})
    save_lists(sbd, sbd_lists)


def write_pascal_context(root: Path, draw: Scenes) -> None:
    voc = root / "VOCdevkit" / "VOC2010"
    lists: dict[str, list[str]] = defaultdict(list)
    for split, index, image, label in draw(range(60)):
        image_id = f"20{'08' if split == 'train' else '10'}_{index:06d}"
        save_image(voc / "JPEGImages" / f"{image_id}.jpg", image)
        save_label(voc / "SegmentationClassContext" / f"{image_id}.png", label)
        lists[split].append(image_id)
    save_lists(voc / "ImageSets" / "SegmentationContext", lists)


def write_coco_stuff_10k(root: Path, draw: Scenes) -> None:
    """The validation image goes to the ``test`` list, the split the DataModule validates on."""
    lists: dict[str, list[str]] = defaultdict(list)
    for split, index, image, label in draw(COCO_STUFF_IDS):
        image_id = f"COCO_{split}2014_{index:012d}"
        save_image(root / "images" / f"{image_id}.jpg", image)
        save_mat(root / "annotations" / f"{image_id}.mat", {"S": label})
        lists["train" if split == "train" else "test"].append(image_id)
    save_lists(root / "imageLists", {**lists, "all": lists["train"] + lists["test"]})


def write_camvid(root: Path, draw: Scenes) -> None:
    """Void is 11; the test list names the validation image."""
    lists: dict[str, list[str]] = defaultdict(list)
    for split, index, image, label in draw(range(12)):
        name = f"0001TP_{split}{index:06d}"
        save_image(root / split / f"{name}.jpg", image)
        save_label(root / f"{split}annot" / f"{name}.png", label)
        lists[split].append(f"{split}/{name}.jpg {split}annot/{name}.png")
    save_lists(root / "splits", {**lists, "test": lists["val"]})


WRITERS: dict[str, Callable[[Path, Scenes], None]] = {
    "cityscapes": write_cityscapes,
    "voc": write_voc,
    "pascal_context": write_pascal_context,
    "coco_stuff_10k": write_coco_stuff_10k,
    "camvid": write_camvid,
}


def write_tree(dataset: str, root: Path, num_images: int, height: int = 1024, width: int = 2048, seed: int = 0) -> Path:
    """Write ``dataset``'s layout (a key of :data:`WRITERS`) under ``root``; return ``root``."""
    if dataset not in WRITERS:
        raise ValueError(f"unknown dataset {dataset!r}; expected one of {', '.join(WRITERS)}.")
    if num_images < 1 or min(height, width) < CELL_STEP:
        raise ValueError(f"need num_images >= 1 and sides >= {CELL_STEP}, got {num_images} of {height}x{width}.")
    root = Path(root)
    WRITERS[dataset](root, partial(scenes, num_images, height, width, seed))
    return root


# fMoW-rgb: the first, the 43rd (``impoverished_settlement``, out of alphabetical order in the official list) and
# the last of the 62 categories.
FMOW_CATEGORIES = ("airport", "impoverished_settlement", "zoo")


def _fmow_boxes(rng: np.random.Generator, height: int, width: int, category: str, other: str, box_id: int) -> list:
    """The ``bounding_boxes`` of an fMoW image: one of its category (a third to two thirds of each side), one of
    another category and one of its category with the unknown ``ID`` −1 (both ignored by the official scripts)."""
    boxes = []
    for name, identifier in ((category, box_id), (other, box_id + 1), (category, -1)):
        w = int(rng.integers(width // 3, 2 * width // 3 + 1))
        h = int(rng.integers(height // 3, 2 * height // 3 + 1))
        x, y = int(rng.integers(0, width - w + 1)), int(rng.integers(0, height - h + 1))
        boxes.append({"box": [x, y, w, h], "category": name, "ID": identifier})
    return boxes


def write_fmow(
    root: Path,
    categories: Sequence[str] = FMOW_CATEGORIES,
    sequences: int = 2,
    images_per_sequence: int = 2,
    height: int = 48,
    width: int = 64,
    seed: int = 0,
) -> Path:
    """Write a small fMoW-rgb tree in the release's layout (``datamodules.fmow``) under ``root``; return ``root``.

    ``train`` and ``val``: ``sequences`` sequence folders per category, each with ``images_per_sequence`` JPEGs
    ``<category>_<n>_<k>_rgb.jpg`` and their ``_rgb.json`` metadata (``img_height``, ``img_width``,
    ``bounding_boxes``: see :func:`_fmow_boxes`). ``test``: the same number of sequences per category, stored as
    ``test/<seq>/<seq>_<k>_rgb.jpg`` with metadata without categories; their sequence ids are shuffled, so that their
    order says nothing of the categories. ``test_gt/<category>/<category>_<n>/`` holds the test metadata with
    categories, and ``test_gt_mapping.json`` the official mapping (``{"input": "test_gt/<category>/<category>_<n>",
    "output": "test/<seq>"}``).
    """
    import json  # here, not at the top: this builder is appended to the module

    root = Path(root)
    if sequences < 1 or images_per_sequence < 1 or min(height, width) < CELL_STEP:
        raise ValueError(f"need sequences, images_per_sequence >= 1 and sides >= {CELL_STEP}.")
    rng = np.random.default_rng(seed)
    sequence_ids = rng.permutation(len(categories) * sequences)
    mapping = []
    for split_index, split in enumerate(("train", "val", "test")):
        for c, category in enumerate(categories):
            other = categories[(c + 1) % len(categories)]
            for n in range(sequences):
                gt_folder = f"{category}/{category}_{n}"
                for k in range(images_per_sequence):
                    image, _ = draw_scene(np.random.default_rng([seed, split_index, c, n, k]), height, width, (0,))
                    metadata = {
                        "img_height": height,
                        "img_width": width,
                        "bounding_boxes": _fmow_boxes(rng, height, width, category, other, 10 * n + k),
                    }
                    if split != "test":
                        stem = root / split / gt_folder / f"{category}_{n}_{k}_rgb"
                        save_image(stem.with_suffix(".jpg"), image)
                        stem.with_suffix(".json").write_text(json.dumps(metadata))
                        continue
                    sequence = f"{sequence_ids[c * sequences + n]:07d}"
                    stem = root / "test" / sequence / f"{sequence}_{k}_rgb"
                    save_image(stem.with_suffix(".jpg"), image)
                    hidden = [
                        {key: v for key, v in box.items() if key != "category"} for box in metadata["bounding_boxes"]
                    ]
                    stem.with_suffix(".json").write_text(json.dumps({**metadata, "bounding_boxes": hidden}))
                    gt = root / "test_gt" / gt_folder / f"{category}_{n}_{k}_rgb.json"
                    gt.parent.mkdir(parents=True, exist_ok=True)
                    gt.write_text(json.dumps(metadata))
                if split == "test":
                    mapping.append({"input": f"test_gt/{gt_folder}", "output": f"test/{sequence}"})
    (root / "test_gt_mapping.json").write_text(json.dumps(mapping))
    return root
