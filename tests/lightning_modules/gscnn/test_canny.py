"""GSCNN's image gradients against OpenCV itself: ``cv2.Canny(image, 10, 100)`` on synthetic images (steps, ramps,
corners, the image border, channel ties, tiny sizes) and on real CamVid frames in both modes, under bf16 autocast
too; plus the uint8 wrap of the released code, the bounded hysteresis, the output ranges and the errors."""

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from torchvision import tv_tensors
from torchvision.io import decode_image

from datamodules.transforms import IMAGENET_MEAN, IMAGENET_STD, ResizeShorterSide, eval_transforms
from lightning_modules.gscnn.canny import (
    HYSTERESIS_ROUNDS,
    canny_edges,
    hysteresis,
    image_gradients,
    unnormalize,
    wrap_to_uint8,
)

MEAN = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
STD = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
# Two CamVid test frames: a street (0001TP) and the sequence whose Canny chains are among the longest (Seq05VD).
CAMVID_FRAMES = ("0001TP_008550.jpg", "Seq05VD_f00660.jpg")


def normalise(grey_levels: torch.Tensor) -> torch.Tensor:
    """0-255 RGB images → what the DataModules feed the network."""
    return (grey_levels / 255.0 - MEAN) / STD


def opencv(image: np.ndarray) -> np.ndarray:
    """The official call: ``cv2.Canny`` of an ``(H, W, 3)`` uint8 image with thresholds 10 / 100 → 0 / 255."""
    return cv2.Canny(np.ascontiguousarray(image), 10, 100)


def ours(image: np.ndarray, rounds: int | None = None) -> np.ndarray:
    """:func:`canny_edges` of the same ``(H, W, 3)`` uint8 image, on OpenCV's 0 / 255 scale."""
    grey = torch.from_numpy(image).permute(2, 0, 1)[None].float()
    return (canny_edges(grey, rounds)[0, 0] * 255).to(torch.uint8).numpy()


def grey_image(levels: np.ndarray) -> np.ndarray:
    """An ``(H, W)`` array of grey levels as an ``(H, W, 3)`` uint8 image with R = G = B."""
    return np.repeat(np.asarray(levels, dtype=np.uint8)[..., None], 3, axis=2)


def synthetic_images() -> dict[str, np.ndarray]:
    """Small images exercising each part of OpenCV's Canny; most edges touch the image border."""
    columns, rows = np.meshgrid(np.arange(10), np.arange(8))
    images = {
        "vertical step": grey_image(np.where(columns < 4, 60, 180)),
        "horizontal step": grey_image(np.where(rows < 3, 200, 40)),
        "step at the left border": grey_image(np.where(columns < 1, 0, 255)),
        "step at the bottom border": grey_image(np.where(rows < 7, 10, 250)),
        "weak step only": grey_image(np.where(columns < 5, 60, 80)),  # 4·20 = 80: weak, no strong pixel
        "ramp, weak": grey_image(20 + 3 * columns),  # |gx| = 8 · 3 = 24 inside, 12 on the border columns
        "ramp, strong": grey_image(15 * columns),  # |gx| = 120 inside, a plateau that NMS thins at its start
        "vertical ramp": grey_image(200 - 14 * rows),
        "corner square": grey_image(np.where((rows < 4) & (columns < 5), 220, 30)),
        "square inside": grey_image(np.where((rows >= 2) & (rows < 6) & (columns >= 3) & (columns < 7), 0, 140)),
        "diagonal": grey_image(np.where(rows + columns < 8, 200, 50)),
        "anti-diagonal": grey_image(np.where(rows - columns > -2, 90, 10)),
        "shallow slope": grey_image(np.where(3 * rows < columns + 4, 180, 60)),
        "bright pixel": grey_image(np.where((rows == 3) & (columns == 5), 255, 0)),
        "bright corner pixel": grey_image(np.where((rows == 0) & (columns == 9), 255, 0)),
        "contrast fading along the edge": grey_image(
            np.where(columns < 5, 100, 100 + np.array([30, 30, 12] + [10] * 5)[rows])
        ),
        "weak chain apart from a strong one": grey_image(
            np.where(columns < 3, 50, 50 + 120 * (rows < 2)) + np.where(columns >= 7, 8 * (rows >= 4), 0)
        ),
    }
    # Red steps horizontally, green vertically with the same contrast: the pixels where both magnitudes tie take
    # the first channel's gradient (red), which decides their NMS direction.
    tie = np.zeros((8, 10, 3), dtype=np.uint8)
    tie[..., 0] = np.where(columns < 5, 0, 100)
    tie[..., 1] = np.where(rows < 4, 0, 100)
    images["channels tie"] = tie
    tie_swapped = tie[..., [1, 0, 2]]
    images["channels tie, swapped"] = np.ascontiguousarray(tie_swapped)
    colour = np.zeros((8, 10, 3), dtype=np.uint8)
    colour[..., 2] = np.where(columns < 3, 0, 90)
    colour[..., 1] = np.where(rows + columns < 9, 0, 60)
    images["strongest channel differs by pixel"] = colour
    for height, width in [(1, 1), (1, 6), (6, 1), (2, 2), (3, 7)]:
        images[f"tiny {height}×{width}"] = np.random.default_rng(height * 10 + width).integers(
            0, 256, (height, width, 3), dtype=np.uint8
        )
    return images


