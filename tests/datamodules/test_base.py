import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy.io import savemat

from datamodules import base
from datamodules.base import check_label_values, lookup_label, read_label_png
from datamodules.camvid import CamVidDataModule
from datamodules.coco_stuff import CocoStuff10kDataModule

# Every 16-bit magnitude that an 8-bit cast would get wrong: 256 → 0, 2816 → 0, 65535 → 255.
WIDE_VALUES = np.array([[0, 11, 255, 256], [2816, 4097, 65535, 7]])


@pytest.mark.parametrize(
    ("dtype", "suffix", "mode"),
    [
        ("<u2", ".png", "I;16"),  # the 16-bit greyscale PNG
        (">u2", ".tif", "I;16B"),  # big-endian 16-bit, which Pillow keeps in its own mode
        ("<i4", ".tif", "I"),  # 32-bit integer greyscale
    ],
)
def test_wide_label_values_are_read_as_stored(tmp_path, dtype, suffix, mode):
    path = tmp_path / f"label{suffix}"
    Image.fromarray(WIDE_VALUES.astype(dtype)).save(path)
    assert Image.open(path).mode == mode
    label = read_label_png(path)
    assert label.dtype.isnative and label.dtype.itemsize >= 2
    np.testing.assert_array_equal(label.astype(np.int64), WIDE_VALUES)


def test_8_bit_label_stays_uint8(tmp_path):
    path = tmp_path / "label.png"
    Image.fromarray(np.array([[0, 11], [255, 7]], dtype=np.uint8)).save(path)
    label = read_label_png(path)
    assert label.dtype == np.uint8 and label.tolist() == [[0, 11], [255, 7]]


def test_lookup_label_maps_any_integer_dtype(tmp_path):
    table = np.array([255, 0, 1, 2], dtype=np.uint8)
    raw = np.array([[0, 1], [2, 3]])
    for dtype in (np.uint8, np.uint16, np.int16, np.int32):
        mapped = lookup_label(table, raw.astype(dtype), tmp_path / "label.png")
        assert mapped.dtype == np.uint8 and mapped.tolist() == [[255, 0], [1, 2]]


def test_lookup_label_names_the_file_and_the_values_without_an_entry(tmp_path):
    path = tmp_path / "label.png"
    raw = np.array([[0, 3, -1], [7, 4, 7]], dtype=np.int32)
    with pytest.raises(
        ValueError, match=re.escape(f"label file {path} contains values [-1, 4, 7]; expected raw label ids 0..3.") + "$"
    ):
        lookup_label(np.arange(4, dtype=np.uint8), raw, path)


def test_lookup_label_explains_ids_scaled_by_256(tmp_path):
    path = tmp_path / "label.png"
    raw = (np.arange(12, dtype=np.uint16) * 256).reshape(3, 4)
    expected = (
        f"label file {path} contains values [256, 512, 768, 1024, 1280, 1536, 1792, 2048, 2304, ..., 2816] "
        "(11 distinct values); expected raw label ids 0..255. They are all multiples of 256: a 16-bit label must "
        "hold the class ids themselves, not the ids scaled by 256."
    )
    with pytest.raises(ValueError, match=re.escape(expected) + "$"):
        lookup_label(np.arange(256, dtype=np.uint8), raw, path)


def test_check_label_values_reports_values_as_they_are(tmp_path):
    path = tmp_path / "label.png"
    check_label_values(np.array([[0, 3], [255, 2]], dtype=np.uint8), 4, path)
    # int16 -1 and 300 would read 255 and 44 in uint8, and -1 is below every class id
    label = np.array([[0, -1], [300, 255], [3, 300]], dtype=np.int16)
    with pytest.raises(
        ValueError,
        match=re.escape(
            f"label file {path} contains values [-1, 300]; expected class ids 0..3 or 255 (ignored) after "
            "conversion to train ids."
        )
        + "$",
    ):
        check_label_values(label, 4, path)


