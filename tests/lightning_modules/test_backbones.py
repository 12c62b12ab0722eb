import pytest
import timm
import torch

from lightning_modules.backbones import Backbone, PretrainedWeightsError

# torchvision's ResNet-50 has 25,557,032 parameters, of which the 2048→1000 classifier holds
# 2048 * 1000 + 1000: the feature extractor keeps the rest.
RESNET50_FEATURE_PARAMS = 25_557_032 - (2048 * 1000 + 1000)


def n_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize(
    ("name", "channels"),
    [
        ("resnet18", [64, 128, 256, 512]),
        ("resnet50", [256, 512, 1024, 2048]),
        ("efficientnet_b0", [24, 40, 112, 320]),
    ],
)
@pytest.mark.parametrize(
    ("output_stride", "reductions"), [(8, [4, 8, 8, 8]), (16, [4, 8, 16, 16]), (32, [4, 8, 16, 32])]
)
def test_channels_and_output_stride(name, channels, output_stride, reductions):
    backbone = Backbone(name, output_stride=output_stride).eval()
    assert backbone.channels == channels
    assert backbone.reductions == reductions
    with torch.no_grad():
        features = backbone(torch.randn(1, 3, 96, 128))
    assert [f.shape[1] for f in features] == channels
    assert [tuple(f.shape[-2:]) for f in features] == [(96 // r, 128 // r) for r in reductions]


def test_chosen_stages():
    backbone = Backbone("resnet18", out_indices=(0, 4))
    assert backbone.channels == [64, 512]
    assert backbone.reductions == [2, 8]


def test_dilation_keeps_parameter_count():
    dilated = Backbone("resnet50", output_stride=8)
    plain = Backbone("resnet50", output_stride=32)
    assert n_params(dilated) == n_params(plain) == RESNET50_FEATURE_PARAMS
    # Dilation, not stride, is what changed: layer4's 3x3 convs dilate by 4 at output stride 8.
    conv = dilated.body.layer4[1].conv2
    assert conv.dilation == (4, 4) and conv.stride == (1, 1)


def test_channels_last_gives_same_features():
    torch.manual_seed(0)
    plain = Backbone("test_resnet").eval()
    fast = Backbone("test_resnet", channels_last=True).eval()
    fast.load_state_dict(plain.state_dict())
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        for a, b in zip(plain(x), fast(x), strict=True):
            assert b.is_contiguous(memory_format=torch.channels_last)
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_unknown_name_suggests_close_names():
    with pytest.raises(ValueError, match=r"Unknown backbone 'resnet5O'.*Did you mean.*resnet50"):
        Backbone("resnet5O")


def test_bad_output_stride():
    with pytest.raises(ValueError, match="output_stride must be one of"):
        Backbone("resnet18", output_stride=4)


def test_model_without_dilation_support():
    with pytest.raises(ValueError, match="cannot be used as a dilated feature extractor"):
        Backbone("test_vit", output_stride=8)


def test_pretrained_without_network_says_how_to_load_a_file():
    with pytest.raises(PretrainedWeightsError, match=r"could not be fetched.*pretrained_path="):
        Backbone("test_resnet", pretrained=True)


def test_pretrained_path_loads_local_weights(tmp_path):
    torch.manual_seed(1)
    source = timm.create_model("test_resnet")
    path = tmp_path / "weights.pth"
    torch.save(source.state_dict(), path)
    backbone = Backbone("test_resnet", pretrained_path=path)
    loaded = backbone.body.state_dict()
    for key, value in loaded.items():
        torch.testing.assert_close(value, source.state_dict()[key], rtol=0, atol=0)
    assert len(loaded) > 10


def test_pretrained_path_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"missing\.pth"):
        Backbone("test_resnet", pretrained_path=tmp_path / "missing.pth")
