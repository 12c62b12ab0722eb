"""Procedural classification images: deterministic, balanced, learnable, with clear errors."""

import numpy as np
import pytest
import torch

from datamodules.synthetic_classification import (
    CLASS_NAMES,
    SyntheticClassification,
    SyntheticClassificationDataModule,
    render_sample,
)


def test_render_is_deterministic_and_independent_of_call_order():
    later, _ = render_sample(7, 32, 8, seed=3)
    for index in (0, 1, 2):
        render_sample(index, 32, 8, seed=3)
    again, _ = render_sample(7, 32, 8, seed=3)
    assert np.array_equal(later, again)
    assert not np.array_equal(later, render_sample(7, 32, 8, seed=4)[0])
    assert later.shape == (32, 32, 3) and later.dtype == np.uint8


def test_classes_are_balanced_and_named():
    labels = [render_sample(i, 16, 5, seed=0)[1] for i in range(20)]
    assert labels == [i % 5 for i in range(20)]
    assert SyntheticClassification(4, num_classes=5).class_names == list(CLASS_NAMES[:5])
    assert len(CLASS_NAMES) == 8


def test_rectangular_images_and_normalised_tensors():
    dataset = SyntheticClassification(3, image_size=(24, 40), num_classes=3)
    image, label = dataset[2]
    assert image.shape == (3, 24, 40) and image.dtype == torch.float32 and label == 2
    assert -3.0 < image.min() < image.max() < 3.0


def test_class_is_learnable_from_simple_features():
    # Nearest class mean on the colour of the image centre separates the classes far above chance (1/8).
    def features(indices):
        images = [render_sample(i, 32, 8, seed=0) for i in indices]
        return np.stack([img[12:20, 12:20].reshape(-1, 3).mean(0) for img, _ in images]), np.array(
            [y for _, y in images]
        )

    x_train, y_train = features(range(64))
    x_val, y_val = features(range(1000, 1048))
    means = np.stack([x_train[y_train == c].mean(0) for c in range(8)])
    predicted = np.linalg.norm(x_val[:, None] - means[None], axis=2).argmin(1)
    assert (predicted == y_val).mean() > 0.6


def test_datamodule_splits_and_batches():
    datamodule = SyntheticClassificationDataModule(num_classes=4, image_size=16, num_train=8, num_val=4, batch_size=4)
    datamodule.setup()
    images, labels = next(iter(datamodule.train_dataloader()))
    assert images.shape == (4, 3, 16, 16) and labels.dtype == torch.int64
    assert not torch.equal(datamodule.train_set[0][0], datamodule.val_set[0][0])
    assert not torch.equal(datamodule.val_set[0][0], datamodule.test_set[0][0])
    assert sum(len(labels) for _, labels in datamodule.val_dataloader()) == 4


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"num_classes": 9}, "num_classes must be an integer in 2..8"),
        ({"num_classes": 1}, "num_classes must be an integer in 2..8"),
        ({"image_size": 8}, "image_size must be"),
        ({"num_train": 0}, "num_train must be"),
    ],
)
def test_bad_settings_are_clear_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SyntheticClassificationDataModule(**kwargs)


def test_dataloader_before_setup_is_a_clear_error():
    with pytest.raises(RuntimeError, match=r"setup\(\) must be called"):
        SyntheticClassificationDataModule().train_dataloader()
