import json
import re

import numpy as np
import pytest
import torch
from PIL import Image
from pycocotools import mask as mask_api

from datamodules.pascal_context import CONTEXT_CLASSES, PascalContext60DataModule
from datamodules.store.pascal_context import (
    PUBLISHED_COUNTS,
    RAW_CONTEXT_IDS,
    check_converted,
    context_class_names,
    context_mask,
    convert_detail_annotations,
)

HEIGHT, WIDTH = 7, 9

# PASCAL Context's labels (the Detail API's category_id → name) of the 59 benchmark classes, from the 459-label list
# (1 accordion, 2 aeroplane, 3 air conditioner, ...), plus three classes outside the benchmark.
REAL_NAMES = {
    2: "aeroplane", 9: "bag", 18: "bed", 19: "bedclothes", 22: "bench", 23: "bicycle", 25: "bird", 31: "boat",
    33: "book", 34: "bottle", 44: "building", 45: "bus", 46: "cabinet", 59: "car", 65: "cat", 68: "ceiling",
    72: "chair", 80: "cloth", 85: "computer", 98: "cow", 104: "cup", 105: "curtain", 113: "dog", 115: "door",
    144: "fence", 158: "floor", 159: "flower", 162: "food", 187: "grass", 189: "ground", 207: "horse",
    220: "keyboard", 232: "light", 258: "motorbike", 259: "mountain", 260: "mouse", 284: "person", 295: "plate",
    296: "platform", 308: "pottedplant", 324: "road", 326: "rock", 347: "sheep", 349: "shelves", 354: "sidewalk",
    355: "sign", 360: "sky", 366: "snow", 368: "sofa", 397: "table", 415: "track", 416: "train", 420: "tree",
    424: "truck", 427: "tvmonitor", 440: "wall", 445: "water", 454: "window", 458: "wood",
    1: "accordion", 287: "picture", 431: "unknown",
}  # fmt: skip
# mmsegmentation's _mapping as written in tools/dataset_converters/pascal_context.py (unsorted; it sorts it).
MMSEG_MAPPING = [
    0, 2, 259, 260, 415, 324, 9, 258, 144, 18, 19, 22, 23, 397, 25, 284, 158, 159, 416, 33, 162, 420, 454, 295,
    296, 427, 44, 45, 46, 308, 59, 440, 445, 31, 232, 65, 354, 424, 68, 326, 72, 458, 34, 207, 80, 355, 85, 347,
    220, 349, 360, 98, 187, 104, 105, 366, 189, 368, 113, 115,
]  # fmt: skip


def box(top, bottom, left, right):
    """A HEIGHT x WIDTH binary mask, 1 on rows top..bottom and columns left..right (inclusive)."""
    binary = np.zeros((HEIGHT, WIDTH), dtype=np.uint8)
    binary[top : bottom + 1, left : right + 1] = 1
    return binary


def compressed_rle(binary):
    rle = mask_api.encode(np.asfortranarray(binary))
    return {"size": [HEIGHT, WIDTH], "counts": rle["counts"].decode("ascii")}


def uncompressed_rle(binary):
    """Run lengths of the column-major pixels, starting with a run of zeros (possibly empty)."""
    flat = binary.flatten(order="F").tolist()
    counts, current, run = [], 0, 0
    for pixel in flat:
        if pixel != current:
            counts.append(run)
            current, run = pixel, 0
        run += 1
    counts.append(run)
    return {"size": [HEIGHT, WIDTH], "counts": counts}


def annotation(annotation_id, image_id, category_id, segmentation):
    return {
        "id": annotation_id,
        "image_id": image_id,
        "category_id": category_id,
        "segmentation": segmentation,
        "parts": [],
        "iscrowd": 0,
        "area": 0,
        "bbox": [0, 0, 0, 0],
    }


def image_record(name, phase):
    return {
        "image_id": int(name.replace("_", "")),
        "file_name": f"{name}.jpg",
        "height": HEIGHT,
        "width": WIDTH,
        "phase": phase,
        "date_captured": "31-May-2015 17:46:52",
    }


def grid(text):
    """A label written by hand: one line per row, values separated by spaces."""
    return np.array([[int(value) for value in line.split()] for line in text.strip().splitlines()], dtype=np.uint8)


