"""FMoWDataModule on small trees in the fMoW-rgb release's layout (benchmarks.fixtures.write_fmow)."""

import json
import math
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from benchmarks.fixtures import FMOW_CATEGORIES, write_fmow
from datamodules.fmow import CATEGORY_NAMES, FMoWDataModule

# The official order (Tpap/TNet fMoW/train.py), spelled out here: not alphabetical around position 42.
OFFICIAL_IDS = {"airport": 0, "airport_hangar": 1, "recreational_facility": 41, "impoverished_settlement": 42}
OFFICIAL_IDS |= {"road_bridge": 43, "zoo": 61}


@pytest.fixture
def fmow_tree(tmp_path) -> Path:
    """3 categories (airport, impoverished_settlement, zoo) x 2 sequences x 2 images of 48x64 in each split."""
    return write_fmow(tmp_path / "fmow")


def datamodule(root: Path, **kwargs) -> FMoWDataModule:
    return FMoWDataModule(root, **{"image_size": 32, "batch_size": 4, "num_workers": 0, **kwargs})


def write_sample(
    root: Path, split: str, category: str, pixels: np.ndarray, boxes: list, n: int = 0, k: int = 0
) -> Path:
    """One image of the release's layout with its metadata; returns the image path."""
    folder = root / split / category / f"{category}_{n}"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{category}_{n}_{k}_rgb.jpg"
    Image.fromarray(pixels).save(path, quality=95)
    height, width = pixels.shape[:2]
    metadata = {"img_height": height, "img_width": width, "bounding_boxes": boxes}
    path.with_suffix(".json").write_text(json.dumps(metadata))
    return path


def smooth_image(height: int, width: int, seed: int = 0) -> np.ndarray:
    """Smooth colour gradients plus mild noise (JPEG keeps them close to what was written)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[:height, :width]
    channels = [127 + 100 * np.sin(x / (9 + 4 * c) + y / (13 + 3 * c) + c) for c in range(3)]
    pixels = np.stack(channels, axis=-1) + rng.normal(0, 3, (height, width, 3))
    return np.clip(pixels, 0, 255).astype(np.uint8)


def decoded(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.array(image.convert("RGB"))


def bilinear_reference(image: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
    """TF's half-pixel-centre bilinear resize of an ``(H, W, C)`` float array, from its definition."""

    def axis(out_size: int, in_size: int):
        coords = np.maximum((np.arange(out_size) + 0.5) * in_size / out_size - 0.5, 0.0)
        low = np.minimum(np.floor(coords).astype(int), in_size - 1)
        return low, np.minimum(low + 1, in_size - 1), coords - np.floor(coords)

    y0, y1, fy = axis(out_h, image.shape[0])
    x0, x1, fx = axis(out_w, image.shape[1])
    rows = image[y0] * (1 - fy)[:, None, None] + image[y1] * fy[:, None, None]
    return rows[:, x0] * (1 - fx)[None, :, None] + rows[:, x1] * fx[None, :, None]


