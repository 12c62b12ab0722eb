"""Megapixel digits: real UCI digits placed after Megapixel MNIST, checked pixel by pixel against the sources."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits

import datamodules.megapixel_digits as megapixel
from datamodules import MegapixelDigitsDataModule
from datamodules.megapixel_digits import (
    CLASS_NAMES,
    MegapixelDigits,
    noise_stroke,
    render_megapixel_digits,
    source_pools,
)

DIGITS = load_digits()


def reference_digit(source: int, size: int) -> np.ndarray:
    """The source digit upscaled with torch's bilinear interpolation (half-pixel centres), as uint8 0..255."""
    image = torch.tensor(DIGITS.images[source], dtype=torch.float32)[None, None]
    resized = F.interpolate(image, size=(size, size), mode="bilinear", align_corners=False)[0, 0]
    return (resized * 255 / 16).round().clamp(0, 255).numpy()


def boxes_overlap(a, b) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def test_images_are_three_equal_channels_in_minus_one_to_one():
    dataset = MegapixelDigits("train", num_images=3)
    image, label = dataset[1]
    assert image.shape == (3, 448, 448) and image.dtype == torch.float32
    assert isinstance(label, int) and 0 <= label < 10
    assert torch.equal(image[0], image[1]) and torch.equal(image[0], image[2])
    canvas = dataset.render(1).canvas
    assert canvas.shape == (448, 448) and canvas.dtype == np.uint8
    assert torch.equal(image[0], torch.from_numpy(canvas).float() / 127.5 - 1)
    assert image.min() == -1.0 and image.max() <= 1.0
    assert (image[0] == -1.0).float().mean() > 0.8  # mostly background
    # full ink is exactly +1
    full = torch.full((448, 448), 255, dtype=torch.uint8).numpy()
    assert torch.equal(megapixel.to_tensor(full), torch.ones(3, 448, 448))


def test_label_is_the_strict_majority_of_the_rendered_digits():
    dataset = MegapixelDigits("val", num_images=30, num_digits=7, num_target=4, canvas_size=256, noise_strokes=5)
    labels = []
    for i in range(len(dataset)):
        rendering = dataset.render(i)
        counts = np.bincount(rendering.classes, minlength=10)
        assert counts[rendering.label] == 4
        assert np.delete(counts, rendering.label).max() < 4
        assert np.array_equal(rendering.classes, DIGITS.target[rendering.sources])
        assert len(set(rendering.sources.tolist())) == 7  # distinct source digits
        assert dataset[i][1] == rendering.label
        labels.append(rendering.label)
    assert len(set(labels)) >= 6  # the target class varies


@pytest.mark.parametrize(("canvas_size", "digit_size"), [(448, 16), (896, 32), (1500, 16)])
def test_boxes_are_disjoint_inside_the_canvas_and_clear_of_noise(canvas_size, digit_size):
    for index in range(3):
        rendering = render_megapixel_digits(index, "test", canvas_size, digit_size)
        boxes, noise = rendering.boxes, rendering.noise_boxes
        assert boxes.shape == (5, 4) and noise.shape == (50, 4)
        for box in np.concatenate([boxes, noise]):
            y0, x0, y1, x1 = box.tolist()
            assert min(y0, x0) >= 0 and max(y1, x1) <= canvas_size
            assert y1 - y0 == digit_size and x1 - x0 == digit_size
        for i, a in enumerate(boxes):
            assert not any(boxes_overlap(a, b) for b in boxes[i + 1 :])
            assert not any(boxes_overlap(a, b) for b in noise)


def test_placement_falls_back_to_the_free_positions_when_rejection_fails(monkeypatch):
    # With one try per placement, a crowded canvas needs the exact fallback; boxes stay disjoint.
    monkeypatch.setattr(megapixel, "_PLACEMENT_TRIES", 1)
    for index in range(20):
        rendering = render_megapixel_digits(index, "train", canvas_size=40, digit_size=8, num_digits=4, noise_strokes=3)
        boxes = rendering.boxes
        assert all(not boxes_overlap(a, b) for i, a in enumerate(boxes) for b in boxes[i + 1 :])
        assert all(not boxes_overlap(a, b) for a in boxes for b in rendering.noise_boxes)