SYNTHETIC = synthetic_images()


@pytest.mark.parametrize("name", list(SYNTHETIC))
def test_synthetic_images_match_opencv(name):
    image = SYNTHETIC[name]
    expected = opencv(image)
    assert np.array_equal(ours(image), expected), f"{name}\n{expected}\n{ours(image)}"
    assert np.array_equal(ours(image, HYSTERESIS_ROUNDS), expected)


def test_synthetic_cases_are_not_trivial():
    """The cases above contain edges, and also weak pixels that hysteresis drops or keeps."""
    assert opencv(SYNTHETIC["vertical step"]).any() and not opencv(SYNTHETIC["weak step only"]).any()
    fading = SYNTHETIC["contrast fading along the edge"]
    # Strong (4 · 30 = 120) only in the top rows; the weak (4 · 10 = 40) rest of the edge is kept through them.
    assert opencv(fading)[4:].any() and not cv2.Canny(fading, 100, 100)[4:].any()
    apart = SYNTHETIC["weak chain apart from a strong one"]
    # The lower right steps by 8 levels: edges for a high threshold of 30 (4 · 8 = 32), weak for 100, and dropped.
    assert cv2.Canny(apart, 10, 30)[3:, 6:].any() and not opencv(apart)[3:, 6:].any()


@pytest.mark.parametrize("seed", range(6))
def test_random_images_match_opencv(seed):
    """Random images of random sizes; coarse grey levels make magnitude ties, which exercise the > / >= rules."""
    generator = np.random.default_rng(seed)
    for _ in range(20):
        height, width = generator.integers(1, 16, 2)
        levels = generator.integers(0, 4, (height, width, 3)) * generator.choice([5, 30, 85])
        if seed % 2:  # grey images: every channel ties
            levels = np.repeat(levels[..., :1], 3, axis=2)
        image = levels.astype(np.uint8)
        assert np.array_equal(ours(image), opencv(image)), image.transpose(2, 0, 1)


@pytest.mark.parametrize(("step", "edge"), [(24, False), (25, False), (26, True), (150, True)])
def test_device_mode_thresholds_are_opencvs_strict_100(step, edge):
    """A grey step of d levels has the Sobel magnitude 4·d on both sides, so it is an edge iff 4·d > 100
    (cv2.Canny's high threshold, strict): no for d = 25, yes for d = 26. Of the two tied columns OpenCV keeps the
    left one (column 3): a horizontal gradient needs ``m > left`` and ``m >= right``."""
    grey = torch.full((1, 3, 6, 8), 60.0)
    grey[..., 4:] += step
    expected = torch.zeros(1, 1, 6, 8)
    if edge:
        expected[..., 3] = 1.0
    assert torch.equal(image_gradients(normalise(grey)), expected)
    assert np.array_equal(opencv(grey[0].permute(1, 2, 0).numpy().astype(np.uint8)), expected[0, 0].numpy() * 255)


def test_vertical_gradients_keep_the_upper_row():
    """A horizontal step between rows 2 and 3: OpenCV's ``m > up`` and ``m >= down`` keep row 2."""
    grey = torch.full((1, 3, 6, 8), 40.0)
    grey[..., 3:, :] = 200.0
    edges = image_gradients(normalise(grey))
    assert edges[0, 0].nonzero()[:, 0].unique().tolist() == [2]


