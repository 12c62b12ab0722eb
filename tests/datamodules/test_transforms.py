"""Training and evaluation transforms: scale range, padding with ignore, joint crop and flip, normalisation."""

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision import tv_tensors

from datamodules.transforms import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    ResizeShorterSide,
    eval_transforms,
    normalized_pad_value,
    resize_labels,
    train_transforms,
)

MEAN = torch.tensor(IMAGENET_MEAN)[:, None, None]
STD = torch.tensor(IMAGENET_STD)[:, None, None]


def position_coded(height: int, width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Label ``y · W + x`` at every pixel, and a uint8 image whose three channels hold ``10 ×`` that label."""
    label = torch.arange(height * width).view(height, width)
    return (10 * label).to(torch.uint8).expand(3, height, width).clone(), label


def apply(transform, image: torch.Tensor, label: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    out_image, out_label = transform(tv_tensors.Image(image), tv_tensors.Mask(label))
    return out_image.as_subclass(torch.Tensor), out_label.as_subclass(torch.Tensor)


def unnormalise(image: torch.Tensor) -> torch.Tensor:
    """The uint8 values the normalised float image came from."""
    return (image * STD + MEAN) * 255


def test_train_crop_and_flip_move_image_and_label_together():
    image, label = position_coded(4, 6)
    transform = train_transforms((2, 3), base_size=4, scale_range=(1.0, 1.0))
    torch.manual_seed(0)
    flips = set()
    for _ in range(64):
        out_image, out_label = apply(transform, image, label)
        assert out_image.shape == (3, 2, 3) and out_image.dtype == torch.float32
        assert out_label.shape == (2, 3) and out_label.dtype == torch.int64
        # Each output pixel still shows its own label.
        torch.testing.assert_close(unnormalise(out_image), 10 * out_label.float().expand(3, 2, 3), atol=1e-3, rtol=0)
        # The label is a contiguous 2×3 window of the source, read left to right or mirrored.
        top, left = divmod(int(out_label[0, 0]), 6)
        step = int(out_label[0, 1] - out_label[0, 0])
        assert step in (1, -1)
        rows = torch.arange(top, top + 2)[:, None] * 6
        cols = left + step * torch.arange(3)[None, :]
        torch.testing.assert_close(out_label, rows + cols)
        flips.add(step)
    assert flips == {1, -1}  # p = 0.5: both orientations within 64 draws


def test_train_scale_covers_both_ends_of_the_range_on_the_shorter_side():
    # Short side 4 (height), base 4, scale [0.5, 2.0]: short sides 2..8, long side int(s · 6 / 4) (aspect kept).
    image = torch.full((3, 4, 6), 200, dtype=torch.uint8)
    label = torch.ones(4, 6, dtype=torch.int64)
    transform = train_transforms(32, base_size=4, scale_range=(0.5, 2.0))
    torch.manual_seed(0)
    sizes = set()
    for _ in range(200):
        _, out_label = apply(transform, image, label)
        kept = out_label != 255
        height, width = int(kept.any(dim=1).sum()), int(kept.any(dim=0).sum())
        assert int(kept.sum()) == height * width  # one rectangle, padded around with ignore
        sizes.add((height, width))
    assert sizes == {(s, int(s * 6 / 4)) for s in range(2, 9)}


def test_train_pads_the_label_with_ignore_and_the_image_with_zero():
    image, label = position_coded(4, 6)
    transform = train_transforms((8, 10), base_size=4, scale_range=(1.0, 1.0), ignore_index=255)
    torch.manual_seed(0)
    out_image, out_label = apply(transform, image, label)
    padded = out_label == 255
    assert int(padded.sum()) == 8 * 10 - 4 * 6
    assert sorted(out_label[~padded].tolist()) == list(range(24))
    torch.testing.assert_close(unnormalise(out_image)[:, padded], torch.zeros(3, int(padded.sum())), atol=1e-4, rtol=0)


def test_train_rejects_a_bad_scale_range():
    for scale_range in ((2.0, 0.5), (0.0, 1.0)):
        with pytest.raises(ValueError, match="scale_range"):
            train_transforms(8, base_size=8, scale_range=scale_range)


def test_eval_normalises_with_imagenet_statistics_and_keeps_the_size():
    image, label = position_coded(4, 6)
    out_image, out_label = apply(eval_transforms(), image, label)
    mean = torch.tensor([0.485, 0.456, 0.406])[:, None, None]
    std = torch.tensor([0.229, 0.224, 0.225])[:, None, None]
    torch.testing.assert_close(out_image, (image.float() / 255 - mean) / std)
    torch.testing.assert_close(out_label, label)


def test_eval_short_side_resizes_labels_by_nearest_neighbour():
    # 2×2 blocks of classes 0, 3, 7, ...: halving keeps one pixel per block and invents no class.
    blocks = torch.tensor([[0, 3, 7], [7, 0, 3]])
    label = blocks.repeat_interleave(2, dim=0).repeat_interleave(2, dim=1)
    image = (20 * label).to(torch.uint8).expand(3, 4, 6).clone()
    out_image, out_label = apply(eval_transforms(short_side=2), image, label)
    assert out_image.shape == (3, 2, 3)
    torch.testing.assert_close(out_label, blocks)


def test_resize_labels_takes_the_label_under_each_output_pixels_centre():
    # Column j holds class j; 6 -> 4 columns: centres at 0.75, 2.25, 3.75, 5.25 input pixels. torch's legacy
    # "nearest" reads columns floor(i * 6 / 4) = [0, 1, 3, 4] instead.
    label = torch.arange(6).expand(6, 6)
    assert resize_labels(label, (4, 4))[0].tolist() == [0, 2, 3, 5]
    # PIL's NEAREST, an implementation independent of ours, for down- and upscaling of a non-square map.
    generator = torch.Generator().manual_seed(0)
    label = torch.randint(0, 200, (13, 17), generator=generator, dtype=torch.uint8)
    for size in ((4, 6), (7, 5), (13, 17), (20, 31), (39, 9)):
        expected = np.array(Image.fromarray(label.numpy()).resize(size[::-1], Image.NEAREST))
        assert resize_labels(label, size).numpy().tolist() == expected.tolist(), size
    # Any leading dimensions and integer dtype; the dtype is kept.
    batch = label.long().expand(2, 3, 13, 17)
    resized = resize_labels(batch, (5, 8))
    assert resized.shape == (2, 3, 5, 8) and resized.dtype == torch.int64
    torch.testing.assert_close(resized[1, 2], resize_labels(label.long(), (5, 8)))
    with pytest.raises(ValueError, match="positive"):
        resize_labels(label, (0, 4))


def ramp(height: int, width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Column j has class j and grey level 10 j: a bilinear resize keeps each pixel's grey level within 5 of
    10 × the class under its centre (a linear ramp averages to its value at the centre of the filter)."""
    label = torch.arange(width).expand(height, width).clone()
    return (10 * label).to(torch.uint8).expand(3, height, width).clone(), label


@pytest.mark.parametrize(
    "transform",
    [
        train_transforms((40, 60), base_size=12, scale_range=(0.5, 2.0)),
        *(eval_transforms(short_side=side) for side in (5, 7, 9, 17, 30)),
    ],
    ids=["train", "eval5", "eval7", "eval9", "eval17", "eval30"],
)
def test_every_resize_keeps_image_and_label_aligned(transform):
    image, label = ramp(12, 24)
    torch.manual_seed(0)
    for _ in range(20):
        out_image, out_label = apply(transform, image, label)
        grey = unnormalise(out_image)[0]
        # The first and last class sit at the image border, where the antialiasing filter is cut off.
        inside = (out_label > 0) & (out_label < 23)
        assert inside.any()
        # 0.5 more for the uint8 rounding of the resized image; the legacy nearest rule is off by 8 to 15 here.
        assert float((grey[inside] - 10 * out_label[inside]).abs().max()) <= 5.5


def test_random_scale_draws_the_shorter_side_from_the_whole_range():
    image, label = ramp(12, 24)
    resize = ResizeShorterSide(6, 9)
    torch.manual_seed(0)
    sizes = {tuple(resize(tv_tensors.Image(image), tv_tensors.Mask(label))[1].shape) for _ in range(100)}
    assert sizes == {(side, 2 * side) for side in range(6, 10)}
    # An image alone is resized the same way.
    assert ResizeShorterSide(6)(tv_tensors.Image(image)).shape == (3, 6, 12)
    with pytest.raises(ValueError, match="shorter side"):
        ResizeShorterSide(9, 6)


def test_normalised_pad_value_is_a_black_pixel_after_normalisation():
    assert normalized_pad_value() == pytest.approx((-2.1179, -2.0357, -1.8044), abs=1e-4)