def tf_stored(pixels: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
    """uint8 → [0, 1] → bilinear → uint8 as tf.image.convert_image_dtype truncates ``x · 255.5``."""
    return np.floor(bilinear_reference(pixels / 255.0, out_h, out_w) * 255.5).astype(np.uint8)


def official_margin(fraction: float) -> float:
    """crop_fMoW.py's context multiplier, written as its chain of bands."""
    if fraction < 0.1:
        return 2.0
    if fraction < 0.2:
        return 1.0
    if fraction < 0.3:
        return 0.5
    if fraction < 0.4:
        return 0.3
    if fraction < 0.5:
        return 0.2
    return 0.15


def official_crop(box, height: int, width: int):
    """(top, left, bottom, right) of crop_fMoW.py's crop of box [x, y, w, h]."""
    x, y, w, h = box
    grow_w = math.floor(w * official_margin(w / width) / 2)
    grow_h = math.floor(h * official_margin(h / height) / 2)
    return max(0, y - grow_h), max(0, x - grow_w), min(height, y + h + grow_h), min(width, x + w + grow_w)


# --- classes and labels ----------------------------------------------------------------------------------------


def test_class_names_are_the_official_62_in_the_official_order():
    assert len(CATEGORY_NAMES) == 62 == FMoWDataModule.num_classes and len(set(CATEGORY_NAMES)) == 62
    assert {name: CATEGORY_NAMES.index(name) for name in OFFICIAL_IDS} == OFFICIAL_IDS
    assert sorted(CATEGORY_NAMES).index("impoverished_settlement") == 25  # alphabetical order would differ
    assert FMoWDataModule.class_names == CATEGORY_NAMES


def test_train_and_val_labels_come_from_the_category_folders(fmow_tree):
    dm = datamodule(fmow_tree)
    dm.setup("fit")
    for dataset in (dm.train_set, dm.val_set):
        assert len(dataset) == 12
        for sample in dataset.samples:
            assert sample.label == OFFICIAL_IDS[Path(sample.image).parents[1].name]
        assert sorted({sample.label for sample in dataset.samples}) == [0, 42, 61]
    images, labels = next(iter(dm.train_dataloader()))
    assert images.shape == (4, 3, 32, 32) and images.dtype == torch.float32 and labels.dtype == torch.int64
    assert images.min() >= -1 and images.max() <= 1
    val = list(dm.val_dataloader())
    assert torch.cat([labels for _, labels in val]).tolist() == [0] * 4 + [42] * 4 + [61] * 4
    assert dm.test_set is None  # fit reads neither the test folders nor the mapping


def test_test_labels_come_from_the_ground_truth_mapping(fmow_tree):
    mapping = json.loads((fmow_tree / "test_gt_mapping.json").read_text())
    category_of = {Path(entry["output"]).name: entry["input"].split("/")[1] for entry in mapping}
    assert sorted(category_of) != [name for name, _ in sorted(category_of.items(), key=lambda kv: kv[1])]
    dm = datamodule(fmow_tree)
    dm.setup("test")
    assert len(dm.test_set) == 12
    for sample in dm.test_set.samples:
        sequence = Path(sample.image).parent.name
        assert sample.label == OFFICIAL_IDS[category_of[sequence]]
        # its metadata is the ground truth's file of the same image number
        k = Path(sample.image).name.split("_")[1]
        gt = fmow_tree / next(e["input"] for e in mapping if e["output"].endswith(sequence))
        assert sample.metadata == str(gt / f"{gt.name}_{k}_rgb.json")
    labels = torch.cat([labels for _, labels in dm.test_dataloader()])
    assert labels.tolist() == [sample.label for sample in dm.test_set.samples]


def test_eval_batches_are_the_stored_image_resized_bilinearly(fmow_tree):
    dm = datamodule(fmow_tree, image_size=40)
    dm.setup("validate")
    image, label = dm.val_set[3]
    stored = dm.val_set.load(3).permute(1, 2, 0).numpy()
    expected = bilinear_reference(stored / 255.0, 40, 40) * 2 - 1
    np.testing.assert_allclose(image.permute(1, 2, 0).numpy(), expected, atol=1e-5)
    assert label == dm.val_set.samples[3].label


# --- cropped variant -------------------------------------------------------------------------------------------


def test_cropped_variant_cuts_each_own_box_with_the_official_margin(tmp_path):
    height, width = 200, 300
    pixels = smooth_image(height, width)
    # one box per band of the margin table, on both sides: ≥ 0.5, [0.4, 0.5), [0.3, 0.4), [0.2, 0.3), [0.1, 0.2), < 0.1
    large, small = [20, 30, 200, 120], [250, 180, 12, 10]
    bands = [[10, 20, 130, 90], [150, 100, 100, 70], [100, 50, 75, 50], [200, 20, 40, 30]]
    own = [large, *bands, small]
    boxes = [
        {"box": large, "category": "airport", "ID": 1},
        {"box": [10, 10, 2, 30], "category": "airport", "ID": 2},  # 2 px wide: skipped
        {"box": [40, 40, 50, 50], "category": "zoo", "ID": 3},  # another category
        {"box": [60, 60, 50, 50], "category": "airport", "ID": -1},  # unknown ID
        *({"box": box, "category": "airport", "ID": 4 + i} for i, box in enumerate(bands)),
        {"box": small, "category": "airport", "ID": 9},
    ]
    root = tmp_path / "fmow"
    for split in ("train", "val"):
        path = write_sample(root, split, "airport", pixels, boxes)
    dm = datamodule(root, variant="cropped")
    assert dm.max_short_side == 224
    dm.setup("fit")
    expected = [official_crop(box, height, width) for box in own]
    assert [official_margin(box[2] / width) for box in own] == [0.15, 0.2, 0.3, 0.5, 1.0, 2.0]
    assert [official_margin(box[3] / height) for box in own] == [0.15, 0.2, 0.3, 0.5, 1.0, 2.0]
    assert expected[0] == (21, 5, 159, 235)  # margin 0.15: 15 px left and right, 9 px above and below
    assert expected[-1] == (170, 238, 200, 274)  # margin 2 (under a tenth of each side), clipped at the bottom
    assert [tuple(sample.crop) for sample in dm.val_set.samples] == expected
    assert [sample.label for sample in dm.train_set.samples] == [0] * 6
    source = decoded(path)
    for index, (top, left, bottom, right) in enumerate(expected):
        # within the 224 px cap and the source's 200 px shorter side under 2 x 224: the crop as decoded
        assert np.array_equal(dm.val_set.load(index).permute(1, 2, 0).numpy(), source[top:bottom, left:right])
    image, label = dm.val_set[2]
    assert image.shape == (3, 32, 32) and label == 0


def test_cropped_decode_ratio_follows_the_official_metadata_sizes(tmp_path):
    # crop_fMoW.py copies the source's metadata before updating its size: the first crop's TFRecord decode ratio
    # comes from the source image (120 px > 4 x 20: 1/4), the second's from the first crop (35 px: 1/1).
    pixels = smooth_image(120, 160, seed=1)
    first, second = [5, 5, 20, 20], [10, 10, 100, 80]
    boxes = [{"box": box, "category": "zoo", "ID": i} for i, box in enumerate((first, second))]
    root = tmp_path / "fmow"
    for split in ("train", "val"):
        write_sample(root, split, "zoo", pixels, boxes)
    dm = datamodule(root, variant="cropped", max_short_side=20)
    dm.setup("validate")
    crops = [official_crop(box, 120, 160) for box in (first, second)]
    assert crops[0] == (0, 0, 35, 35)
    assert [sample.ratio_side for sample in dm.val_set.samples] == [120, 35]
    # first: decoded at 1/4 (40 x 30), its 35 x 35 window at ceil(35 / 4) = 9 px; under the cap
    assert tuple(dm.val_set.load(0).shape) == (3, 9, 9)
    # second: decoded whole, cut (92 x 114) and capped at 20 px: 20 x round(20 * 114 / 92) = 20 x 25
    top, left, bottom, right = crops[1]
    assert (bottom - top, right - left) == (92, 114)
    assert tuple(dm.val_set.load(1).shape) == (3, 20, round(20 * 114 / 92))
    dm = datamodule(root, variant="cropped", max_short_side=20, official_decode_ratio=False)
    dm.setup("validate")
    assert tuple(dm.val_set.load(0).shape) == (3, 20, 20)


# --- the shorter-side cap --------------------------------------------------------------------------------------


@pytest.fixture
def large_image_tree(tmp_path) -> Path:
    """One 300 x 400 train / val image of airport with an own box, a box of another category and an ID -1 box."""
    root = tmp_path / "fmow"
    boxes = [
        {"box": [30, 60, 150, 120], "category": "airport", "ID": 7},
        {"box": [0, 0, 400, 300], "category": "zoo", "ID": 8},
        {"box": [200, 10, 50, 50], "category": "airport", "ID": -1},
    ]
    for split in ("train", "val"):
        write_sample(root, split, "airport", smooth_image(300, 400, seed=2), boxes)
    return root


def test_default_caps_are_the_official_preparation(tmp_path):
    assert FMoWDataModule(tmp_path, image_size=448).max_short_side == 1000
    assert FMoWDataModule(tmp_path, image_size=896).max_short_side == 1000
    assert FMoWDataModule(tmp_path, image_size=224).max_short_side == 275
    assert FMoWDataModule(tmp_path, image_size=224, variant="cropped").max_short_side == 224
    assert FMoWDataModule(tmp_path, image_size=224, max_short_side=500).max_short_side == 500


def test_shorter_side_is_capped_bilinearly_with_tfs_rounding(large_image_tree):
    source = decoded(next(large_image_tree.glob("val/*/*/*.jpg")))
    dm = datamodule(large_image_tree, max_short_side=100, official_decode_ratio=False)
    dm.setup("validate")
    stored = dm.val_set.load(0)
    # the long side is round(100 * 400 / 300) = 133, not the ceil (134) the official script asks TF for
    assert tuple(stored.shape) == (3, 100, 133)
    difference = stored.permute(1, 2, 0).numpy().astype(int) - tf_stored(source, 100, 133).astype(int)
    assert np.abs(difference).max() <= 1 and (difference == 0).mean() > 0.99
    # with the official decode ratio: 300 px > 2 x 100, so the JPEG is decoded at half size first, then resized
    dm = datamodule(large_image_tree, max_short_side=100)
    dm.setup("validate")
    with Image.open(next(large_image_tree.glob("val/*/*/*.jpg"))) as image:
        image.draft("RGB", (200, 150))
        half = np.array(image.convert("RGB"))
    assert half.shape == (150, 200, 3)
    stored = dm.val_set.load(0)
    assert tuple(stored.shape) == (3, 100, 133)
    difference = stored.permute(1, 2, 0).numpy().astype(int) - tf_stored(half, 100, 133).astype(int)
    assert np.abs(difference).max() <= 1 and (difference == 0).mean() > 0.99
    # an image within the cap is the decoded file itself
    dm = datamodule(large_image_tree, max_short_side=300)
    dm.setup("validate")
    assert np.array_equal(dm.val_set.load(0).permute(1, 2, 0).numpy(), source)


def test_training_boxes_are_the_own_category_scaled_to_the_capped_image(large_image_tree):
    dm = datamodule(large_image_tree, max_short_side=100, official_decode_ratio=False)
    dm.setup("fit")
    calls = []

    def record(image, boxes):
        calls.append((tuple(image.shape), boxes.canvas_size, boxes.tolist()))
        return image.float(), boxes

    dm.train_set.transform = record
    dm.train_set[0]
    (shape, canvas, boxes) = calls[0]
    assert shape == (3, 100, 133) and canvas == (100, 133)
    # [30, 60, 150, 120] of 400 x 300 → fractions (0.075, 0.2, 0.45, 0.6) of the 133 x 100 stored image
    np.testing.assert_allclose(boxes, [[0.075 * 133, 20.0, 0.45 * 133, 60.0]], rtol=1e-5)


# --- layout errors ---------------------------------------------------------------------------------------------


def test_missing_dataset_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"dataset folder .*nowhere does not exist"):
        datamodule(tmp_path / "nowhere").setup("fit")