def camvid_frame(root: Path, name: str, short_side: int | None) -> tuple[torch.Tensor, torch.Tensor]:
    """A CamVid test frame as the DataModules load it: the uint8 ``(3, H, W)`` image (resized to ``short_side``
    first, if given) and the normalised ``(1, 3, H, W)`` network input."""
    image = tv_tensors.Image(decode_image(str(root / "test" / name)))
    if short_side is not None:
        image = ResizeShorterSide(short_side)(image)
    return image.as_subclass(torch.Tensor), eval_transforms()(image)[None]


def official_canny(image_uint8: torch.Tensor, normalised: torch.Tensor, mode: str) -> np.ndarray:
    """OpenCV's edges for ``mode``: of the uint8 image (``"device"``) or, as ``network/gscnn.py`` computes them,
    of the normalised tensor cast with NumPy's ``astype(np.uint8)`` (``"released"``)."""
    if mode == "device":
        return opencv(image_uint8.permute(1, 2, 0).numpy())
    return opencv(normalised[0].permute(1, 2, 0).numpy().astype(np.uint8))


@pytest.mark.parametrize("short_side", [240, None], ids=["240x320", "720x960"])
@pytest.mark.parametrize("mode", ["device", "released"])
@pytest.mark.parametrize("name", CAMVID_FRAMES)
def test_camvid_frames_match_opencv(camvid_root, name, mode, short_side):
    """Exactly OpenCV's edges with the hysteresis run to convergence; with the bounded default (training) a subset
    of them with IoU ≥ 0.99 (measured on all 233 test frames: IoU ≥ 0.9934, the lowest for device mode at 720×960;
    identical on these two frames)."""
    image, normalised = camvid_frame(camvid_root, name, short_side)
    expected = torch.from_numpy(official_canny(image, normalised, mode) > 0)
    scale = 255.0 if mode == "released" else 1.0
    exact = image_gradients(normalised, mode, hysteresis_rounds=None)[0, 0]
    assert set(exact.unique().tolist()) == {0.0, scale}
    assert torch.equal(exact > 0, expected), int(((exact > 0) != expected).sum())
    bounded = image_gradients(normalised, mode)[0, 0] > 0
    assert not (bounded & ~expected).any()
    assert (bounded & expected).sum() / expected.sum() >= 0.99


def test_bf16_autocast_changes_nothing(camvid_root):
    """Under bf16 autocast the image gradients are still computed in float32: a bf16 Sobel would move edges."""
    image, normalised = camvid_frame(camvid_root, CAMVID_FRAMES[0], 240)
    expected = torch.from_numpy(official_canny(image, normalised, "device") > 0).float()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        edges = image_gradients(normalised, hysteresis_rounds=None)
    assert edges.dtype == torch.float32
    assert torch.equal(edges[0, 0], expected)


def test_wrap_follows_numpy_astype_uint8_on_x86():
    # Truncation toward zero, then modulo 256: -1.2 → -1 → 255, -0.5 → 0, 2.7 → 2, 257.9 → 257 → 1.
    values = torch.tensor([-1.2, -0.5, 0.0, 2.7, 255.9, 256.0, 257.9, -1.0, -255.0, -256.5, 511.0])
    expected = torch.tensor([255.0, 0.0, 0.0, 2.0, 255.0, 0.0, 1.0, 255.0, 1.0, 0.0, 255.0])
    assert torch.equal(wrap_to_uint8(values), expected)


def test_unnormalize_recovers_grey_levels():
    grey = torch.randint(0, 256, (2, 3, 4, 5)).float()
    assert torch.allclose(unnormalize(normalise(grey), IMAGENET_MEAN, IMAGENET_STD), grey, atol=1e-4, rtol=0)


