"""ImageNetDataModule on a small tree in the PyTorch ImageNet example's layout."""

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from datamodules.imagenet import ImageNetDataModule, imagenet_eval_transforms
from datamodules.transforms import IMAGENET_MEAN, IMAGENET_STD

WNIDS = ("n01440764", "n01443537", "n01484850")


def write_jpeg(path: Path, height: int, width: int, seed: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path, format="JPEG")


@pytest.fixture
def imagenet_tree(tmp_path) -> Path:
    """3 classes; 2 train images each (300x400 and 260x180), 1 val image each (240x320)."""
    root = tmp_path / "imagenet"
    for c, wnid in enumerate(WNIDS):
        write_jpeg(root / "train" / wnid / f"{wnid}_1.JPEG", 300, 400, seed=c)
        write_jpeg(root / "train" / wnid / f"{wnid}_2.JPEG", 260, 180, seed=10 + c)
        write_jpeg(root / "val" / wnid / f"ILSVRC2012_val_0000000{c}.JPEG", 240, 320, seed=20 + c)
    return root


def test_batches_have_the_papers_crops_and_train_ids(imagenet_tree):
    datamodule = ImageNetDataModule(imagenet_tree, batch_size=2, num_workers=0)
    assert datamodule.num_classes == 3 and datamodule.class_names == list(WNIDS)
    datamodule.setup("fit")
    images, labels = next(iter(datamodule.train_dataloader()))
    assert images.shape == (2, 3, 224, 224) and images.dtype == torch.float32 and labels.dtype == torch.int64
    val = [batch for batch in datamodule.val_dataloader()]
    assert [tuple(images.shape) for images, _ in val] == [(2, 3, 224, 224), (1, 3, 224, 224)]
    assert torch.cat([labels for _, labels in val]).tolist() == [0, 1, 2]
    assert len(datamodule.train_set) == 6 and len(list(datamodule.train_dataloader())) == 3


def test_val_uses_train_class_ids_when_a_class_is_missing(imagenet_tree):
    for path in (imagenet_tree / "val" / WNIDS[0]).iterdir():
        path.unlink()
    (imagenet_tree / "val" / WNIDS[0]).rmdir()
    datamodule = ImageNetDataModule(imagenet_tree, batch_size=4, num_workers=0)
    datamodule.setup("validate")
    assert [label for _, label in datamodule.val_set.samples] == [1, 2]


def test_eval_transform_resizes_256_and_centre_crops_224():
    # A 256 x 512 image with a left and a right half: Resize(256) keeps it, the centre 224 columns
    # straddle the middle, so the crop is half left colour, half right colour.
    pixels = np.zeros((256, 512, 3), dtype=np.uint8)
    pixels[:, :256] = 64
    pixels[:, 256:] = 192
    out = imagenet_eval_transforms()(Image.fromarray(pixels))
    assert out.shape == (3, 224, 224)
    mean, std = torch.tensor(IMAGENET_MEAN)[:, None], torch.tensor(IMAGENET_STD)[:, None]
    dark, light = ((64 / 255 - mean) / std).expand(3, 224), ((192 / 255 - mean) / std).expand(3, 224)
    for column, expected in ((0, dark), (111, dark), (112, light), (223, light)):
        torch.testing.assert_close(out[:, :, column], expected)


def test_missing_root_names_the_expected_layout(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"ImageNet root .*nowhere does not exist; expected .*train/<wnid>"):
        ImageNetDataModule(tmp_path / "nowhere").setup()


def test_missing_split_is_named(imagenet_tree):
    for path in sorted((imagenet_tree / "val").rglob("*"), reverse=True):
        path.unlink() if path.is_file() else path.rmdir()
    (imagenet_tree / "val").rmdir()
    with pytest.raises(FileNotFoundError, match="lacks the split folder"):
        ImageNetDataModule(imagenet_tree).check_layout()


def test_flat_val_folder_gets_a_sorting_hint(imagenet_tree):
    for wnid in WNIDS:
        folder = imagenet_tree / "val" / wnid
        for path in folder.iterdir():
            path.rename(imagenet_tree / "val" / path.name)
        folder.rmdir()
    with pytest.raises(FileNotFoundError, match=r"has no class folders.*holds 3 images directly.*valprep"):
        ImageNetDataModule(imagenet_tree, num_workers=0).setup()


def test_empty_class_folder_is_named(imagenet_tree):
    (imagenet_tree / "train" / "n09999999").mkdir()
    with pytest.raises(FileNotFoundError, match=r"ImageNet train split in .*n09999999"):
        ImageNetDataModule(imagenet_tree, num_workers=0).setup()


def test_val_class_unknown_to_train_is_an_error(imagenet_tree):
    write_jpeg(imagenet_tree / "val" / "n09999999" / "x.JPEG", 32, 32, seed=0)
    with pytest.raises(FileNotFoundError, match=r"class folders \['n09999999'\] that the train split lacks"):
        ImageNetDataModule(imagenet_tree, num_workers=0).setup()