def test_missing_split_folder(fmow_tree):
    shutil.rmtree(fmow_tree / "val")
    with pytest.raises(FileNotFoundError, match=r"split folder .*val does not exist; expected .*<category>_<n>_<k>"):
        datamodule(fmow_tree).setup("fit")


def test_missing_ground_truth_mapping(fmow_tree):
    (fmow_tree / "test_gt_mapping.json").unlink()
    with pytest.raises(FileNotFoundError, match=r"test ground-truth mapping .*test_gt_mapping\.json does not exist"):
        datamodule(fmow_tree).setup("test")
    datamodule(fmow_tree).setup("fit")  # training needs no mapping
    elsewhere = fmow_tree.parent / "gt.json"
    elsewhere.write_text(json.dumps([{"input": "test_gt/zoo/zoo_0", "output": "test/0000001"}]))
    with pytest.warns(UserWarning, match=r"test folder\(s\) have no entry"):
        dm = datamodule(fmow_tree, test_gt_mapping=elsewhere)
        dm.setup("test")
    assert {sample.label for sample in dm.test_set.samples} == {61}


def test_malformed_ground_truth_mapping(fmow_tree):
    mapping = fmow_tree / "test_gt_mapping.json"
    mapping.write_text(json.dumps({"input": "test_gt/zoo/zoo_0"}))
    with pytest.raises(ValueError, match=r"holds a dict; expected a JSON list"):
        datamodule(fmow_tree).setup("test")
    mapping.write_text(json.dumps([{"input": "test_gt/castle/castle_0", "output": "test/0000001"}]))
    with pytest.raises(ValueError, match=r"category 'castle' is not an fMoW-rgb category"):
        datamodule(fmow_tree).setup("test")
    mapping.write_text(json.dumps([{"input": "test_gt/zoo/zoo_0", "output": "test/9999999"}]))
    with pytest.raises(FileNotFoundError, match=r"test folder .*9999999 does not exist.*maps it to test_gt/zoo/zoo_0"):
        datamodule(fmow_tree).setup("test")


