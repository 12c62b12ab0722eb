"""TNet: the official parameter counts with their breakdowns, and a traversal of a hand-made image whose
informative cells are known (selection, crops, boxes and (y, x, s) of two levels)."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from lightning_modules.tnet.baselines import bagnet77_baseline, efficientnet_b0_baseline, timm_baseline
from lightning_modules.tnet.fusion import AdditivePositionalFusion
from lightning_modules.tnet.network import TNet, tnet_fmow, tnet_imagenet, tnet_timm
from lightning_modules.tnet.positional_encoding import positional_encoding


def _count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def test_tnet_imagenet_has_the_official_parameter_count():
    model = tnet_imagenet()
    assert _count(model.extractor) == 20_033_664
    assert _count(model.fusion) == 524_800
    assert _count(model.location) == 788_485
    assert _count(model.classifier) == 513_000
    assert _count(model) == 21_859_949


def test_tnet_fmow_has_the_official_parameter_count():
    model = tnet_fmow()
    assert _count(model.extractor) == 4_007_548
    assert _count(model.fusion) == 410_880
    assert _count(model.location) == 19_725
    assert _count(model.classifier) == 79_422
    assert _count(model) == 4_517_575


def test_baselines_have_the_official_parameter_counts():
    assert _count(bagnet77_baseline()) == 20_546_664
    assert _count(efficientnet_b0_baseline()) == 4_086_970


class _BrightnessExtractor(nn.Module):
    """Grid feature of a cell = mean brightness of its (disjoint) block; h = the image's mean, repeated."""

    out_channels = 48

    def __init__(self, grid: int) -> None:
        super().__init__()
        self.grid = grid

    def forward(self, images):
        grey = images.mean(dim=1, keepdim=True)
        return F.adaptive_avg_pool2d(grey, self.grid), grey.mean(dim=(1, 2, 3))[:, None].expand(-1, 48)


class _BrightestCell(nn.Module):
    def forward(self, grid, features):
        return torch.softmax(100 * grid.flatten(1), dim=1)


def _hand_made_tnet(locations_per_level=(1, 1), **kwargs) -> TNet:
    # 64 px images, a 4 × 4 grid with ω = 0.25: 16 px cells, stride 16, no padding, so cells are disjoint.
    return TNet(
        extractor=_BrightnessExtractor(4),
        location=_BrightestCell(),
        fusion=AdditivePositionalFusion(48, pos_dim_divisor=4),
        classifier=nn.Linear(48, 3),
        num_patches=4,
        overlap=0.25,
        base_resolution=16,
        locations_per_level=locations_per_level,
        **kwargs,
    )


def _images() -> torch.Tensor:
    images = torch.full((2, 3, 64, 64), -1.0)
    images[0, :, 41:43, 9:11] = 1.0  # level 0: cell (2, 0); inside it, level 1: cell (2, 2)
    images[1, :, 4:6, 60:62] = 1.0  # level 0: cell (0, 3); inside it, level 1: cell (1, 3)
    return images


def test_traversal_of_a_hand_made_image_follows_the_informative_cells():
    model = _hand_made_tnet().eval()
    images = _images()
    out = model(images)
    assert [c.tolist() for c in out.cells] == [[[8], [3]], [[10], [7]]]
    assert out.boxes[1].tolist() == [[32, 0, 48, 16], [0, 48, 16, 64]]
    assert out.boxes[2].tolist() == [[40, 8, 44, 12], [4, 60, 8, 64]]
    assert [t.tolist() for t in out.positions[1]] == [[2, 0], [0, 3], [1, 1]]
    assert [t.tolist() for t in out.positions[2]] == [[10, 1], [2, 15], [2, 2]]
    assert out.locations_per_image == 2
    # The level-2 features come from the crops themselves: recompute one from the image and its triplet.
    crop = images[:1, :, 40:44, 8:12]
    _, h = model.extractor(F.interpolate(crop, (16, 16), mode="bilinear", align_corners=False))
    encoding = positional_encoding(torch.tensor([10]), torch.tensor([2]), torch.tensor([2]), 12)
    torch.testing.assert_close(out.features[2][:1], model.fusion(h, encoding))
    # The logits are the classifier on the mean of each image's three features.
    mean = torch.stack([f.view(2, -1, 48) for f in out.features], dim=1).flatten(1, 2).mean(dim=1)
    torch.testing.assert_close(out.logits, model.classifier(mean))