# What the converter must write, by hand (train ids: 11 building, 37 person, 47 sky, 59 wood, 1 aeroplane,
# 55 tvmonitor; accordion and picture are outside the 60 and become background 0).
EXPECTED = {
    # sky rows 0-2, then building rows 2-5 x cols 0-4 over it, then accordion rows 3-4 x cols 3-6 over that
    "2008_000001": grid(
        """
        47 47 47 47 47 47 47 47 47
        47 47 47 47 47 47 47 47 47
        11 11 11 11 11 47 47 47 47
        11 11 11  0  0  0  0  0  0
        11 11 11  0  0  0  0  0  0
        11 11 11 11 11  0  0  0  0
         0  0  0  0  0  0  0  0  0
        """
    ),
    # person rows 1-5 x cols 2-3 (uncompressed RLE), picture (6, 8) (the repeated id 22), then wood rows 4-6 over
    # both: neither the first content of id 22 (picture everywhere) nor its last place (over wood) shows
    "2008_000002": grid(
        """
         0  0  0  0  0  0  0  0  0
         0  0 37 37  0  0  0  0  0
         0  0 37 37  0  0  0  0  0
         0  0 37 37  0  0  0  0  0
        59 59 59 59 59 59 59 59 59
        59 59 59 59 59 59 59 59 59
        59 59 59 59 59 59 59 59 59
        """
    ),
    # aeroplane rows 0-1 x cols 0-1, tvmonitor rows 5-6 x cols 7-8
    "2009_000003": grid(
        """
         1  1  0  0  0  0  0  0  0
         1  1  0  0  0  0  0  0  0
         0  0  0  0  0  0  0  0  0
         0  0  0  0  0  0  0  0  0
         0  0  0  0  0  0  0  0  0
         0  0  0  0  0  0  0 55 55
         0  0  0  0  0  0  0 55 55
        """
    ),
}


def detail_json():
    """trainval_merged.json in the Detail structure: 2 train, 1 val and 1 test image (no JPEG), annotations of
    two images interleaved (painting order is the file's order), one uncompressed RLE, one repeated id."""
    train1, train2, val3, test4 = 2008000001, 2008000002, 2009000003, 2010000004
    annotations = [
        annotation(10, train1, 360, compressed_rle(box(0, 2, 0, 8))),  # sky
        annotation(20, train2, 284, uncompressed_rle(box(1, 5, 2, 3))),  # person
        annotation(11, train1, 44, compressed_rle(box(2, 5, 0, 4))),  # building over sky
        annotation(21, train2, 458, compressed_rle(box(4, 6, 0, 8))),  # wood over person
        annotation(12, train1, 1, compressed_rle(box(3, 4, 3, 6))),  # accordion (outside the 60) over building
        annotation(30, val3, 2, compressed_rle(box(0, 1, 0, 1))),  # aeroplane
        annotation(31, val3, 427, compressed_rle(box(5, 6, 7, 8))),  # tvmonitor
        annotation(40, test4, 360, compressed_rle(box(0, 6, 0, 8))),
        # a repeated id: the Detail index keeps its first place (under wood) and this content (picture on (6, 8))
        annotation(22, train2, 287, compressed_rle(box(6, 6, 8, 8))),
    ]
    annotations.insert(3, annotation(22, train2, 287, compressed_rle(box(0, 6, 0, 8))))  # replaced by the last 22
    categories = [
        {"category_id": raw, "name": name, "supercategory": "object", "parts": [], "onlysemantic": 0}
        for raw, name in sorted(REAL_NAMES.items())
    ]
    return {
        "info": {"description": "PASCAL in Detail (test fixture)"},
        "images": [
            image_record("2008_000001", "train"),
            image_record("2008_000002", "train"),
            image_record("2009_000003", "val"),
            image_record("2010_000004", "test"),
        ],
        "annos_segmentation": annotations,
        "categories": categories,
        "parts": [],
        "annos_occlusion": [],
        "annos_boundary": [],
        "annos_joints": [],
    }


