"""Value tests of the evaluation protocols against references written independently here."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lightning_modules.inference import (
    COMBINES,
    DEFAULT_SCALES,
    predict,
    predict_logits,
    predict_multiscale,
    predict_sliding,
)

NUM_CLASSES = 4


class DictNet(nn.Module):
    """Wraps a module into the segmentation contract: ``{"out": logits, "aux": ...}``."""

    def __init__(self, body: nn.Module) -> None:
        super().__init__()
        self.body = body

    def forward(self, images: Tensor) -> dict[str, Tensor]:
        logits = self.body(images)
        return {"out": logits, "aux": logits.detach() * 0}


class ConstantNet(nn.Module):
    """Returns logits equal to one everywhere, whatever the input."""

    def forward(self, images: Tensor) -> dict[str, Tensor]:
        batch, _, height, width = images.shape
        return {"out": images.new_ones(batch, NUM_CLASSES, height, width)}


class RecordingNet(DictNet):
    """Records the spatial size of every input it sees."""

    def __init__(self, body: nn.Module) -> None:
        super().__init__(body)
        self.sizes: list[tuple[int, int]] = []

    def forward(self, images: Tensor) -> dict[str, Tensor]:
        self.sizes.append(tuple(images.shape[-2:]))
        return super().forward(images)


def make_net(kernel_size: int, seed: int = 0) -> DictNet:
    torch.manual_seed(seed)
    return DictNet(nn.Conv2d(3, NUM_CLASSES, kernel_size, padding=kernel_size // 2)).eval()


def make_images(height: int, width: int, batch: int = 2, seed: int = 1) -> Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(batch, 3, height, width, generator=generator)


@pytest.fixture
def conv3() -> DictNet:
    return make_net(3)


@pytest.fixture
def pointwise() -> DictNet:
    return make_net(1)


def reference_sliding(net: nn.Module, images: Tensor, window: int, starts_h: list[int], starts_w: list[int]) -> Tensor:
    """Averages the logits of the given windows, with the window positions spelled out by the test."""
    total = torch.zeros(images.shape[0], NUM_CLASSES, *images.shape[-2:])
    count = torch.zeros(*images.shape[-2:])
    for top in starts_h:
        for left in starts_w:
            crop = images[:, :, top : top + window, left : left + window]
            total[:, :, top : top + window, left : left + window] += net(crop)["out"]
            count[top : top + window, left : left + window] += 1
    assert (count > 0).all()
    return total / count


def reference_multiscale(
    net: nn.Module, images: Tensor, scales: tuple[float, ...], flip: bool, softmax: bool
) -> Tensor:
    height, width = images.shape[-2:]
    passes = []
    for scale in scales:
        scaled = F.interpolate(
            images, size=(round(height * scale), round(width * scale)), mode="bilinear", align_corners=False
        )
        outputs = [net(scaled)["out"]]
        if flip:
            outputs.append(net(scaled.flip(-1))["out"].flip(-1))
        for logits in outputs:
            resized = F.interpolate(logits, size=(height, width), mode="bilinear", align_corners=False)
            passes.append(resized.softmax(dim=1) if softmax else resized)
    return torch.stack(passes).mean(dim=0)


@torch.no_grad()
def test_predict_logits_returns_out(conv3: DictNet) -> None:
    images = make_images(20, 24)
    logits = predict_logits(conv3, images)
    assert logits.shape == (2, NUM_CLASSES, 20, 24)
    torch.testing.assert_close(logits, conv3.body(images))


@torch.no_grad()
@pytest.mark.parametrize("window", [(20, 24), (20, 30), (25, 24), 32])
def test_sliding_with_window_covering_image_equals_single(conv3: DictNet, window: int | tuple[int, int]) -> None:
    # Padding the bottom/right with zeros then cropping back is exact for this single zero-padded 3x3 conv,
    # whose border pixels already see zeros; a deeper net would see its own nonzero features there, hence the
    # pointwise test below for the general padding guarantee.
    images = make_images(20, 24)
    actual = predict_sliding(conv3, images, window, pad_value=(0.0, 0.0, 0.0))
    torch.testing.assert_close(actual, predict_logits(conv3, images), atol=1e-6, rtol=0)


@torch.no_grad()
@pytest.mark.parametrize("window", [32, (40, 16), (8, 50)])
def test_sliding_pads_image_smaller_than_window(pointwise: DictNet, window: int | tuple[int, int]) -> None:
    # A pointwise (1x1 conv) net's logit at a pixel depends on that pixel only, so the zero padding added up
    # to the window cannot leak into the cropped-back logits; a net with a larger receptive field (stacked
    # 3x3 convs) would see the padded zeros near the bottom/right border and legitimately differ there.
    images = make_images(20, 24)
    net = RecordingNet(pointwise.body)
    logits = predict_sliding(net, images, window)
    assert logits.shape == (2, NUM_CLASSES, 20, 24)
    torch.testing.assert_close(logits, predict_logits(pointwise, images), atol=1e-6, rtol=0)
    window_hw = (window, window) if isinstance(window, int) else window
    assert all(size == window_hw for size in net.sizes)


@torch.no_grad()
@pytest.mark.parametrize(
    ("size", "window", "stride"),
    [
        ((45, 47), 16, 10),
        ((45, 47), 16, None),
        ((32, 32), 8, 8),
        ((33, 20), (10, 7), (3, 5)),
        ((7, 50), 16, 1),
    ],
)
def test_sliding_pointwise_equals_single(
    pointwise: DictNet,
    size: tuple[int, int],
    window: int | tuple[int, int],
    stride: int | tuple[int, int] | None,
) -> None:
    images = make_images(*size)
    torch.testing.assert_close(
        predict_sliding(pointwise, images, window, stride),
        predict_logits(pointwise, images),
        atol=1e-6,
        rtol=0,
    )


@torch.no_grad()
@pytest.mark.parametrize(("size", "window", "stride"), [((45, 47), 16, 10), ((45, 47), 16, None), ((9, 30), 4, 4)])
def test_sliding_covers_every_pixel(size: tuple[int, int], window: int, stride: int | None) -> None:
    # Constant logits of 1: the average is 1 exactly where the count is positive and NaN where no window went.
    logits = predict_sliding(ConstantNet(), make_images(*size), window, stride)
    assert logits.shape == (2, NUM_CLASSES, *size)
    assert torch.equal(logits, torch.ones_like(logits))


@torch.no_grad()
def test_sliding_window_positions_and_default_stride(pointwise: DictNet) -> None:
    net = RecordingNet(pointwise.body)
    predict_sliding(net, make_images(45, 47), 16, 10)
    # rows start at 0, 10, 20, 29 and columns at 0, 10, 20, 30, 31: 4 * 5 windows, all of the window's size.
    assert net.sizes == [(16, 16)] * 20
    net.sizes.clear()
    predict_sliding(net, make_images(45, 47), 15)
    # default stride round(2 / 3 * 15) = 10: rows 0, 10, 20, 30 and columns 0, 10, 20, 30, 32.
    assert len(net.sizes) == 4 * 5


@torch.no_grad()
def test_sliding_averages_overlapping_windows(conv3: DictNet) -> None:
    # With a 3x3 conv each window's border logits differ from the whole image's, so this checks the averaging.
    images = make_images(45, 47)
    expected = reference_sliding(conv3, images, 16, [0, 10, 20, 29], [0, 10, 20, 30, 31])
    actual = predict_sliding(conv3, images, 16, 10)
    torch.testing.assert_close(actual, expected, atol=1e-6, rtol=0)
    assert not torch.allclose(actual, predict_logits(conv3, images), atol=1e-3)


@torch.no_grad()
def test_multiscale_single_scale_without_flip_equals_single(conv3: DictNet) -> None:
    images = make_images(20, 24)
    logits = predict_logits(conv3, images)
    probabilities = predict_multiscale(conv3, images, scales=(1.0,), flip=False)
    torch.testing.assert_close(probabilities, logits.softmax(dim=1), atol=1e-6, rtol=0)
    torch.testing.assert_close(
        predict_multiscale(conv3, images, scales=(1.0,), flip=False, combine="logits"),
        logits,
        atol=1e-6,
        rtol=0,
    )


@torch.no_grad()
def test_multiscale_flip_averages_flipped_pass(conv3: DictNet) -> None:
    images = make_images(20, 24)
    plain = conv3(images)["out"]
    flipped = conv3(images.flip(-1))["out"].flip(-1)
    assert not torch.allclose(plain, flipped, atol=1e-3), "the test net must not be flip-equivariant"
    actual = predict_multiscale(conv3, images, scales=(1.0,), flip=True, combine="logits")
    torch.testing.assert_close(actual, (plain + flipped) / 2, atol=1e-6, rtol=0)


@torch.no_grad()
@pytest.mark.parametrize("flip", [False, True])
@pytest.mark.parametrize("combine", ["softmax", "logits"])
def test_multiscale_two_scales_matches_reference(conv3: DictNet, flip: bool, combine: str) -> None:
    images = make_images(21, 26)
    scales = (0.5, 1.5)
    expected = reference_multiscale(conv3, images, scales, flip, softmax=combine == "softmax")
    actual = predict_multiscale(conv3, images, scales=scales, flip=flip, combine=combine)
    assert actual.shape == (2, NUM_CLASSES, 21, 26)
    torch.testing.assert_close(actual, expected, atol=1e-6, rtol=1e-5)


@torch.no_grad()
def test_multiscale_default_scales_are_probabilities(conv3: DictNet) -> None:
    images = make_images(16, 20)
    probabilities = predict_multiscale(conv3, images)
    expected = reference_multiscale(conv3, images, DEFAULT_SCALES, flip=True, softmax=True)
    torch.testing.assert_close(probabilities, expected, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(probabilities.sum(dim=1), torch.ones(2, 16, 20))


@torch.no_grad()
def test_multiscale_with_sliding_window(pointwise: DictNet) -> None:
    images = make_images(30, 34)
    expected = predict_multiscale(pointwise, images, scales=(0.75, 1.25))
    actual = predict_multiscale(pointwise, images, scales=(0.75, 1.25), window=12, stride=5)
    torch.testing.assert_close(actual, expected, atol=1e-6, rtol=0)


@torch.no_grad()
def test_predict_dispatches(conv3: DictNet) -> None:
    images = make_images(20, 24)
    torch.testing.assert_close(predict(conv3, images), predict_logits(conv3, images))
    torch.testing.assert_close(
        predict(conv3, images, mode="sliding", window=12, stride=6), predict_sliding(conv3, images, 12, 6)
    )
    torch.testing.assert_close(
        predict(conv3, images, mode="multiscale", scales=(0.5, 1.0), combine="logits"),
        predict_multiscale(conv3, images, scales=(0.5, 1.0), combine="logits"),
    )


@torch.no_grad()
@pytest.mark.parametrize("mode", ["single", "sliding", "multiscale"])
def test_keeps_dtype_and_training_mode(mode: str) -> None:
    net = make_net(3).double().train()
    kwargs = {"window": 8} if mode == "sliding" else {}
    scores = predict(net, make_images(12, 14).double(), mode=mode, **kwargs)
    assert scores.dtype == torch.float64
    assert net.training


def test_gradients_flow_when_enabled(conv3: DictNet) -> None:
    scores = predict_multiscale(conv3, make_images(12, 14), scales=(0.5, 1.0), window=8)
    scores.sum().backward()
    assert conv3.body.weight.grad is not None


class MissingOutNet(nn.Module):
    def forward(self, images: Tensor) -> dict[str, Tensor]:
        return {"logits": images, "aux": images}


class TensorNet(nn.Module):
    def forward(self, images: Tensor) -> Tensor:
        return images


class DownsamplingNet(nn.Module):
    def forward(self, images: Tensor) -> dict[str, Tensor]:
        return {"out": images[:, :, ::2, ::2]}


def test_error_when_out_missing() -> None:
    with pytest.raises(ValueError, match=r"no key 'out'.*keys found: \['aux', 'logits'\]"):
        predict_logits(MissingOutNet(), make_images(8, 8))


def test_error_when_output_not_dict() -> None:
    with pytest.raises(ValueError, match="must return a dict"):
        predict_logits(TensorNet(), make_images(8, 8))


def test_error_when_out_not_at_input_resolution() -> None:
    with pytest.raises(ValueError, match=r"\(2, K, 8, 8\).*got \(2, 3, 4, 4\)"):
        predict_logits(DownsamplingNet(), make_images(8, 8))


def test_error_on_bad_mode(conv3: DictNet) -> None:
    with pytest.raises(ValueError, match=r"unknown inference mode 'tta'.*'single', 'multiscale', 'sliding'"):
        predict(conv3, make_images(8, 8), mode="tta")


def test_error_on_single_mode_kwargs(conv3: DictNet) -> None:
    with pytest.raises(ValueError, match="takes no keyword arguments"):
        predict(conv3, make_images(8, 8), window=4)


@pytest.mark.parametrize("window", [0, -3, (8, 0), (8,), 2.5, True])
def test_error_on_bad_window(conv3: DictNet, window: object) -> None:
    with pytest.raises(ValueError, match="window"):
        predict_sliding(conv3, make_images(8, 8), window)


@pytest.mark.parametrize("stride", [0, (4, 0), 9])
def test_error_on_bad_stride(conv3: DictNet, stride: object) -> None:
    with pytest.raises(ValueError, match="stride"):
        predict_sliding(conv3, make_images(8, 8), 8, stride)


@pytest.mark.parametrize(
    ("scales", "match"), [((), "must not be empty"), ((1.0, 0.0), "positive"), ((-0.5,), "positive")]
)
def test_error_on_bad_scales(conv3: DictNet, scales: tuple[float, ...], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        predict_multiscale(conv3, make_images(8, 8), scales=scales)


def test_error_on_bad_combine_and_stride_without_window(conv3: DictNet) -> None:
    with pytest.raises(ValueError, match="combine"):
        predict_multiscale(conv3, make_images(8, 8), combine="mean")
    with pytest.raises(ValueError, match="stride is only used with a sliding window"):
        predict_multiscale(conv3, make_images(8, 8), stride=4)


@pytest.mark.parametrize("images", [torch.zeros(3, 8, 8), torch.zeros(1, 3, 8, 8, dtype=torch.long)])
def test_error_on_bad_images(conv3: DictNet, images: Tensor) -> None:
    with pytest.raises(ValueError, match="images must"):
        predict(conv3, images)


class InputRecordingNet(nn.Module):
    """Pointwise logits; keeps every input it is given."""

    def __init__(self) -> None:
        super().__init__()
        self.inputs: list[Tensor] = []

    def forward(self, images: Tensor) -> dict[str, Tensor]:
        self.inputs.append(images.clone())
        return {"out": images[:, :1].expand(-1, NUM_CLASSES, -1, -1)}


@torch.no_grad()
@pytest.mark.parametrize("mode", ["sliding", "multiscale"])
def test_padding_holds_a_black_pixel_as_the_training_crops_do(mode: str) -> None:
    # Training crops pad the uint8 image with 0, i.e. (0 - mean) / std once normalised with ImageNet statistics.
    net = InputRecordingNet()
    images = make_images(10, 12, batch=1)
    if mode == "sliding":
        predict_sliding(net, images, (16, 20))
    else:
        predict_multiscale(net, images, scales=(1.0,), flip=True, window=(16, 20), combine="exp_sum")
    black = torch.tensor([-2.1179, -2.0357, -1.8044])
    for seen in net.inputs:
        assert seen.shape == (1, 3, 16, 20)
        image = seen if torch.equal(seen[..., :10, :12], images) else seen.flip(-1)
        torch.testing.assert_close(image[..., :10, :12], images)
        for padded in (image[0, :, 10:, :], image[0, :, :, 12:]):
            torch.testing.assert_close(padded, black[:, None, None].expand_as(padded), atol=1e-4, rtol=0)


def test_pad_value_must_match_the_channels(pointwise: DictNet) -> None:
    with pytest.raises(ValueError, match="one value per image channel"):
        predict_sliding(pointwise, make_images(8, 8), 12, pad_value=(0.0, 0.0))
    with pytest.raises(ValueError, match="pass pad_value"):
        predict_sliding(ConstantNet(), torch.zeros(1, 2, 8, 8), 12)


# Logit bias by input height: confidently class 0 at height 8, mildly class 1 at heights 16 and 24.
SCALE_BIAS = {8: (5.0, 0.0, 0.0, 0.0), 16: (0.0, 3.0, 0.0, 0.0), 24: (0.0, 3.0, 0.0, 0.0)}


class ScaleConfidentNet(nn.Module):
    """Logits whose confidence depends on the input height (:data:`SCALE_BIAS`), plus a small image-dependent
    term, so that flips and resizes matter."""

    def forward(self, images: Tensor) -> dict[str, Tensor]:
        bias = torch.tensor(SCALE_BIAS[images.shape[-2]], dtype=images.dtype)[None, :, None, None]
        ramp = torch.linspace(0, 0.2, images.shape[-1], dtype=images.dtype)
        return {"out": bias + 0.1 * images[:, :1] * ramp}


# A black pixel after ImageNet normalisation, (0 - mean) / std: what training crops pad with.
BLACK = tuple(-mean / std for mean, std in zip((0.485, 0.456, 0.406), (0.229, 0.224, 0.225), strict=True))


def pad_black(image: Tensor, height: int, width: int) -> Tensor:
    """PyTorch-Encoding's pad_image: bottom / right up to (height, width), channel c filled with BLACK[c]."""
    pad_h, pad_w = max(height - image.shape[2], 0), max(width - image.shape[3], 0)
    return torch.cat(
        [F.pad(image[:, c : c + 1], (0, pad_w, 0, pad_h), value=BLACK[c]) for c in range(image.shape[1])], dim=1
    )