def test_log_probs_are_those_of_the_selected_cells():
    model = _hand_made_tnet(locations_per_level=(2,)).eval()
    out = model(_images())
    expected = torch.log(out.probs[0].gather(1, out.cells[0]) + 1e-10).flatten()
    torch.testing.assert_close(out.log_probs[0], expected)
    torch.testing.assert_close(out.location_log_probs(), expected.view(2, 2).sum(dim=1))


def test_locations_per_level_can_change_at_evaluation():
    model = _hand_made_tnet().eval()
    images = _images()
    assert model(images).locations_per_image == 2
    out = model(images, locations_per_level=(3, 2))
    assert out.locations_per_image == 3 + 3 * 2
    assert [f.shape[0] for f in out.features] == [2, 6, 12]
    assert model(images, locations_per_level=()).locations_per_image == 0


def test_bad_locations_and_mismatched_grids_are_refused():
    with pytest.raises(ValueError, match="locations_per_level must list"):
        _hand_made_tnet(locations_per_level=(17,))
    model = _hand_made_tnet()
    model.extractor.grid = 3
    with pytest.raises(ValueError, match=r"\(3, 3\) cells, but the location grid is 4 x 4"):
        model(_images())
    with pytest.raises(ValueError, match=r"images must have shape \(B, 3, H, W\)"):
        model(torch.zeros(3, 64, 64))
    with pytest.raises(ValueError, match="images have 1 channels but the network was built for in_chans=3"):
        model(torch.zeros(1, 1, 64, 64))
    with pytest.raises(ValueError, match="floating-point"):
        model(torch.zeros(1, 3, 64, 64, dtype=torch.uint8))
    with pytest.raises(ValueError, match="locations_per_level must be a tuple"):
        model(_images(), locations_per_level=2)


def test_antialias_changes_only_the_resize():
    images = torch.randn(1, 3, 64, 64)
    plain, smooth = _hand_made_tnet().eval(), _hand_made_tnet(antialias=True).eval()
    smooth.load_state_dict(plain.state_dict())
    h_plain = plain.extractor(F.interpolate(images, (16, 16), mode="bilinear", align_corners=False))[1]
    h_smooth = smooth.extractor(F.interpolate(images, (16, 16), mode="bilinear", antialias=True))[1]
    zero = torch.zeros(1, dtype=torch.long)
    encoding = positional_encoding(zero, zero, zero, 12)
    torch.testing.assert_close(plain(images).features[0], plain.fusion(h_plain, encoding))
    torch.testing.assert_close(smooth(images).features[0], smooth.fusion(h_smooth, encoding))


def test_official_models_run_their_recipes_traversals():
    imagenet = tnet_imagenet(num_classes=10).eval()
    out = imagenet(torch.randn(1, 3, 224, 224))
    assert out.logits.shape == (1, 10) and out.locations_per_image == 3
    assert out.boxes[1][:, 2:].sub(out.boxes[1][:, :2]).unique().tolist() == [77]
    fmow = tnet_fmow(num_classes=5).eval()
    out = fmow(torch.randn(1, 3, 896, 896))
    assert out.locations_per_image == 4
    assert [tuple(b[0, 2:] - b[0, :2]) for b in out.boxes] == [(896, 896), (448, 448), (224, 224)]


def test_feature_weighting_replaces_the_mean():
    model = tnet_timm("test_resnet", 4, 32, 3, 0.5, (2,), feature_weighting=True).eval()
    out = model(torch.randn(2, 3, 64, 64))
    assert out.feature_weights.shape == (2, 3)
    torch.testing.assert_close(out.feature_weights.sum(dim=1), torch.ones(2))


def test_downsampled_baseline_resizes_first():
    model = timm_baseline("test_resnet", 4, input_size=32).eval()
    images = torch.randn(2, 3, 128, 128)
    small = F.interpolate(images, (32, 32), mode="bilinear", align_corners=False)
    torch.testing.assert_close(model(images), model.classifier(model.extractor(small)[1]))


def _gflops(model: nn.Module, side: int) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model.eval()(torch.zeros(1, 3, side, side))
    return counter.get_total_flops() / 1e9


def test_fmow_flops_at_896_are_the_specs_within_5_percent():
    # The spec's TF-profiler counts of the official models: TNet-fMoW with 4 locations ≈ 3.9 G, EN-B0 12.56 G.
    tnet, baseline = _gflops(tnet_fmow(), 896), _gflops(efficientnet_b0_baseline(), 896)
    assert tnet == pytest.approx(3.9, rel=0.05)
    assert baseline == pytest.approx(12.56, rel=0.05)
    assert tnet == pytest.approx(5 * _gflops(efficientnet_b0_baseline(), 224), rel=0.01)
