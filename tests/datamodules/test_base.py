import re

import numpy as np
import pytest
from PIL import Image

from datamodules.base import check_label_values, lookup_label, read_label_png

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