@pytest.mark.parametrize(("digit_size", "noise_strokes"), [(16, 50), (12, 0), (28, 10)])
def test_box_pixels_are_the_upscaled_source_digit(digit_size, noise_strokes):
    for index in range(4):
        rendering = render_megapixel_digits(index, "train", 448, digit_size, noise_strokes=noise_strokes)
        canvas = rendering.canvas.astype(np.int64)
        covered = np.zeros(canvas.shape, dtype=bool)
        for (y0, x0, y1, x1), source in zip(rendering.boxes, rendering.sources, strict=True):
            expected = reference_digit(int(source), digit_size)
            assert np.abs(canvas[y0:y1, x0:x1] - expected).max() <= 1
            assert canvas[y0:y1, x0:x1].max() > 100  # ink, not an empty box
            covered[y0:y1, x0:x1] = True
        for y0, x0, y1, x1 in rendering.noise_boxes:
            covered[y0:y1, x0:x1] = True
        assert (canvas[~covered] == 0).all()  # nothing outside the digits and the strokes
        ink_outside_digits = sum(canvas[y0:y1, x0:x1].sum() for y0, x0, y1, x1 in rendering.noise_boxes)
        assert (ink_outside_digits > 0) == (noise_strokes > 0)


def test_noise_strokes_follow_make_mnist():
    rng = np.random.default_rng(0)
    for _ in range(50):
        stroke = noise_stroke(rng)
        assert stroke.shape == (8, 8) and stroke.dtype == np.float32
        ink = stroke[stroke > 0]
        assert ink.min() >= 0.8 * 16 and ink.max() <= 16  # intensity uniform in [0.8, 1] of full ink
        assert stroke[0, 0] > 0  # the first line starts at the top-left corner
        assert 8 <= (stroke > 0).sum() <= 32  # two lines of 8..16 pixels each, possibly crossing
        line = megapixel._noise_line(rng)
        rows, cols = np.nonzero(line)
        assert line[0, 0] and (rows.max() == 7 or cols.max() == 7)  # corner to the opposite edge
        assert cols.max() <= rows.max() * np.tan(np.pi / 2.5) + 1  # at most 72 degrees from the vertical
        assert all(line[r].any() for r in range(rows.max() + 1))  # unbroken, row after row
    # upscaled to the digits' size with the same resize: as soft as a digit (grey edge pixels)
    upscaled = megapixel.upscale(noise_stroke(rng), 16)
    assert ((upscaled > 0) & (upscaled < 200)).any()


def test_images_are_deterministic_whatever_the_order_of_the_calls():
    first = MegapixelDigits("train", num_images=6, canvas_size=224, digit_size=16, seed=3)
    second = MegapixelDigits("train", num_images=6, canvas_size=224, digit_size=16, seed=3)
    forward = [first[i][0] for i in range(6)]
    backward = [second[i][0] for i in reversed(range(6))][::-1]
    for a, b in zip(forward, backward, strict=True):
        assert torch.equal(a, b)
    assert np.array_equal(first.render(-1).canvas, first.render(5).canvas)
    assert not torch.equal(forward[0], forward[1])
    assert not torch.equal(forward[0], MegapixelDigits("train", 6, 224, 16, seed=4)[0][0])
    assert not torch.equal(forward[0], MegapixelDigits("val", 6, 224, 16, seed=3)[0][0])
    # the same image in a longer dataset is the same image
    assert torch.equal(forward[2], MegapixelDigits("train", 100, 224, 16, seed=3)[2][0])


def test_source_pools_are_disjoint_stratified_and_used():
    pools = source_pools(0)
    all_sources = np.concatenate([pools[s] for s in ("train", "val", "test")])
    assert len(all_sources) == len(set(all_sources.tolist())) == len(DIGITS.target) == 1797
    for c in range(10):
        count = int((DIGITS.target == c).sum())
        for split, fraction in (("train", 0.6), ("val", 0.2), ("test", 0.2)):
            in_pool = int((DIGITS.target[pools[split]] == c).sum())
            assert abs(in_pool - fraction * count) <= 1
    assert not np.array_equal(source_pools(1)["train"], pools["train"])  # the permutation follows the seed
    for split in ("train", "val", "test"):
        used = np.concatenate([render_megapixel_digits(i, split, 224).sources for i in range(10)])
        assert np.isin(used, pools[split]).all()


