"""GSCNN's image gradients: the uint8 wrap of the released code, the cv2.Canny(10, 100) thresholds on the 0-255
scale, the bounded hysteresis, the output ranges and the normalisation check."""

import kornia
import pytest
import torch

from datamodules.transforms import IMAGENET_MEAN, IMAGENET_STD
from lightning_modules.gscnn.canny import canny_edges, hysteresis, image_gradients, unnormalize, wrap_to_uint8

MEAN = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
STD = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)


def normalise(grey_levels: torch.Tensor) -> torch.Tensor:
    """0-255 RGB images → what the DataModules feed the network."""
    return (grey_levels / 255.0 - MEAN) / STD


def step_image(left: float, right: float, height: int = 6, width: int = 8) -> torch.Tensor:
    """A grey (R = G = B) vertical step: columns < width / 2 at ``left``, the others at ``right``."""
    image = torch.full((1, 3, height, width), float(left))
    image[..., width // 2 :] = right
    return image


def test_wrap_follows_numpy_astype_uint8_on_x86():
    # Truncation toward zero, then modulo 256: -1.2 → -1 → 255, -0.5 → 0, 2.7 → 2, 257.9 → 257 → 1.
    values = torch.tensor([-1.2, -0.5, 0.0, 2.7, 255.9, 256.0, 257.9, -1.0, -255.0, -256.5, 511.0])
    expected = torch.tensor([255.0, 0.0, 0.0, 2.0, 255.0, 0.0, 1.0, 255.0, 1.0, 0.0, 255.0])
    assert torch.equal(wrap_to_uint8(values), expected)


def test_unnormalize_recovers_grey_levels():
    grey = torch.randint(0, 256, (2, 3, 4, 5)).float()
    assert torch.allclose(unnormalize(normalise(grey), IMAGENET_MEAN, IMAGENET_STD), grey, atol=1e-4, rtol=0)


@pytest.mark.parametrize(("step", "edge"), [(24, False), (27, True), (150, True)])
def test_device_mode_thresholds_are_opencvs_10_and_100(step, edge):
    """A grey step of d levels has the unnormalised Sobel magnitude 4·d on the 0-255 scale, so it is an edge
    (strong) iff 4·d > 100 (cv2.Canny's high threshold): no for d = 24, yes for d = 27. The two columns either
    side of the step tie; OpenCV and kornia keep the left one (column 3)."""
    edges = image_gradients(normalise(step_image(60, 60 + step)))
    expected = torch.zeros(1, 1, 6, 8)
    if edge:
        expected[..., 3] = 1.0
    assert torch.equal(edges, expected)


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


def test_released_mode_is_canny_of_the_wrap():
    generator = torch.Generator().manual_seed(0)
    images = normalise(torch.randint(0, 256, (2, 3, 12, 10), generator=generator).float())
    released = image_gradients(images, mode="released")
    assert torch.equal(released, canny_edges(wrap_to_uint8(images) / 255.0) * 255.0)
    assert set(released.unique().tolist()) <= {0.0, 255.0}


def test_device_mode_output_is_in_zero_one():
    generator = torch.Generator().manual_seed(0)
    images = normalise(torch.randint(0, 256, (2, 3, 16, 12), generator=generator).float()).requires_grad_()
    edges = image_gradients(images)
    assert edges.shape == (2, 1, 16, 12) and edges.dtype == torch.float32
    assert set(edges.unique().tolist()) == {0.0, 1.0}
    assert not edges.requires_grad


def test_bounded_hysteresis_by_hand():
    """A strong pixel at column 0 with a weak chain along columns 1..5 and an isolated weak pixel elsewhere."""
    edges = torch.zeros(1, 1, 3, 8)
    edges[0, 0, 1, 0] = 1.0
    edges[0, 0, 1, 1:6] = 0.5
    edges[0, 0, 0, 7] = 0.5
    for rounds, reached in [(0, 0), (2, 2), (5, 5), (9, 5)]:
        expected = torch.zeros(1, 1, 3, 8)
        expected[0, 0, 1, : reached + 1] = 1.0
        assert torch.equal(hysteresis(edges, rounds), expected), rounds


def test_unbounded_hysteresis_is_kornias_loop():
    generator = torch.Generator().manual_seed(3)
    image = torch.rand(2, 3, 20, 20, generator=generator)
    _, kornia_edges = kornia.filters.canny(image, 10 / 255, 100 / 255, kernel_size=1, hysteresis=True)
    assert torch.equal(canny_edges(image, None), kornia_edges)
    assert torch.equal(canny_edges(image, 400), kornia_edges)


def test_images_not_normalised_are_an_error():
    raw = torch.rand(1, 3, 8, 8) * 255  # 0-255 grey levels passed as if normalised
    with pytest.raises(ValueError, match="images not normalised with the ImageNet mean/std"):
        image_gradients(raw)
    with pytest.raises(RuntimeError, match="images not normalised with the ImageNet mean/std"):
        image_gradients(raw, check="async")  # on the CPU the asynchronous assert raises at once
    assert image_gradients(raw, check="off").shape == (1, 1, 8, 8)
    assert image_gradients(raw, mode="released").shape == (1, 1, 8, 8)  # the released cast takes anything
    # One grey level beyond [0, 255] is tolerated (resampling), two are not.
    assert image_gradients(normalise(torch.full((1, 3, 4, 4), 255.5))).sum() == 0
    with pytest.raises(ValueError, match="ImageNet mean/std"):
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
