import re

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
    with pytest.raises(
        ValueError, match=r"2007_000033\.png contains values \[21\]; expected class ids 0\.\.20 or 255 \(ignored\)"
    ):
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


def sbd_only_sample(voc_tree):
    """The train_aug dataset and the index of 2008_000004, whose label is SBD's .mat."""
    datamodule = VOCAugDataModule(voc_tree, num_workers=0)
    datamodule.setup("fit")
    train = datamodule.datasets["train"]
    return train, [image.stem for image, _ in train.samples].index("2008_000004")


def sbd_only_mat(voc_tree):
    return voc_tree / "benchmark_RELEASE" / "dataset" / "cls" / "2008_000004.mat"


# An SBD label: bird (3) above, person (15) below; and the same with a void (255) stripe on top.
SBD_LABEL = np.repeat(np.array([[3], [15]]), 20, axis=0).repeat(48, axis=1)
SBD_LABEL_WITH_VOID = np.concatenate([np.full((4, 48), 255), SBD_LABEL[4:]])


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.int32])
def test_sbd_mat_of_any_integer_type_reads_its_class_ids(voc_tree, dtype):
    savemat(sbd_only_mat(voc_tree), {"GTcls": {"Segmentation": SBD_LABEL_WITH_VOID.astype(dtype)}})
    train, index = sbd_only_sample(voc_tree)
    assert train.read_label(sbd_only_mat(voc_tree)).dtype == dtype
    train.transform = None  # no random scale and crop: every pixel is compared
    _, label = train[index]
    assert label.dtype == torch.int64
    torch.testing.assert_close(label, torch.from_numpy(SBD_LABEL_WITH_VOID.astype(np.int64)), rtol=0, atol=0)


def test_sbd_mat_scaled_by_256_is_an_error(voc_tree):
    # 3 · 256 and 15 · 256: a uint8 cast would read both as 0 (background)
    path = sbd_only_mat(voc_tree)
    savemat(path, {"GTcls": {"Segmentation": SBD_LABEL.astype(np.uint16) * 256}})
    train, index = sbd_only_sample(voc_tree)
    expected = (
        f"label file {path} contains values [768, 3840]; expected class ids 0..20 or 255 (ignored) after "
        "conversion to train ids. They are all multiples of 256"
    )
    with pytest.raises(ValueError, match=re.escape(expected)):
        train[index]


def test_sbd_mat_of_floats_is_refused(voc_tree):
    path = sbd_only_mat(voc_tree)
    savemat(path, {"GTcls": {"Segmentation": SBD_LABEL + 0.5}})
    with pytest.raises(
        ValueError,
        match=re.escape(
            f"label file {path}: field GTcls.Segmentation is float64 (40, 48), expected a 2-D integer map."
        ),
    ):
        VOCAugDataModule(voc_tree, num_workers=0).read_label(path)


def test_16_bit_voc_png_reads_like_8_bit(voc_tree, save_16_bit):
    datamodule = VOCAugDataModule(voc_tree, num_workers=0)
    datamodule.setup("validate")
    val = datamodule.datasets["val"]
    path = val.samples[0][1]
    raw = np.array(Image.open(path)).astype(np.uint16)
    assert (raw[:4] == 255).all()
    save_16_bit(path, raw)
    _, label = val[0]
    torch.testing.assert_close(label, torch.from_numpy(raw.astype(np.int64)), rtol=0, atol=0)
    raw[5, 5] = 2 * 256 + 3  # 3 (bird) in uint8
    Image.fromarray(raw).save(path)
    with pytest.raises(ValueError, match=re.escape(f"label file {path} contains values [515]; expected class ids")):
        val[0]