def test_whole_image_at_the_base_resolution_shows_each_digit_at_about_four_pixels():
    extents = []
    for index in range(6):
        rendering = render_megapixel_digits(index, "train", noise_strokes=0)
        small = F.interpolate(megapixel.to_tensor(rendering.canvas)[None], size=(112, 112), mode="area")[0, 0]
        ink = (small > -0.9).numpy()
        seen = np.zeros_like(ink)
        for y0, x0, y1, x1 in rendering.boxes // 4:
            window = ink[y0 : y1 + 1, x0 : x1 + 1]
            rows, cols = np.flatnonzero(window.any(1)), np.flatnonzero(window.any(0))
            extents.append(max(rows[-1] - rows[0], cols[-1] - cols[0]) + 1)
            seen[y0 : y1 + 1, x0 : x1 + 1] = True
        assert not ink[~seen].any()
    assert min(extents) >= 3 and max(extents) <= 5
    assert 3.5 <= np.mean(extents) <= 5


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"canvas_size": 64}, r"64x64 canvas cannot hold 5 non-overlapping digits of 16 px"),
        ({"canvas_size": 448, "digit_size": 200}, r"cannot hold 5 non-overlapping digits of 200 px"),
        ({"canvas_size": 32, "digit_size": 33}, r"digit_size must be an integer in 8..canvas_size=32"),
        ({"digit_size": 4}, r"digit_size must be an integer in 8\.\."),
        ({"num_target": 2}, r"num_target must be an integer with num_digits / 2 < num_target <= num_digits = 5"),
        ({"num_digits": 4, "num_target": 2}, r"strict majority"),
        ({"num_target": 6}, r"num_target must be an integer with"),
        ({"num_digits": 80, "num_target": 41, "canvas_size": 1500}, r"num_target must be at most 35"),
        ({"num_digits": 0}, r"num_digits must be an integer >= 1"),
        ({"noise_strokes": -1}, r"noise_strokes must be an integer >= 0"),
        ({"canvas_size": 448.0}, r"canvas_size must be an integer >= 8"),
        ({"num_images": 0}, r"num_images must be an integer >= 1"),
        ({"split": "valid"}, r"split must be one of 'train', 'val', 'test', got 'valid'"),
        ({"seed": -1}, r"seed must be an integer >= 0"),
    ],
)
def test_bad_arguments_are_clear_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        MegapixelDigits(**kwargs)


def test_datamodule_errors_and_index_errors():
    with pytest.raises(ValueError, match="num_train must be an integer >= 1"):
        MegapixelDigitsDataModule(num_train=0)
    with pytest.raises(ValueError, match="cannot hold"):
        MegapixelDigitsDataModule(canvas_size=48)
    with pytest.raises(IndexError, match="out of range for 2 images"):
        MegapixelDigits(num_images=2)[2]
    with pytest.raises(RuntimeError, match=r"setup\(\) must be called"):
        MegapixelDigitsDataModule().train_dataloader()


def test_datamodule_loaders_give_batches_of_the_right_shape():
    datamodule = MegapixelDigitsDataModule(
        canvas_size=128, digit_size=8, num_train=6, num_val=3, num_test=2, batch_size=2, seed=1
    )
    assert datamodule.num_classes == 10 and datamodule.class_names == list(CLASS_NAMES) == [str(c) for c in range(10)]
    datamodule.setup("fit")
    images, labels = next(iter(datamodule.train_dataloader()))
    assert images.shape == (2, 3, 128, 128) and images.dtype == torch.float32
    assert labels.shape == (2,) and labels.dtype == torch.int64
    assert images.min() >= -1 and images.max() <= 1
    assert sum(len(y) for _, y in datamodule.val_dataloader()) == 3
    assert sum(len(y) for _, y in datamodule.test_dataloader()) == 2
    assert sum(len(y) for _, y in datamodule.predict_dataloader()) == 2
    val_images, val_labels = next(iter(datamodule.val_dataloader()))
    assert torch.equal(val_images[0], datamodule.val_set[0][0]) and val_labels[0] == datamodule.val_set[0][1]
    assert datamodule.hparams["canvas_size"] == 128