def test_unknown_category_folder(fmow_tree):
    (fmow_tree / "train" / "castle").mkdir()
    with pytest.raises(ValueError, match=r"folder\(s\) \['castle'\], which are not fMoW-rgb categories"):
        datamodule(fmow_tree).setup("fit")


def test_image_without_metadata(fmow_tree):
    metadata = fmow_tree / "train" / "zoo" / "zoo_1" / "zoo_1_0_rgb.json"
    metadata.unlink()
    with pytest.raises(
        FileNotFoundError, match=rf"zoo_1_0_rgb\.jpg has no metadata file \(expected {re.escape(str(metadata))}"
    ):
        datamodule(fmow_tree).setup("fit")


def test_metadata_without_boxes(fmow_tree):
    metadata = fmow_tree / "train" / "airport" / "airport_0" / "airport_0_0_rgb.json"
    metadata.write_text(json.dumps({"img_height": 48, "img_width": 64}))
    message = rf"metadata file {re.escape(str(metadata))} has no 'bounding_boxes'; expected"
    dm = datamodule(fmow_tree)
    dm.setup("fit")  # the full variant reads a training image's metadata when it loads the image
    index = next(i for i, s in enumerate(dm.train_set.samples) if s.metadata == str(metadata))
    with pytest.raises(ValueError, match=message):
        dm.train_set[index]
    with pytest.raises(ValueError, match=message):
        datamodule(fmow_tree, variant="cropped").setup("fit")
    metadata.write_text(json.dumps({"bounding_boxes": [{"box": [1, 2, 3], "category": "airport"}]}))
    with pytest.raises(ValueError, match=r"has a malformed box .*'box': \[1, 2, 3\]"):
        datamodule(fmow_tree, variant="cropped").setup("fit")
    metadata.write_text("{not json")
    with pytest.raises(ValueError, match=r"cannot be read as JSON"):
        dm.train_set[index]


