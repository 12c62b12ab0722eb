import re

import numpy as np
import pytest
import torch
from scipy.io import loadmat, savemat

from datamodules.coco_stuff import ID_TO_TRAIN_ID_TABLE, CocoStuff10kDataModule


def test_id_table_skips_the_11_unused_thing_ids():
    used = [label_id for label_id in range(183) if ID_TO_TRAIN_ID_TABLE[label_id] != 255]
    assert len(used) == 171 and ID_TO_TRAIN_ID_TABLE[used].tolist() == list(range(171))
    assert set(range(1, 183)) - set(used) == {12, 26, 29, 30, 45, 66, 68, 69, 71, 83, 91}
    assert ID_TO_TRAIN_ID_TABLE[[0, 1, 11, 12, 13, 91, 92, 182]].tolist() == [255, 0, 10, 255, 11, 255, 80, 170]


def test_fixture_splits_classes_and_train_ids(coco_stuff_tree):
    datamodule = CocoStuff10kDataModule(coco_stuff_tree, num_workers=0)
    datamodule.setup()
    assert {split: len(data) for split, data in datamodule.datasets.items()} == {"train": 3, "val": 2, "test": 2}
    assert datamodule.num_classes == len(datamodule.class_names) == len(datamodule.palette) == 171
    assert len(set(datamodule.palette)) == 171
    names = datamodule.class_names
    assert (names[0], names[11], names[79], names[80], names[170]) == (
        "person",
        "stop sign",
        "toothbrush",
        "banner",
        "wood",
    )
    image, label = datamodule.datasets["val"][0]
    assert image.shape == (3, 40, 48) and label.shape == (40, 48) and label.dtype == torch.int64
    # person 1 → 0, street sign 12 (unused) → 255, stop sign 13 → 11, wood 182 → 170, unlabelled 0 → 255
    for row, train_id in enumerate((0, 255, 11, 170, 255)):
        assert (label[4 * row : 4 * row + 4] == train_id).all()


def test_fixture_tree_loads_with_training_transforms(coco_stuff_tree):
    datamodule = CocoStuff10kDataModule(coco_stuff_tree, crop_size=32, base_size=40, batch_size=2, num_workers=0)
    datamodule.setup("fit")
    images, labels = next(iter(datamodule.train_dataloader()))
    assert images.shape == (2, 3, 32, 32) and labels.shape == (2, 32, 32)
    assert set(labels.unique().tolist()) <= set(range(171)) | {255}


def test_missing_list_file(coco_stuff_tree):
    (coco_stuff_tree / "imageLists" / "test.txt").unlink()
    with pytest.raises(
        FileNotFoundError, match=r"list file of split 'test' not found at .*imageLists/test\.txt.*cocostuff-10k-v1\.1"
    ):
        CocoStuff10kDataModule(coco_stuff_tree, num_workers=0).setup("test")


def test_image_without_annotation(coco_stuff_tree):
    (coco_stuff_tree / "annotations" / "COCO_train2014_000000000001.mat").unlink()
    with pytest.raises(FileNotFoundError, match=r"000000000001\.jpg has no label file \(expected .*annotations/"):
        CocoStuff10kDataModule(coco_stuff_tree, num_workers=0).setup("fit")


def test_id_out_of_range(coco_stuff_tree):
    path = coco_stuff_tree / "annotations" / "COCO_test2014_000000000000.mat"
    savemat(path, {"S": np.full((40, 48), 183, dtype=np.uint16)})
    with pytest.raises(
        ValueError, match=re.escape(f"label file {path} contains values [183]; expected raw label ids 0..182.") + "$"
    ):
        CocoStuff10kDataModule(coco_stuff_tree, num_workers=0).read_label(path)


def test_negative_and_scaled_ids_are_errors(coco_stuff_tree):
    path = coco_stuff_tree / "annotations" / "COCO_test2014_000000000000.mat"
    label = np.ones((40, 48), dtype=np.int16)
    label[0, 0], label[1, 1] = -1, 300
    savemat(path, {"S": label})
    datamodule = CocoStuff10kDataModule(coco_stuff_tree, num_workers=0)
    with pytest.raises(
        ValueError,
        match=re.escape(f"label file {path} contains values [-1, 300]; expected raw label ids 0..182.") + "$",
    ):
        datamodule.read_label(path)
    # person (1) and wood (182) scaled by 256
    savemat(path, {"S": np.repeat(np.array([[1], [182]], dtype=np.uint16) * 256, 20, axis=0).repeat(48, axis=1)})
    with pytest.raises(
        ValueError, match=re.escape(f"label file {path} contains values [256, 46592]; expected raw label ids 0..182. ")
    ):
        datamodule.read_label(path)


def test_8_bit_annotation_reads_like_16_bit(coco_stuff_tree):
    datamodule = CocoStuff10kDataModule(coco_stuff_tree, num_workers=0)
    datamodule.setup("test")
    _, label_16_bit = datamodule.datasets["test"][0]
    path = datamodule.datasets["test"].samples[0][1]
    raw = loadmat(path)["S"]
    assert raw.dtype == np.uint16
    savemat(path, {"S": raw.astype(np.uint8)})
    _, label_8_bit = datamodule.datasets["test"][0]
    torch.testing.assert_close(label_8_bit, label_16_bit, rtol=0, atol=0)
    torch.testing.assert_close(
        label_8_bit, torch.from_numpy(ID_TO_TRAIN_ID_TABLE[raw].astype(np.int64)), rtol=0, atol=0
    )
    for row, train_id in enumerate((0, 255, 11, 170, 255)):
        assert (label_8_bit[4 * row : 4 * row + 4] == train_id).all()