def write_tree(tmp_path, data=None):
    """(json path, voc2010): the JSON and the JPEGs of the train and val images (not of the test one)."""
    data = detail_json() if data is None else data
    json_path = tmp_path / "trainval_merged.json"
    json_path.write_text(json.dumps(data))
    voc2010 = tmp_path / "root" / "VOCdevkit" / "VOC2010"
    (voc2010 / "JPEGImages").mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in EXPECTED:
        pixels = rng.integers(0, 256, (HEIGHT, WIDTH, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(voc2010 / "JPEGImages" / f"{name}.jpg")
    return json_path, voc2010


def label_dir(voc2010):
    return voc2010 / "SegmentationClassContext"


def list_file(voc2010, split):
    return voc2010 / "ImageSets" / "SegmentationContext" / f"{split}.txt"


def test_raw_ids_are_mmsegmentations_sorted_mapping_and_name_context_classes_in_order():
    assert list(RAW_CONTEXT_IDS) == sorted(MMSEG_MAPPING) and len(RAW_CONTEXT_IDS) == 60
    assert context_class_names(detail_json()["categories"]) == CONTEXT_CLASSES
    with pytest.raises(ValueError, match=r"lack the PASCAL Context ids \[458\]"):
        context_class_names([c for c in detail_json()["categories"] if c["category_id"] != 458])


def test_context_mask_paints_in_order_and_maps_to_train_ids():
    annotations = [
        {"category_id": 458, "segmentation": compressed_rle(box(0, 6, 0, 8))},  # wood everywhere
        {"category_id": 431, "segmentation": uncompressed_rle(box(0, 3, 0, 8))},  # "unknown": background
        {"category_id": 2, "segmentation": compressed_rle(box(1, 1, 1, 1))},  # aeroplane
        {"category_id": 5000, "segmentation": compressed_rle(box(6, 6, 8, 8))},  # beyond every Detail id
    ]
    expected = np.zeros((HEIGHT, WIDTH), dtype=np.uint8)
    expected[4:, :] = 59
    expected[1, 1] = 1
    expected[6, 8] = 0
    mask = context_mask(annotations, HEIGHT, WIDTH)
    assert mask.dtype == np.uint8 and mask.shape == (HEIGHT, WIDTH)
    np.testing.assert_array_equal(mask, expected)
    np.testing.assert_array_equal(context_mask([], HEIGHT, WIDTH), np.zeros((HEIGHT, WIDTH)))
    with pytest.raises(ValueError, match=r"RLE of size \[7, 9\] in an image of 8x9"):
        context_mask(annotations, HEIGHT + 1, WIDTH)
    with pytest.raises(ValueError, match="not an RLE"):
        context_mask([{"category_id": 2, "segmentation": [[0, 0, 4, 0, 4, 4]]}], HEIGHT, WIDTH)


def test_convert_writes_the_labels_and_lists(tmp_path):
    json_path, voc2010 = write_tree(tmp_path)
    assert convert_detail_annotations(json_path, voc2010, progress=False) == {"train": 2, "val": 1}
    for name, expected in EXPECTED.items():
        with Image.open(label_dir(voc2010) / f"{name}.png") as label:
            assert label.mode == "L" and label.format == "PNG"
            np.testing.assert_array_equal(np.asarray(label), expected, err_msg=name)
    assert sorted(path.name for path in label_dir(voc2010).iterdir()) == [f"{name}.png" for name in EXPECTED]
    assert list_file(voc2010, "train").read_text() == "2008_000001\n2008_000002\n"
    assert list_file(voc2010, "val").read_text() == "2009_000003\n"
    assert check_converted(voc2010, {"train": 2, "val": 1}, progress=False) == []

    # the DataModule reads the tree as it is
    datamodule = PascalContext60DataModule(voc2010.parent.parent, num_workers=0)
    datamodule.setup("validate")
    _, label = datamodule.datasets["val"][0]
    torch.testing.assert_close(label, torch.from_numpy(EXPECTED["2009_000003"].astype(np.int64)))


def file_states(voc2010):
    paths = [*label_dir(voc2010).iterdir(), list_file(voc2010, "train"), list_file(voc2010, "val")]
    return {path.name: (path.stat().st_ino, path.stat().st_mtime_ns) for path in paths}


def test_second_run_writes_nothing_and_a_resumed_run_only_the_missing(tmp_path):
    json_path, voc2010 = write_tree(tmp_path)
    convert_detail_annotations(json_path, voc2010, progress=False)
    before = file_states(voc2010)
    assert convert_detail_annotations(json_path, voc2010, progress=False) == {"train": 2, "val": 1}
    assert file_states(voc2010) == before

    # a run killed after one label: one missing, one cut short, a temporary file left behind
    (label_dir(voc2010) / "2008_000002.png").unlink()
    broken = label_dir(voc2010) / "2009_000003.png"
    broken.write_bytes(broken.read_bytes()[:20])
    (label_dir(voc2010) / ".2008_000002.png.abc123.tmp").write_bytes(b"partial")
    convert_detail_annotations(json_path, voc2010, progress=False)
    after = file_states(voc2010)
    assert after["2008_000001.png"] == before["2008_000001.png"]
    assert after["train.txt"] == before["train.txt"] and after["val.txt"] == before["val.txt"]
    assert after["2009_000003.png"] != before["2009_000003.png"]
    assert sorted(after) == sorted(before)  # the temporary file is gone
    for name, expected in EXPECTED.items():
        np.testing.assert_array_equal(np.asarray(Image.open(label_dir(voc2010) / f"{name}.png")), expected)


def test_missing_or_corrupt_json(tmp_path):
    _, voc2010 = write_tree(tmp_path)
    missing = tmp_path / "nowhere.json"
    with pytest.raises(FileNotFoundError, match=rf"{re.escape(str(missing))} not found.*trainval_merged\.json"):
        convert_detail_annotations(missing, voc2010, progress=False)
    corrupt = tmp_path / "corrupt.json"
    corrupt.write_text(json.dumps(detail_json())[:500])
    with pytest.raises(ValueError, match=rf"{re.escape(str(corrupt))} is not valid JSON"):
        convert_detail_annotations(corrupt, voc2010, progress=False)
    coco_like = tmp_path / "coco.json"
    coco_like.write_text(json.dumps({"images": [], "annotations": [], "categories": []}))
    with pytest.raises(ValueError, match=r"no 'annos_segmentation' field; not the Detail format"):
        convert_detail_annotations(coco_like, voc2010, progress=False)
    assert not label_dir(voc2010).exists()


def test_missing_jpeg_is_named_before_anything_is_written(tmp_path):
    json_path, voc2010 = write_tree(tmp_path)
    (voc2010 / "JPEGImages" / "2009_000003.jpg").unlink()
    with pytest.raises(FileNotFoundError, match=r"image 2009_000003 .* has no JPEG at .*JPEGImages/2009_000003\.jpg"):
        convert_detail_annotations(json_path, voc2010, progress=False)
    assert not label_dir(voc2010).exists()


def test_jpeg_of_another_size(tmp_path):
    json_path, voc2010 = write_tree(tmp_path)
    Image.new("RGB", (WIDTH + 1, HEIGHT)).save(voc2010 / "JPEGImages" / "2008_000002.jpg")
    with pytest.raises(ValueError, match=r"JPEG .*2008_000002\.jpg is 10x7 but .* gives 9x7"):
        convert_detail_annotations(json_path, voc2010, progress=False)


def test_category_id_outside_the_files_categories(tmp_path):
    data = detail_json()
    data["annos_segmentation"][1]["category_id"] = 999
    json_path, voc2010 = write_tree(tmp_path, data)
    with pytest.raises(ValueError, match=r"annotation 20 of image 2008_000002 has category id 999"):
        convert_detail_annotations(json_path, voc2010, progress=False)
    assert not label_dir(voc2010).exists()


def test_names_that_differ_from_context_classes_warn(tmp_path):
    data = detail_json()
    next(c for c in data["categories"] if c["category_id"] == 397)["name"] = "diningtable"
    json_path, voc2010 = write_tree(tmp_path, data)
    with pytest.warns(UserWarning, match=r"50: 'diningtable' != 'table'"):
        convert_detail_annotations(json_path, voc2010, progress=False)


def test_check_converted_reports_missing_files_counts_values_and_sizes(tmp_path):
    json_path, voc2010 = write_tree(tmp_path)
    convert_detail_annotations(json_path, voc2010, progress=False)
    problems = check_converted(voc2010, progress=False)  # the published counts
    assert problems == [
        f"count: {list_file(voc2010, 'train')} lists 2 images, expected {PUBLISHED_COUNTS['train']:,}",
        f"count: {list_file(voc2010, 'val')} lists 1 images, expected {PUBLISHED_COUNTS['val']:,}",
    ]
    assert PUBLISHED_COUNTS == {"train": 4996, "val": 5104}
    assert check_converted(voc2010, {}, progress=False) == []

    (label_dir(voc2010) / "2008_000001.png").unlink()
    Image.fromarray(np.full((HEIGHT, WIDTH), 60, dtype=np.uint8)).save(label_dir(voc2010) / "2008_000002.png")
    Image.fromarray(np.zeros((HEIGHT, WIDTH + 2), dtype=np.uint8)).save(label_dir(voc2010) / "2009_000003.png")
    problems = check_converted(voc2010, {"train": 2, "val": 2}, progress=False)
    assert len(problems) == 4, problems
    assert re.fullmatch(r"missing: .*SegmentationClassContext/2008_000001\.png \(listed in .*train\.txt\)", problems[0])
    assert re.fullmatch(r"values: .*2008_000002\.png holds \[60\] above 59", problems[1])
    assert re.fullmatch(r"count: .*val\.txt lists 1 images, expected 2", problems[2])
    assert re.fullmatch(r"size: .*2009_000003\.png is 11x7 but .*2009_000003\.jpg is 9x7", problems[3])

    list_file(voc2010, "val").unlink()
    list_file(voc2010, "train").write_text("2008_000002\n2008_000002\n")
    problems = check_converted(voc2010, {"train": 2}, progress=False)
    assert re.fullmatch(r"repeated: .*train\.txt lists \['2008_000002'\] more than once", problems[0])
    assert any(re.fullmatch(r"missing: list file .*val\.txt", problem) for problem in problems)