def test_cropped_test_split_needs_the_ground_truth_metadata(fmow_tree):
    shutil.rmtree(fmow_tree / "test_gt" / "zoo")
    with pytest.raises(FileNotFoundError, match=r"metadata file .*test_gt/zoo/zoo_0/zoo_0_0_rgb\.json does not exist"):
        datamodule(fmow_tree, variant="cropped").setup("test")
    datamodule(fmow_tree).setup("test")  # whole test images need only the mapping


def test_corrupt_image(fmow_tree):
    image = (
        fmow_tree
        / "val"
        / "impoverished_settlement"
        / "impoverished_settlement_1"
        / "impoverished_settlement_1_1_rgb.jpg"
    )
    image.write_bytes(b"not a jpeg at all")
    with pytest.raises(
        ValueError, match=rf"cannot decode image file {re.escape(str(image))}: .*corrupt or not an image"
    ):
        datamodule(fmow_tree).setup("fit")


def test_invalid_arguments(tmp_path):
    with pytest.raises(ValueError, match=r"variant must be one of 'full', 'cropped', got 'crop'"):
        FMoWDataModule(tmp_path, variant="crop")
    with pytest.raises(ValueError, match="image_size must be a positive integer"):
        FMoWDataModule(tmp_path, image_size=0)
    with pytest.raises(ValueError, match="max_short_side must be a positive integer"):
        FMoWDataModule(tmp_path, max_short_side=-5)


def test_fixture_writes_the_release_layout(fmow_tree):
    assert FMOW_CATEGORIES == ("airport", "impoverished_settlement", "zoo")
    assert len(list(fmow_tree.glob("train/*/*/*_rgb.jpg"))) == len(list(fmow_tree.glob("train/*/*/*_rgb.json"))) == 12
    assert len(list(fmow_tree.glob("test/*/*_rgb.jpg"))) == len(list(fmow_tree.glob("test_gt/*/*/*_rgb.json"))) == 12
    test_metadata = json.loads(next(fmow_tree.glob("test/*/*_rgb.json")).read_text())
    assert all("category" not in box for box in test_metadata["bounding_boxes"])