class CountOpens:
    """Wraps ``PIL.Image.open`` as ``datamodules.base`` calls it and records the files it opens."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.paths: list[str] = []
        self.open = base.Image.open
        monkeypatch.setattr(base.Image, "open", self)

    def __call__(self, path, *args, **kwargs):
        self.paths.append(Path(path).name)
        return self.open(path, *args, **kwargs)


def test_setup_names_a_corrupt_image_and_a_label_of_another_size_before_any_sample_is_loaded(camvid_tree):
    (camvid_tree / "train" / "0001TP_train001.jpg").write_bytes(b"\x00garbage, no image header")
    with pytest.raises(ValueError, match=r"cannot decode image file .*train/0001TP_train001\.jpg: .* not an image"):
        CamVidDataModule(camvid_tree, num_workers=0).setup("fit")
    Image.fromarray(np.zeros((40, 48, 3), dtype=np.uint8)).save(camvid_tree / "train" / "0001TP_train001.jpg")
    label = camvid_tree / "trainannot" / "0001TP_train002.png"
    Image.fromarray(np.zeros((40, 50), dtype=np.uint8)).save(label)
    image = camvid_tree / "train" / "0001TP_train002.jpg"
    expected = (
        f"image {image} is 48x40 (WxH) but its label {label} is 50x40: an image and its label must have the same size."
    )
    with pytest.raises(ValueError, match=re.escape(expected) + "$"):
        CamVidDataModule(camvid_tree, num_workers=0).setup("fit")


def test_a_second_setup_reads_the_sizes_from_the_cache_and_rereads_a_changed_file(camvid_tree, monkeypatch, tmp_path):
    monkeypatch.setenv(base.CACHE_ENV, str(tmp_path / "cache"))
    opens = CountOpens(monkeypatch)
    CamVidDataModule(camvid_tree, num_workers=0).setup("fit")
    assert len(opens.paths) == 2 * (3 + 2), "every train and val image and label, once"
    (cache_file,) = (tmp_path / "cache" / "file-sizes").glob("*.json")
    assert json.loads(cache_file.read_text())["root"] == str(camvid_tree.resolve())
    opens.paths.clear()
    CamVidDataModule(camvid_tree, num_workers=0).setup("fit")
    assert opens.paths == []
    Image.fromarray(np.zeros((30, 48), dtype=np.uint8)).save(camvid_tree / "valannot" / "0001TP_val001.png")
    with pytest.raises(ValueError, match=r"0001TP_val001\.jpg is 48x40 \(WxH\) but its label .* is 48x30"):
        CamVidDataModule(camvid_tree, num_workers=0).setup("fit")
    assert opens.paths == ["0001TP_val001.png"]


def test_a_corrupt_cache_is_ignored_and_an_unwritable_one_is_a_warning(camvid_tree, monkeypatch, tmp_path):
    monkeypatch.setenv(base.CACHE_ENV, str(tmp_path / "cache"))
    CamVidDataModule(camvid_tree, num_workers=0).setup("validate")
    (cache_file,) = (tmp_path / "cache" / "file-sizes").glob("*.json")
    cache_file.write_text('{"version": 1, "root": "cut sho')
    opens = CountOpens(monkeypatch)
    CamVidDataModule(camvid_tree, num_workers=0).setup("validate")
    assert len(opens.paths) == 4 and json.loads(cache_file.read_text())["files"]
    blocked = tmp_path / "a file, not a folder"
    blocked.write_text("")
    monkeypatch.setenv(base.CACHE_ENV, str(blocked))
    with pytest.warns(UserWarning, match=r"cannot write the file check cache .*; the next setup reads every header"):
        CamVidDataModule(camvid_tree, num_workers=0).setup("validate")


def test_a_file_cut_short_after_its_header_is_found_when_decoded(camvid_tree):
    path = camvid_tree / "val" / "0001TP_val000.jpg"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])  # keeps the header (~630 of ~1,800 bytes), cuts pixels
    datamodule = CamVidDataModule(camvid_tree, num_workers=0)
    datamodule.setup("validate")  # the header is whole
    with pytest.raises(ValueError, match=r"cannot decode image file .*0001TP_val000\.jpg"):
        datamodule.datasets["val"][0]


def test_a_mat_label_is_checked_by_reading_it(coco_stuff_tree):
    path = coco_stuff_tree / "annotations" / "COCO_test2014_000000000001.mat"
    savemat(path, {"S": np.zeros((40, 47), dtype=np.uint16)})
    with pytest.raises(ValueError, match=r"COCO_test2014_000000000001\.jpg is 48x40 \(WxH\) but its label .* is 47x40"):
        CocoStuff10kDataModule(coco_stuff_tree, num_workers=0).setup("validate")
    path.write_bytes(b"not a MATLAB file")
    with pytest.raises(ValueError, match=r"cannot read MATLAB label file .*COCO_test2014_000000000001\.mat"):
        CocoStuff10kDataModule(coco_stuff_tree, num_workers=0).setup("validate")


def test_check_layout_opens_no_image_and_names_a_missing_folder(camvid_tree, monkeypatch, tmp_path):
    def refuse(*args, **kwargs):
        raise AssertionError("check_layout opened a file")

    monkeypatch.setattr(base.Image, "open", refuse)
    samples = CamVidDataModule(camvid_tree, num_workers=0).check_layout("fit")
    assert {key: len(pairs) for key, pairs in samples.items()} == {"train": 3, "val": 2}
    missing = tmp_path / "nowhere"
    with pytest.raises(
        FileNotFoundError, match=rf"CamVid: the dataset folder not found at {re.escape(str(missing))}\."
    ):
        CamVidDataModule(missing, num_workers=0).check_layout("fit")
