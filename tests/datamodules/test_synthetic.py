"""Tests of the procedural segmentation scenes and their DataModule."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from datamodules import (
    CLASS_NAMES,
    IMAGENET_MEAN,
    IMAGENET_STD,
    MAX_NUM_CLASSES,
    SyntheticScenes,
    SyntheticSegmentationDataModule,
    render_scene,
)


def _masks(num_scenes: int, num_classes: int, size: int = 64, seed: int = 0) -> np.ndarray:
    """Label maps (N, H, W) of scenes 0..num_scenes-1."""
    return np.stack([render_scene(i, (size, size), num_classes, seed)[1] for i in range(num_scenes)])


def test_render_scene_shapes_and_dtypes() -> None:
    image, mask = render_scene(3, (48, 80), 6, 0)
    assert image.shape == (48, 80, 3) and image.dtype == np.uint8
    assert mask.shape == (48, 80) and mask.dtype == np.uint8
    assert image.std() > 10  # not a blank image


def test_same_scene_is_byte_identical_across_instances_and_call_order() -> None:
    first, second = SyntheticScenes(8, 64, 6, seed=3), SyntheticScenes(8, 64, 6, seed=3)
    later_first = [first[i] for i in (5, 2)]
    for i, (image, mask) in zip((5, 2), later_first, strict=True):
        other_image, other_mask = second[i]
        assert torch.equal(image, other_image) and torch.equal(mask, other_mask)
    a_image, a_mask = render_scene(2, (64, 64), 6, 3)
    render_scene(7, (64, 64), 6, 3)
    b_image, b_mask = render_scene(2, (64, 64), 6, 3)
    assert a_image.tobytes() == b_image.tobytes() and a_mask.tobytes() == b_mask.tobytes()


def test_different_seeds_and_indices_give_different_scenes() -> None:
    base_image, base_mask = render_scene(0, (64, 64), 6, 0)
    for index, seed in ((1, 0), (0, 1), (10, 7)):
        image, mask = render_scene(index, (64, 64), 6, seed)
        assert not np.array_equal(image, base_image)
        assert not np.array_equal(mask, base_mask)


@pytest.mark.parametrize("num_classes", [2, 4, 6, MAX_NUM_CLASSES])
def test_labels_stay_in_range(num_classes: int) -> None:
    masks = _masks(40, num_classes)
    assert masks.min() == 0
    assert masks.max() == num_classes - 1
    assert not (masks == 255).any()


def test_every_class_appears_and_background_fraction_is_moderate() -> None:
    masks = _masks(100, MAX_NUM_CLASSES)
    presence = np.array([(masks == c).any(axis=(1, 2)).mean() for c in range(MAX_NUM_CLASSES)])
    assert presence.min() >= 0.25, presence  # every shape class in at least a quarter of the scenes
    background = (masks == 0).mean(axis=(1, 2))
    assert 0.2 <= background.mean() <= 0.9
    assert background.min() > 0.0 and background.max() < 1.0
    objects_per_scene = [len(np.unique(m)) - 1 for m in masks]
    assert np.mean(objects_per_scene) >= 2.0


def test_object_sizes_scale_with_image_size() -> None:
    small = (_masks(40, 6, size=64) > 0).mean()
    large = (_masks(40, 6, size=128) > 0).mean()
    assert abs(small - large) < 0.1


def test_objects_can_be_cut_by_the_border() -> None:
    masks = _masks(50, 6)
    border = np.concatenate([masks[:, 0], masks[:, -1], masks[:, :, 0], masks[:, :, -1]], axis=1)
    assert ((border > 0).any(axis=1)).mean() > 0.3


def test_mask_boundaries_coincide_with_image_edges() -> None:
    across, within = [], []
    for index in range(30):
        image, mask = render_scene(index, (64, 64), 6, 0)
        image = image.astype(np.float64)
        for axis in (0, 1):
            step = np.abs(np.diff(image, axis=axis)).mean(axis=-1)
            changes = np.diff(mask.astype(np.int16), axis=axis) != 0
            across.append(step[changes])
            within.append(step[~changes])
    across_mean, within_mean = np.concatenate(across).mean(), np.concatenate(within).mean()
    assert across_mean > 3.0 * within_mean, (across_mean, within_mean)


def test_normalised_tensor_denormalises_to_the_rendered_image() -> None:
    dataset = SyntheticScenes(4, (32, 48), 5, seed=2)
    image_t, mask_t = dataset[3]
    assert image_t.shape == (3, 32, 48) and image_t.dtype == torch.float32
    assert mask_t.shape == (32, 48) and mask_t.dtype == torch.int64
    image, mask = render_scene(3, (32, 48), 5, 2)
    mean, std = torch.tensor(IMAGENET_MEAN).view(3, 1, 1), torch.tensor(IMAGENET_STD).view(3, 1, 1)
    restored = (image_t * std + mean).permute(1, 2, 0).numpy()
    assert np.abs(restored - image / 255.0).max() <= 1.0 / 255.0
    assert np.array_equal(mask_t.numpy(), mask)


def test_dataset_attributes_and_index_errors() -> None:
    dataset = SyntheticScenes(3, num_classes=4)
    assert len(dataset) == 3
    assert dataset.class_names == list(CLASS_NAMES[:4]) and dataset.class_names[0] == "background"
    assert len(dataset.palette) == 4 and all(len(colour) == 3 for colour in dataset.palette)
    assert len(set(dataset.palette)) == 4
    assert torch.equal(dataset[-1][1], dataset[2][1])
    with pytest.raises(IndexError, match="out of range"):
        dataset[3]


def test_datamodule_attributes_and_loaders() -> None:
    dm = SyntheticSegmentationDataModule(
        num_classes=5, image_size=(32, 40), num_train=20, num_val=6, num_test=5, batch_size=8
    )
    assert dm.num_classes == 5 and dm.in_chans == 3 and dm.ignore_index == 255
    assert len(dm.class_names) == 5 and len(dm.palette) == 5
    dm.setup("fit")
    train_batches = list(dm.train_dataloader())
    assert len(train_batches) == 2  # 20 scenes, batch 8, last partial batch dropped
    for loader, first_batch in (
        (dm.train_dataloader(), 8),
        (dm.val_dataloader(), 6),
        (dm.test_dataloader(), 5),
        (dm.predict_dataloader(), 5),
    ):
        images, masks = next(iter(loader))
        assert images.shape == (first_batch, 3, 32, 40) and images.dtype == torch.float32
        assert masks.shape == (first_batch, 32, 40) and masks.dtype == torch.int64
        assert masks.min() >= 0 and masks.max() < 5
    assert dm.predict_dataloader().dataset is dm.test_set


def test_datamodule_keeps_a_small_train_set_whole() -> None:
    dm = SyntheticSegmentationDataModule(num_train=5, num_val=1, num_test=1, batch_size=8)
    dm.setup()
    assert sum(len(masks) for _, masks in dm.train_dataloader()) == 5


def test_splits_hold_different_scenes() -> None:
    dm = SyntheticSegmentationDataModule(num_train=8, num_val=8, num_test=8)
    dm.setup()
    splits = [dm.train_set, dm.val_set, dm.test_set]
    masks = [{dataset[i][1].numpy().tobytes() for i in range(8)} for dataset in splits]
    assert not masks[0] & masks[1] and not masks[0] & masks[2] and not masks[1] & masks[2]
    assert not torch.equal(dm.train_set[0][0], dm.val_set[0][0])


def test_loaders_need_setup() -> None:
    with pytest.raises(RuntimeError, match=r"setup\(\) must be called"):
        SyntheticSegmentationDataModule().train_dataloader()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"num_classes": 1}, r"num_classes must be an integer in 2\.\.9"),
        ({"num_classes": MAX_NUM_CLASSES + 1}, r"num_classes must be an integer in 2\.\.9"),
        ({"image_size": 8}, "image_size must be .* >= 16"),
        ({"image_size": (64, 15)}, "image_size must be .* >= 16"),
        ({"image_size": (64, 64, 3)}, r"image_size must be an integer or an \(height, width\) pair"),
        ({"num_train": 0}, "num_train must be an integer in 1"),
        ({"num_val": 0}, "num_val must be an integer in 1"),
        ({"num_test": -1}, "num_test must be an integer in 1"),
        ({"batch_size": 0}, "batch_size must be an integer >= 1"),
        ({"num_workers": -1}, "num_workers must be an integer >= 0"),
        ({"seed": -1}, "seed must be an integer >= 0"),
        ({"batch_size": 2.5}, "batch_size must be an integer >= 1, got 2.5"),
    ],
)
def test_datamodule_rejects_bad_arguments(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SyntheticSegmentationDataModule(**kwargs)


def test_dataset_and_render_scene_reject_bad_arguments() -> None:
    with pytest.raises(ValueError, match="num_images must be an integer >= 1"):
        SyntheticScenes(0)
    with pytest.raises(ValueError, match="index must be an integer >= 0"):
        render_scene(-1, (64, 64), 6, 0)
    with pytest.raises(ValueError, match="num_classes must be an integer in 2"):
        render_scene(0, (64, 64), 0, 0)
