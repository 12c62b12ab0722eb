import re

import numpy as np
import pytest
import torch
from PIL import Image

from datamodules.pascal_context import PascalContext59DataModule, PascalContext60DataModule


def test_60_classes_keep_background_as_class_0(context_tree):
    datamodule = PascalContext60DataModule(context_tree, num_workers=0)
    datamodule.setup()
    assert {split: len(data) for split, data in datamodule.datasets.items()} == {"train": 3, "val": 2, "test": 2}
    assert datamodule.num_classes == len(datamodule.class_names) == len(datamodule.palette) == 60
    assert datamodule.class_names[:3] == ("background", "aeroplane", "bag") and datamodule.class_names[-1] == "wood"
    _, label = datamodule.datasets["val"][1]
    raw = np.array(Image.open(datamodule.datasets["val"].samples[1][1]))
    torch.testing.assert_close(label, torch.from_numpy(raw.astype(np.int64)))
    assert (label[0:4] == 0).all() and (label[4:8] == 5).all() and (label[8:12] == 59).all()


def test_59_classes_ignore_background_and_shift_the_rest(context_tree):
    datamodule = PascalContext59DataModule(context_tree, crop_size=32, base_size=40, batch_size=2, num_workers=0)
    datamodule.setup("fit")
    assert datamodule.num_classes == len(datamodule.class_names) == len(datamodule.palette) == 59
    assert datamodule.class_names[0] == "aeroplane" and datamodule.class_names[-1] == "wood"
    assert datamodule.palette == PascalContext60DataModule.palette[1:]
    _, label = datamodule.datasets["val"][0]
    # background 0 → 255, 5 → 4, 59 → 58, every class k → k − 1
    assert (label[0:4] == 255).all() and (label[4:8] == 4).all() and (label[8:12] == 58).all()
    raw = np.array(Image.open(datamodule.datasets["val"].samples[0][1])).astype(np.int64)
    torch.testing.assert_close(label, torch.from_numpy(np.where(raw == 0, 255, raw - 1)))
    images, labels = next(iter(datamodule.train_dataloader()))
    assert images.shape == (2, 3, 32, 32) and labels.shape == (2, 32, 32)
    assert set(labels.unique().tolist()) <= set(range(59)) | {255}


def test_missing_converted_labels(context_tree):
    labels = context_tree / "VOCdevkit" / "VOC2010" / "SegmentationClassContext"
    for path in labels.iterdir():
        path.unlink()
    labels.rmdir()
    with pytest.raises(
        FileNotFoundError,
        match=r"converted Context label folder not found at .*VOC2010/SegmentationClassContext.*data prepare "
        r"pascal_context",
    ):
        PascalContext59DataModule(context_tree, num_workers=0).setup()


def test_missing_split_file(context_tree):
    (context_tree / "VOCdevkit" / "VOC2010" / "ImageSets" / "SegmentationContext" / "val.txt").unlink()
    with pytest.raises(
        FileNotFoundError, match=r"list file of split 'val' not found at .*ImageSets/SegmentationContext/val\.txt"
    ):
        PascalContext60DataModule(context_tree, num_workers=0).setup("validate")


def test_listed_image_missing(context_tree):
    (context_tree / "VOCdevkit" / "VOC2010" / "JPEGImages" / "2008_train001.jpg").unlink()
    with pytest.raises(FileNotFoundError, match=r"image .*2008_train001\.jpg listed in .*train\.txt does not exist"):
        PascalContext60DataModule(context_tree, num_workers=0).setup("fit")


def val_label(context_tree):
    return context_tree / "VOCdevkit" / "VOC2010" / "SegmentationClassContext" / "2008_val000.png"


@pytest.mark.parametrize("datamodule_class", [PascalContext60DataModule, PascalContext59DataModule])
def test_16_bit_label_reads_like_8_bit(context_tree, datamodule_class, save_16_bit):
    datamodule = datamodule_class(context_tree, num_workers=0)
    datamodule.setup("validate")
    _, label_8_bit = datamodule.datasets["val"][0]
    path = val_label(context_tree)
    raw = np.array(Image.open(path))
    save_16_bit(path, raw)
    _, label_16_bit = datamodule.datasets["val"][0]
    assert label_16_bit.dtype == torch.int64
    torch.testing.assert_close(label_16_bit, label_8_bit, rtol=0, atol=0)
    raw = raw.astype(np.int64)
    expected = raw if datamodule_class is PascalContext60DataModule else np.where(raw == 0, 255, raw - 1)
    torch.testing.assert_close(label_16_bit, torch.from_numpy(expected), rtol=0, atol=0)


# Background (0) under stripes of the classes 5 and 59, all scaled by 256, in a 16-bit PNG.
SCALED_STRIPES = np.concatenate([np.zeros((32, 48)), np.full((4, 48), 5 * 256), np.full((4, 48), 59 * 256)])


def test_59_classes_refuse_a_value_past_the_table(context_tree, save_16_bit):
    path = val_label(context_tree)
    save_16_bit(path, SCALED_STRIPES)
    datamodule = PascalContext59DataModule(context_tree, num_workers=0)
    datamodule.setup("validate")
    expected = (
        f"label file {path} contains values [1280, 15104]; expected raw label ids 0..255. They are all multiples "
        "of 256: a 16-bit label must hold the class ids themselves, not the ids scaled by 256."
    )
    with pytest.raises(ValueError, match=re.escape(expected) + "$"):
        datamodule.datasets["val"][0]


def test_60_classes_refuse_a_value_past_the_classes(context_tree, save_16_bit):
    path = val_label(context_tree)
    save_16_bit(path, SCALED_STRIPES)
    datamodule = PascalContext60DataModule(context_tree, num_workers=0)
    datamodule.setup("validate")
    expected = (
        f"label file {path} contains values [1280, 15104]; expected class ids 0..59 or 255 (ignored) after "
        "conversion to train ids. They are all multiples of 256"
    )
    with pytest.raises(ValueError, match=re.escape(expected)):
        datamodule.datasets["val"][0]