def test_released_mode_sees_the_wrapped_image():
    """Normalised values -1.2 and 0.3 become 255 and 0 in uint8: the released code sees a 255-level step falling
    to the right. The real image steps up (about 54 → 141 in red) at the same place, so device mode finds the same
    column; a flat -0.4 wraps to 0 (truncation toward zero), so neither mode finds an edge."""
    images = torch.full((1, 3, 6, 8), 0.3)
    images[..., :4] = -1.2
    released = image_gradients(images, mode="released")
    expected = torch.zeros(1, 1, 6, 8)
    expected[..., 3] = 255.0
    assert torch.equal(released, expected)
    assert torch.equal(image_gradients(images, mode="device"), expected / 255.0)
    flat = torch.full((1, 3, 6, 8), -0.4)
    assert torch.equal(image_gradients(flat, mode="released"), torch.zeros(1, 1, 6, 8))
    assert torch.equal(image_gradients(flat, mode="device"), torch.zeros(1, 1, 6, 8))


def test_device_mode_rounds_and_saturates_like_uint8():
    """A step is an edge iff 4·d > 100 for the uint8 levels: 59.6 | 85.4 rounds to 60 | 85 (d = 25, no edge,
    where the raw 25.8 would give one), 59.6 | 85.6 to 60 | 86 (an edge); levels just outside [0, 255] saturate:
    230.4 | 256.0 is 230 | 255 and -0.8 | 25.2 is 0 | 25 (no edges, where the raw 25.6 and 26 would give them)."""
    for left, right, edge in [(59.6, 85.4, False), (59.6, 85.6, True), (230.4, 256.0, False), (-0.8, 25.2, False)]:
        grey = torch.full((1, 3, 6, 8), left)
        grey[..., 4:] = right
        assert bool(image_gradients(normalise(grey)).any()) == edge, (left, right)


def test_device_mode_output_is_in_zero_one():
    generator = torch.Generator().manual_seed(0)
    images = normalise(torch.randint(0, 256, (2, 3, 16, 12), generator=generator).float()).requires_grad_()
    edges = image_gradients(images)
    assert edges.shape == (2, 1, 16, 12) and edges.dtype == torch.float32
    assert set(edges.unique().tolist()) == {0.0, 1.0}
    assert not edges.requires_grad


def test_bounded_hysteresis_by_hand():
    """A strong pixel at column 0 with a weak chain along columns 1..5 and an isolated weak pixel elsewhere."""
    strong = torch.zeros(1, 1, 3, 8)
    strong[0, 0, 1, 0] = 1.0
    weak = strong.clone()
    weak[0, 0, 1, 1:6] = 1.0
    weak[0, 0, 0, 7] = 1.0
    for rounds, reached in [(0, 0), (2, 2), (5, 5), (9, 5), (None, 5)]:
        expected = torch.zeros(1, 1, 3, 8)
        expected[0, 0, 1, : reached + 1] = 1.0
        assert torch.equal(hysteresis(weak, strong, rounds), expected), rounds


def test_images_not_normalised_are_an_error():
    raw = torch.rand(1, 3, 8, 8) * 255  # 0-255 grey levels passed as if normalised
    with pytest.raises(ValueError, match="pass images normalised with the ImageNet mean / std"):
        image_gradients(raw)
    with pytest.raises(RuntimeError, match="pass images normalised with the ImageNet mean / std"):
        image_gradients(raw, check="async")  # on the CPU the asynchronous assert raises at once
    assert image_gradients(raw, check="off").shape == (1, 1, 8, 8)
    assert image_gradients(raw, mode="released").shape == (1, 1, 8, 8)  # the released cast takes anything
    # One grey level beyond [0, 255] is tolerated (resampling), two are not.
    assert image_gradients(normalise(torch.full((1, 3, 4, 4), 255.5))).sum() == 0
    with pytest.raises(ValueError, match="ImageNet mean / std"):
        image_gradients(normalise(torch.full((1, 3, 4, 4), -2.0)))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"mode": "opencv"}, "mode must be one of"),
        ({"check": "sync"}, "check must be one of"),
        ({"mean": (0.5,)}, "mean and std must have 3 values"),
        ({"hysteresis_rounds": -1}, "hysteresis_rounds must be None or >= 0"),
    ],
)
def test_argument_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        image_gradients(torch.zeros(1, 3, 4, 4), **kwargs)


def test_shape_error():
    with pytest.raises(ValueError, match=r"images must be RGB images of shape \(B, 3, H, W\)"):
        image_gradients(torch.zeros(1, 1, 4, 4))
