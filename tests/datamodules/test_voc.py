import numpy as np
import pytest
import torch
from PIL import Image
from scipy.io import savemat

from datamodules.voc import VOCAugDataModule, train_aug_ids


def test_train_aug_is_sbd_train_and_val_and_voc_train_minus_voc_val():
    ids = train_aug_ids(sbd_train=["a", "b", "v1"], sbd_val=["c", "a"], voc_train=["b", "d"], voc_val=["v1", "v2", "c"])
    assert ids == ["a", "b", "d"]


def test_fixture_splits_classes_and_label_sources(voc_tree):
    datamodule = VOCAugDataModule(voc_tree, num_workers=0)
    datamodule.setup()
    assert {split: len(data) for split, data in datamodule.datasets.items()} == {"train": 5, "val": 2, "test": 2}
    assert datamodule.num_classes == len(datamodule.class_names) == len(datamodule.palette) == 21
    assert datamodule.class_names[0] == "background" and datamodule.class_names[-1] == "tvmonitor"
    assert datamodule.palette[:3] == ((0, 0, 0), (128, 0, 0), (0, 128, 0))
    train = datamodule.datasets["train"]
    samples = {image.stem: (image, label) for image, label in train.samples}
    assert sorted(samples) == ["2007_000032", "2007_000039", "2008_000001", "2008_000003", "2008_000004"]
    # an id with a VOC PNG reads the PNG (with its 255 border), even when SBD has a .mat for it
    image, label = samples["2007_000032"]
    assert image.parts[-2:] == ("JPEGImages", "2007_000032.jpg") and label.suffix == ".png"
    assert Image.open(label).mode == "P"
    np.testing.assert_array_equal(datamodule.read_label(label), np.array(Image.open(label)))
    assert (datamodule.read_label(label)[:4] == 255).all()
    # an SBD-only id reads its .mat label; its image comes from VOC when there, else from SBD's img/
    assert samples["2008_000003"][0].parts[-2:] == ("JPEGImages", "2008_000003.jpg")
    image, label = samples["2008_000004"]
    assert image.parts[-2:] == ("img", "2008_000004.jpg") and label.parts[-2:] == ("cls", "2008_000004.mat")
    _, train_ids = train.load(train.samples.index((image, label)))
    assert train_ids.dtype == np.uint8 and train_ids.shape == (40, 48)
    assert (train_ids[:20] == 7).all() and (train_ids[20:] == 15).all()


def test_fixture_tree_loads_with_training_transforms(voc_tree):
    datamodule = VOCAugDataModule(voc_tree, crop_size=32, base_size=40, batch_size=2, num_workers=0)
    datamodule.setup("fit")
    images, labels = next(iter(datamodule.train_dataloader()))
    assert images.shape == (2, 3, 32, 32) and images.dtype == torch.float32
    assert labels.shape == (2, 32, 32) and set(labels.unique().tolist()) <= set(range(21)) | {255}
    image, label = datamodule.datasets["val"][0]
    assert image.shape == (3, 40, 48) and label.shape == (40, 48) and label.dtype == torch.int64
    raw = np.array(Image.open(datamodule.datasets["val"].samples[0][1]))
    torch.testing.assert_close(label, torch.from_numpy(raw.astype(np.int64)))


def test_label_one_past_the_last_class_is_an_error(voc_tree):
    # 21 classes: 20 (tvmonitor) and 255 (void) are labels, 21 is the first value that is not.
    path = voc_tree / "VOCdevkit" / "VOC2012" / "SegmentationClass" / "2007_000033.png"
    label = np.array(Image.open(path))
    label[10, 10], label[11, 11] = 20, 21
    Image.fromarray(label).save(path)
    datamodule = VOCAugDataModule(voc_tree, num_workers=0)
    datamodule.setup("validate")
    val = datamodule.datasets["val"]
    index = [label_path.name for _, label_path in val.samples].index("2007_000033.png")
    with pytest.raises(ValueError, match=r"2007_000033\.png contains values \[21\] outside 0\.\.20 and 255"):
        val[index]


def test_val_needs_no_sbd(voc_tree):
    for path in sorted((voc_tree / "benchmark_RELEASE").rglob("*"), reverse=True):
        path.rmdir() if path.is_dir() else path.unlink()
    datamodule = VOCAugDataModule(voc_tree, num_workers=0)
    datamodule.setup("validate")
    assert len(datamodule.datasets["val"]) == 2
    with pytest.raises(FileNotFoundError, match=r"the SBD dataset folder not found at .*benchmark_RELEASE/dataset"):
        datamodule.setup("fit")


def test_missing_list_files(voc_tree):
    (voc_tree / "benchmark_RELEASE" / "dataset" / "val.txt").unlink()
    with pytest.raises(FileNotFoundError, match=r"SBD list file of split 'val' not found at .*dataset/val\.txt"):
        VOCAugDataModule(voc_tree, num_workers=0).setup("fit")
    (voc_tree / "VOCdevkit" / "VOC2012" / "ImageSets" / "Segmentation" / "val.txt").unlink()
    with pytest.raises(
        FileNotFoundError, match=r"VOC list file of split 'val' not found at .*ImageSets/Segmentation/val\.txt"
    ):
        VOCAugDataModule(voc_tree, num_workers=0).setup("validate")


def test_id_without_label(voc_tree):
    (voc_tree / "benchmark_RELEASE" / "dataset" / "cls" / "2008_000003.mat").unlink()
    with pytest.raises(
        FileNotFoundError, match=r"2008_000003\.jpg has no label file \(expected .*2008_000003\.png or .*\.mat\)"
    ):
        VOCAugDataModule(voc_tree, num_workers=0).setup("fit")


def test_mat_without_gtcls(voc_tree):
    path = voc_tree / "benchmark_RELEASE" / "dataset" / "cls" / "2008_000004.mat"
    savemat(path, {"Segmentation": np.zeros((40, 48), dtype=np.uint8)})
    with pytest.raises(ValueError, match=r"2008_000004\.mat has no GTcls\.Segmentation field"):
        VOCAugDataModule(voc_tree, num_workers=0).read_label(path)