def reference_exp_sum(net: nn.Module, images: Tensor, scales: tuple[float, ...], window: int | None) -> Tensor:
    """PyTorch-Encoding's MultiEvalModule, written out (stride window // 2): per window exp(logits + flipped
    logits); windows every stride from 0, the last ones running past the image and padded with black; windows
    averaged; bilinear resize with align_corners=True; summed over scales."""
    height, width = images.shape[-2:]
    total = torch.zeros(images.shape[0], NUM_CLASSES, height, width, dtype=torch.float64)
    for scale in scales:
        size = (round(height * scale), round(width * scale))
        scaled = F.interpolate(images, size=size, mode="bilinear", align_corners=True)

        def score(crop: Tensor) -> Tensor:
            return (net(crop)["out"] + net(crop.flip(3))["out"].flip(3)).exp()

        if window is None:
            scores = score(scaled)
        else:
            stride = window // 2
            image = pad_black(scaled, window, window)
            ph, pw = image.shape[-2:]
            scores = torch.zeros(images.shape[0], NUM_CLASSES, ph, pw, dtype=torch.float64)
            count = torch.zeros(ph, pw, dtype=torch.float64)
            for row in range(math.ceil((ph - window) / stride) + 1):
                for col in range(math.ceil((pw - window) / stride) + 1):
                    h0, w0 = row * stride, col * stride
                    h1, w1 = min(h0 + window, ph), min(w0 + window, pw)
                    output = score(pad_black(image[:, :, h0:h1, w0:w1], window, window))
                    scores[:, :, h0:h1, w0:w1] += output[:, :, : h1 - h0, : w1 - w0]
                    count[h0:h1, w0:w1] += 1
            scores = (scores / count)[:, :, : size[0], : size[1]]
        total += F.interpolate(scores, size=(height, width), mode="bilinear", align_corners=True)
    return total


