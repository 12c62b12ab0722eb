"""The TF-slim Inception augmentation of TNet's fMoW code, against independent computations of TF's rules."""

import colorsys
import math

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision import tv_tensors
from torchvision.transforms import InterpolationMode, v2

from datamodules.inception import (
    RESIZE_METHODS,
    DistortColor,
    adjust_brightness,
    adjust_contrast,
    adjust_hue,
    adjust_saturation,
    distort_color,
    inception_eval_transforms,
    inception_train_transforms,
    resize_choices,
    sample_distorted_bounding_box,
)


def covered_fraction(window, box) -> float:
    """The fraction of box ``(xmin, ymin, xmax, ymax)`` inside window ``(top, left, height, width)``."""
    top, left, height, width = window
    xmin, ymin, xmax, ymax = box
    overlap_w = max(0, min(left + width, xmax) - max(left, xmin))
    overlap_h = max(0, min(top + height, ymax) - max(top, ymin))
    return overlap_w * overlap_h / ((xmax - xmin) * (ymax - ymin))


def bilinear_reference(image: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
    """TF's ``resize_bilinear(half_pixel_centers=True)`` of an ``(H, W, C)`` float array, written from its definition:
    output pixel ``i`` reads input coordinate ``(i + 0.5) · in / out − 0.5``, clamped to the image."""

    def axis(out_size: int, in_size: int):
        coords = (np.arange(out_size) + 0.5) * in_size / out_size - 0.5
        low = np.clip(np.floor(coords), 0, in_size - 1).astype(int)
        high = np.clip(np.ceil(coords), 0, in_size - 1).astype(int)
        frac = coords - np.floor(coords)
        frac[coords < 0] = 0.0
        return low, high, frac

    y0, y1, fy = axis(out_h, image.shape[0])
    x0, x1, fx = axis(out_w, image.shape[1])
    top = image[y0][:, x0] * (1 - fx)[None, :, None] + image[y0][:, x1] * fx[None, :, None]
    bottom = image[y1][:, x0] * (1 - fx)[None, :, None] + image[y1][:, x1] * fx[None, :, None]
    return top * (1 - fy)[:, None, None] + bottom * fy[:, None, None]


def random_image(height: int, width: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


# --- sample_distorted_bounding_box -----------------------------------------------------------------------------


def test_box_sampling_respects_area_aspect_and_coverage_over_many_draws():
    generator = torch.Generator().manual_seed(0)
    height, width = 60, 80
    box = (50, 40, 70, 58)  # a 20x18 object near the bottom-right corner
    windows = [sample_distorted_bounding_box((height, width), [box], generator=generator) for _ in range(2000)]
    assert len(set(windows)) > 50  # a real distribution, not one window
    for top, left, h, w in windows:
        assert top >= 0 and left >= 0 and top + h <= height and left + w <= width
        if (h, w) == (height, width):
            continue
        assert 0.85 * height * width <= h * w <= height * width
        # width = round(height · aspect) with aspect in [0.5, 2]: within half a pixel of that range
        assert 0.5 * h - 0.5 <= w <= 2.0 * h + 0.5
        assert covered_fraction((top, left, h, w), box) >= 0.1
        # TF draws the corner in [0, H - h) x [0, W - w): a smaller window never touches the far border
        assert top + h < height or h == height
        assert left + w < width or w == width


def test_box_sampling_enforces_min_object_covered_with_a_binding_constraint():
    generator = torch.Generator().manual_seed(1)
    box = (0, 0, 10, 10)  # a corner object: most windows of a third of the image miss 90 % of it
    windows = [
        sample_distorted_bounding_box(
            (60, 60), [box], min_object_covered=0.9, area_range=(0.3, 0.5), generator=generator
        )
        for _ in range(500)
    ]
    crops = [window for window in windows if window != (0, 0, 60, 60)]
    assert crops, "some windows must satisfy the constraint"
    assert all(covered_fraction(window, box) >= 0.9 for window in crops)
    assert all(0.3 * 3600 <= h * w <= 0.5 * 3600 for _, _, h, w in crops)
    # the windows that do cover the corner object start at its corner (it is 10 px wide, 90 % of it is 9 px)
    assert all(top <= 1 and left <= 1 for top, left, _, _ in crops)


def test_box_sampling_without_boxes_uses_the_whole_image_and_falls_back_to_it():
    draws = 300
    with_none = [
        sample_distorted_bounding_box((60, 80), None, generator=torch.Generator().manual_seed(s)) for s in range(draws)
    ]
    with_image = [
        sample_distorted_bounding_box((60, 80), [(0, 0, 80, 60)], generator=torch.Generator().manual_seed(s))
        for s in range(draws)
    ]
    assert with_none == with_image
    # A 10 x 100 strip has no window of aspect <= 2 with 85 % of its area: every draw falls back to the whole image.
    strip = {
        sample_distorted_bounding_box((10, 100), None, generator=torch.Generator().manual_seed(s)) for s in range(50)
    }
    assert strip == {(0, 0, 10, 100)}


def test_sampled_window_crops_the_image_and_its_boxes():
    image = tv_tensors.Image(torch.arange(60 * 80, dtype=torch.float32).reshape(1, 60, 80).expand(3, 60, 80).clone())
    boxes = tv_tensors.BoundingBoxes([[50, 40, 70, 58]], format="XYXY", canvas_size=(60, 80))
    crop = inception_train_transforms(16).transforms[1]
    torch.manual_seed(3)
    out, out_boxes = crop(image, boxes)
    torch.manual_seed(3)
    top, left, h, w = sample_distorted_bounding_box((60, 80), [[50, 40, 70, 58]])
    assert torch.equal(out, image[:, top : top + h, left : left + w])
    assert out_boxes.tolist() == [[50 - left, 40 - top, min(70 - left, w), min(58 - top, h)]]


# --- the whole pipelines ---------------------------------------------------------------------------------------


def test_train_output_is_float_size_s_in_minus_one_one():
    transform = inception_train_transforms(24)
    torch.manual_seed(0)
    for seed in range(40):
        pixels = random_image(30 + seed, 50, seed)
        boxes = tv_tensors.BoundingBoxes([[5, 5, 25, 20]], format="XYXY", canvas_size=pixels.shape[:2])
        out, _ = transform(Image.fromarray(pixels), boxes)
        assert out.shape == (3, 24, 24) and out.dtype == torch.float32
        assert out.min() >= -1.0 and out.max() <= 1.0
        plain = transform(tv_tensors.Image(torch.from_numpy(pixels).permute(2, 0, 1)))
        assert plain.shape == (3, 24, 24) and plain.min() >= -1.0 and plain.max() <= 1.0
    # extreme pixels reach both ends: black stays -1 under an undistorted resize
    assert transform(Image.new("RGB", (40, 30))).min() == -1.0


def test_eval_equals_an_independent_bilinear_resize_and_scaling():
    pixels = random_image(37, 53, seed=4)
    out = inception_eval_transforms(24)(Image.fromarray(pixels))
    expected = bilinear_reference(pixels.astype(np.float64) / 255.0, 24, 24) * 2.0 - 1.0
    assert out.shape == (3, 24, 24)
    np.testing.assert_allclose(out.permute(1, 2, 0).numpy(), expected, atol=1e-5)
    # upsampling too, and a tensor input gives the same
    small = random_image(9, 7, seed=5)
    out = inception_eval_transforms(20)(tv_tensors.Image(torch.from_numpy(small).permute(2, 0, 1)))
    np.testing.assert_allclose(
        out.permute(1, 2, 0).numpy(), bilinear_reference(small / 255.0, 20, 20) * 2 - 1, atol=1e-5
    )


def test_resize_choices_are_the_eight_official_methods_and_bilinear_is_tfs():
    assert [name for name, _ in RESIZE_METHODS] == [
        "bilinear",
        "lanczos3",
        "lanczos5",
        "bicubic",
        "gaussian",
        "nearest",
        "area",
        "mitchellcubic",
    ]
    pixels = random_image(31, 45, seed=6)
    image = tv_tensors.Image(torch.from_numpy(pixels).permute(2, 0, 1))
    choices = resize_choices(16)
    assert len(choices) == 8
    for choice in choices:
        out = choice(image)
        assert out.shape == (3, 16, 16) and out.dtype == torch.float32
    np.testing.assert_allclose(
        choices[0](image).permute(1, 2, 0).numpy(), bilinear_reference(pixels / 255.0, 16, 16), atol=1e-5
    )
    # nearest: the input pixel under each output pixel's centre (TF 2's half-pixel nearest)
    rows = ((np.arange(16) + 0.5) * 31 / 16).astype(int)
    cols = ((np.arange(16) + 0.5) * 45 / 16).astype(int)
    nearest = choices[5](image).permute(1, 2, 0).numpy()
    np.testing.assert_allclose(nearest, pixels[rows][:, cols] / 255.0, atol=1e-6)
    # area (PIL box) on an exact 3x shrink: the mean of each 3 x 3 block (PIL's fixed-point rounding: within 1)
    block = random_image(48, 48, seed=7)
    area = resize_choices(16)[6](tv_tensors.Image(torch.from_numpy(block).permute(2, 0, 1)))
    means = block.reshape(16, 3, 16, 3, 3).mean(axis=(1, 3))
    np.testing.assert_allclose(area.permute(1, 2, 0).numpy() * 255, means, atol=1.0)


def test_horizontal_flip_happens_half_of_the_time():
    # A grey left-to-right ramp: every step but the flip keeps its direction (crops keep >= 85 % of the area,
    # resizes are monotone, saturation and hue leave grey unchanged, brightness and contrast are increasing maps).
    ramp = np.repeat(np.repeat(np.linspace(0, 255, 64).astype(np.uint8)[None, :, None], 48, axis=0), 3, axis=2)
    transform = inception_train_transforms(16)
    torch.manual_seed(0)
    flipped = 0
    draws = 300
    for _ in range(draws):
        out = transform(Image.fromarray(ramp))
        left, right = out[:, :, :8].mean().item(), out[:, :, 8:].mean().item()
        assert left != right
        flipped += left > right
    assert 0.4 * draws < flipped < 0.6 * draws


# --- colour distortion -----------------------------------------------------------------------------------------


def hsv_reference(image: np.ndarray, saturation: float = 1.0, hue: float = 0.0) -> np.ndarray:
    """Per pixel with Python's colorsys: saturation scaled and clipped to [0, 1], hue rotated (turns)."""
    out = np.empty_like(image)
    for index in np.ndindex(image.shape[:-1]):
        h, s, v = colorsys.rgb_to_hsv(*image[index])
        out[index] = colorsys.hsv_to_rgb((h + hue) % 1.0, min(max(s * saturation, 0.0), 1.0), v)
    return out


def chw(array: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(array).permute(2, 0, 1).float()


def hwc(tensor: torch.Tensor) -> np.ndarray:
    return tensor.permute(1, 2, 0).double().numpy()


@pytest.fixture
def colours() -> np.ndarray:
    return np.random.default_rng(8).uniform(0.0, 1.0, (6, 7, 3))


def test_each_colour_op_equals_its_tf_definition(colours):
    image = chw(colours)
    np.testing.assert_allclose(hwc(adjust_brightness(image, 0.1)), colours + 0.1, atol=1e-6)
    mean = colours.mean(axis=(0, 1), keepdims=True)  # per channel
    np.testing.assert_allclose(hwc(adjust_contrast(image, 1.4)), (colours - mean) * 1.4 + mean, atol=1e-5)
    for factor in (0.5, 0.8, 1.3, 1.5):
        np.testing.assert_allclose(hwc(adjust_saturation(image, factor)), hsv_reference(colours, factor), atol=1e-5)
    for delta in (-0.2, -0.05, 0.13, 0.2):
        np.testing.assert_allclose(hwc(adjust_hue(image, delta)), hsv_reference(colours, hue=delta), atol=1e-5)
    grey = torch.full((3, 2, 2), 0.4)
    assert torch.allclose(adjust_saturation(grey, 1.5), grey) and torch.allclose(adjust_hue(grey, 0.2), grey)


def test_distort_color_applies_the_four_tf_slim_orderings_then_clips(colours):
    factors = {"brightness": 0.1, "saturation": 1.3, "hue": 0.15, "contrast": 0.7}
    ops = {
        "brightness": lambda x: x + factors["brightness"],
        "saturation": lambda x: hsv_reference(x, saturation=factors["saturation"]),
        "hue": lambda x: hsv_reference(x, hue=factors["hue"]),
        "contrast": lambda x: (x - x.mean(axis=(0, 1))) * factors["contrast"] + x.mean(axis=(0, 1)),
    }
    orders = {
        0: ("brightness", "saturation", "hue", "contrast"),
        1: ("saturation", "brightness", "contrast", "hue"),
        2: ("contrast", "hue", "brightness", "saturation"),
        3: ("hue", "saturation", "contrast", "brightness"),
    }
    # Values kept inside [0, 1] between steps, where torchvision's and TF's hue agree.
    inner = 0.2 + 0.6 * colours
    for ordering, order in orders.items():
        expected = inner
        for name in order:
            expected = ops[name](expected)
        out = distort_color(chw(inner), ordering, **factors)
        np.testing.assert_allclose(hwc(out), np.clip(expected, 0, 1), atol=1e-5)
    assert torch.equal(distort_color(chw(colours), 4, **factors), chw(colours))
    with pytest.raises(ValueError, match=r"ordering must be in 0\.\.4"):
        distort_color(chw(colours), 5, **factors)


def test_colour_factors_stay_in_their_ranges_and_every_case_is_drawn():
    torch.manual_seed(0)
    transform = DistortColor()
    draws = [transform.make_params([]) for _ in range(5000)]
    orderings = np.bincount([d["ordering"] for d in draws], minlength=5)
    assert orderings.size == 5 and all(800 < count < 1200 for count in orderings)  # 1/5 each
    for name, low, high in (
        ("brightness", -32 / 255, 32 / 255),
        ("saturation", 0.5, 1.5),
        ("hue", -0.2, 0.2),
        ("contrast", 0.5, 1.5),
    ):
        values = np.array([d[name] for d in draws])
        assert values.min() >= low and values.max() < high
        # uniform: the draws fill the range
        assert values.min() < low + 0.01 * (high - low) and values.max() > high - 0.01 * (high - low)
        assert math.isclose(values.mean(), (low + high) / 2, abs_tol=0.02 * (high - low))


def test_distort_color_transform_clips_and_passes_boxes():
    image = tv_tensors.Image(torch.full((3, 4, 4), 1.2))  # a cubic overshoot
    boxes = tv_tensors.BoundingBoxes([[0, 0, 2, 2]], format="XYXY", canvas_size=(4, 4))
    torch.manual_seed(0)
    for _ in range(20):
        out, out_boxes = DistortColor()(image, boxes)
        assert out.max() <= 1.0 and torch.equal(out_boxes, boxes)
    with pytest.raises(TypeError, match="float image"):
        DistortColor()(tv_tensors.Image(torch.zeros(3, 2, 2, dtype=torch.uint8)))


def test_pipeline_steps_are_the_official_order():
    steps = inception_train_transforms(32).transforms
    assert [type(step).__name__ for step in steps] == [
        "ToImage",
        "SampleDistortedBoundingBox",
        "RandomChoice",
        "RandomHorizontalFlip",
        "DistortColor",
        "Normalize",
    ]
    assert steps[3].p == 0.5
    modes = [choice.transforms[-1].interpolation for choice in steps[2].transforms if len(choice.transforms) == 2]
    tensor_modes = [InterpolationMode.BILINEAR, InterpolationMode.BICUBIC, InterpolationMode.NEAREST_EXACT]
    assert modes == [*tensor_modes, InterpolationMode.BICUBIC]
    assert isinstance(inception_eval_transforms(32).transforms[2], v2.Resize)
    with pytest.raises(ValueError, match="size must be a positive integer"):
        inception_eval_transforms(0)
