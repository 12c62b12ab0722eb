import re

import numpy as np
import pytest
import torch
from PIL import Image

from datamodules.cityscapes import LABEL_TO_TRAIN_ID_TABLE, CityscapesDataModule


def test_official_label_to_train_id_table():
    assert LABEL_TO_TRAIN_ID_TABLE.shape == (256,) and LABEL_TO_TRAIN_ID_TABLE.dtype == np.uint8
    evaluated = {int(i): int(t) for i, t in enumerate(LABEL_TO_TRAIN_ID_TABLE) if t != 255}
    assert evaluated == {
        **{7: 0, 8: 1, 11: 2, 12: 3, 13: 4, 17: 5, 19: 6, 20: 7, 21: 8, 22: 9},
        **{23: 10, 24: 11, 25: 12, 26: 13, 27: 14, 28: 15, 31: 16, 32: 17, 33: 18},
    }


def test_fixture_splits_and_train_ids(cityscapes_tree):
    datamodule = CityscapesDataModule(cityscapes_tree, num_workers=0)
    datamodule.setup()
    assert {split: len(data) for split, data in datamodule.datasets.items()} == {"train": 3, "val": 2, "test": 2}
    assert datamodule.num_classes == len(datamodule.class_names) == len(datamodule.palette) == 19
    assert datamodule.class_names[13] == "car" and datamodule.palette[13] == (0, 0, 142)
    assert datamodule.palette[0] == (128, 64, 128) and datamodule.palette[-1] == (119, 11, 32)
    image, label = datamodule.datasets["val"][0]
    assert image.shape == (3, 40, 48) and label.shape == (40, 48)
    # car 26 → 13, unlabeled 0 → 255, license plate (-1, stored as 255) → 255, road 7 → 0, bicycle 33 → 18
    for row, train_id in enumerate((13, 255, 255, 0, 18)):
        assert (label[4 * row : 4 * row + 4] == train_id).all()
    assert set(label.unique().tolist()) <= set(range(19)) | {255}


def test_fixture_tree_loads_with_training_transforms(cityscapes_tree):
    datamodule = CityscapesDataModule(cityscapes_tree, crop_size=32, base_size=40, batch_size=2, num_workers=0)
    datamodule.setup("fit")
    images, labels = next(iter(datamodule.train_dataloader()))
    assert images.shape == (2, 3, 32, 32) and labels.shape == (2, 32, 32) and labels.dtype == torch.int64
    assert set(labels.unique().tolist()) <= set(range(19)) | {255}


def test_missing_gtfine_split(cityscapes_tree):
    for path in sorted((cityscapes_tree / "gtFine" / "val").rglob("*"), reverse=True):
        path.rmdir() if path.is_dir() else path.unlink()
    (cityscapes_tree / "gtFine" / "val").rmdir()
    with pytest.raises(FileNotFoundError, match=r"gtFine label folder of split 'val' not found at .*gtFine/val\."):
        CityscapesDataModule(cityscapes_tree, num_workers=0).setup("validate")


def test_image_without_label(cityscapes_tree):
    (cityscapes_tree / "gtFine" / "train" / "bochum" / "bochum_000000_000002_gtFine_labelIds.png").unlink()
    with pytest.raises(
        FileNotFoundError,
        match=r"bochum_000000_000002_leftImg8bit\.png has no label file \(expected .*gtFine/train/bochum/"
        r"bochum_000000_000002_gtFine_labelIds\.png\)",
    ):
        CityscapesDataModule(cityscapes_tree, num_workers=0).setup("fit")


def frankfurt_label(cityscapes_tree):
    return cityscapes_tree / "gtFine" / "val" / "frankfurt" / "frankfurt_000000_000000_gtFine_labelIds.png"


def test_16_bit_label_ids_read_like_8_bit(cityscapes_tree, save_16_bit):
    datamodule = CityscapesDataModule(cityscapes_tree, num_workers=0)
    datamodule.setup("validate")
    _, label_8_bit = datamodule.datasets["val"][0]
    path = frankfurt_label(cityscapes_tree)
    save_16_bit(path, np.array(Image.open(path)))
    _, label_16_bit = datamodule.datasets["val"][0]
    assert label_16_bit.dtype == torch.int64
    torch.testing.assert_close(label_16_bit, label_8_bit, rtol=0, atol=0)
    for row, train_id in enumerate((13, 255, 255, 0, 18)):
        assert (label_16_bit[4 * row : 4 * row + 4] == train_id).all()


def test_label_id_past_the_table_is_an_error(cityscapes_tree):
    path = frankfurt_label(cityscapes_tree)
    raw = np.array(Image.open(path)).astype(np.uint16)
    raw[5, 5], raw[6, 6], raw[7, 7] = 1000, 256, 1000
    Image.fromarray(raw).save(path)
    datamodule = CityscapesDataModule(cityscapes_tree, num_workers=0)
    datamodule.setup("validate")
    with pytest.raises(
        ValueError,
        match=re.escape(f"label file {path} contains values [256, 1000]; expected raw label ids 0..255.") + "$",
    ):
        datamodule.datasets["val"][0]