@torch.no_grad()
def test_exp_sum_is_pytorch_encodings_rule_and_picks_the_confident_scale() -> None:
    net = ScaleConfidentNet()
    images = make_images(16, 20).double()
    kwargs = {"scales": (0.5, 1.0, 1.5), "flip": True, "align_corners": True}  # heights 8, 16, 24
    actual = predict_multiscale(net, images, combine="exp_sum", **kwargs)
    torch.testing.assert_close(actual, reference_exp_sum(net, images, kwargs["scales"], None), rtol=1e-10, atol=0)
    # exp(10) + 2 exp(0) for class 0 against exp(0) + 2 exp(6) for class 1: the confident scale wins, while
    # averaging logits (5 against 6) or probabilities picks class 1 everywhere.
    assert (actual.argmax(dim=1) == 0).all()
    for combine in COMBINES[:2]:
        assert (predict_multiscale(net, images, combine=combine, **kwargs).argmax(dim=1) == 1).all()


@torch.no_grad()
def test_exp_sum_with_padded_windows_is_the_official_sliding_test(conv3: DictNet) -> None:
    # A 3x3 conv's window-border logits differ between overlapping windows, so exp-then-average differs from
    # average-then-exp (PyTorch-Encoding exponentiates each window), and a window that runs past the image sees
    # the black padding. Scale 0.5 gives 8x10: the windows at 0 and 4 (ending at 12) run past the right edge.
    net = conv3.double()
    images = make_images(16, 20).double()
    kwargs = {"scales": (0.5, 1.0, 1.5), "flip": True, "window": 8, "stride": 4, "align_corners": True}
    actual = predict_multiscale(net, images, combine="exp_sum", last_window="padded", **kwargs)
    torch.testing.assert_close(actual, reference_exp_sum(net, images, kwargs["scales"], 8), rtol=1e-10, atol=0)
    shifted = predict_multiscale(net, images, combine="exp_sum", **kwargs)
    assert not torch.allclose(shifted, actual, rtol=1e-3, atol=0)


@torch.no_grad()
def test_padded_windows_keep_the_stride_and_run_past_the_edge(pointwise: DictNet) -> None:
    net = RecordingNet(pointwise.body)
    images = make_images(45, 47)
    logits = predict_sliding(net, images, 16, 10, last_window="padded")
    # ceil((45 - 16) / 10) + 1 = 4 rows (0..30, the last ending at 46) and ceil(31 / 10) + 1 = 5 columns.
    assert net.sizes == [(16, 16)] * 20
    torch.testing.assert_close(logits, predict_logits(pointwise, images), atol=1e-6, rtol=0)
    with pytest.raises(ValueError, match="last_window"):
        predict_sliding(net, images, 16, 10, last_window="edge")


def test_exp_sum_computes_in_at_least_float32(conv3: DictNet) -> None:
    with torch.no_grad():
        scores = predict_multiscale(conv3.bfloat16(), make_images(8, 10).bfloat16(), scales=(1.0,), combine="exp_sum")
    assert scores.dtype == torch.float32
