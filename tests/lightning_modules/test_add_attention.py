"""add_attention: SE / ECA / CBAM in the residual blocks of timm CNNs, and the backbones built with ``attention``.

The expected parameter counts come from the blocks' formulas over each architecture's block widths, written here
from the architectures' stage tables (and checked against a walk over the plain model's BatchNorm layers), not from
add_attention's own helpers.
"""

import math

import pytest
import timm
import torch
from timm.models import _efficientnet_blocks as efficientnet_blocks
from timm.models import regnet, resnet
from torch import nn

from lightning_modules.add_attention import add_attention
from lightning_modules.backbones import Backbone
from lightning_modules.blocks.channel import CBAM, ECA, SqueezeExcite
from lightning_modules.classification_models import create_attention_mobilenetv2, create_attention_resnet
from lightning_modules.danet import DANet
from lightning_modules.fcn import FCN
from lightning_modules.gscnn import GSCNN
from lightning_modules.sanet import SANet

IMAGENET_MEAN = torch.tensor([0.485, 0.456, 0.406])[:, None, None]
IMAGENET_STD = torch.tensor([0.229, 0.224, 0.225])[:, None, None]


def stages(*widths_and_depths: tuple[int, int]) -> list[int]:
    """Output width of every block, from (stage width, blocks in the stage) pairs."""
    return [width for width, depth in widths_and_depths for _ in range(depth)]


# Output channels of every residual block, from the papers' / timm configs' stage tables.
RESNET50 = stages((256, 3), (512, 4), (1024, 6), (2048, 3))
MOBILENETV2 = stages((16, 1), (24, 2), (32, 3), (64, 4), (96, 3), (160, 3), (320, 1))
WIDTHS: dict[str, list[int]] = {
    "resnet18": stages((64, 2), (128, 2), (256, 2), (512, 2)),
    "resnet50": RESNET50,
    "resnext50_32x4d": RESNET50,
    "regnety_002": stages((24, 1), (56, 1), (152, 4), (368, 7)),
    "mobilenetv2_100": MOBILENETV2,
    "efficientnet_b0": stages((16, 1), (24, 2), (40, 2), (80, 3), (112, 3), (192, 4), (320, 1)),
    "mobilenetv3_small_100": stages((16, 1), (24, 2), (40, 3), (48, 2), (96, 3)),
    "mnasnet_100": stages((16, 1), (24, 3), (40, 3), (80, 3), (96, 2), (192, 4), (320, 1)),
}


def se_params(channels: int, r: int = 16) -> int:
    """Two 1×1 convolutions with biases, C → floor(C / r) → C."""
    reduced = channels // r
    return 2 * channels * reduced + reduced + channels


def eca_k(channels: int) -> int:
    """ψ(C): t = int(|(log2 C + 1) / 2|), k = t if odd else t + 1."""
    t = int(abs((math.log2(channels) + 1) / 2))
    return t if t % 2 else t + 1


def cbam_params(channels: int) -> int:
    """The channel MLP (as SE) plus the spatial gate: a 7×7 convolution 2 → 1 and a BatchNorm(1)."""
    return se_params(channels) + 2 * 7**2 + 2


PARAMS = {"se": se_params, "eca": eca_k, "cbam": cbam_params}
CLASSES = {"se": SqueezeExcite, "eca": ECA, "cbam": CBAM}


def count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def stage_blocks(model: nn.Module) -> list[nn.Module]:
    """The residual blocks of a timm ResNet, RegNet or EfficientNet-family model, walking its stages."""
    if isinstance(model, resnet.ResNet):
        return [block for stage in (model.layer1, model.layer2, model.layer3, model.layer4) for block in stage]
    if isinstance(model, regnet.RegNet):
        return [block for stage in (model.s1, model.s2, model.s3, model.s4) for block in stage.children()]
    # MobileNetV3's last "stage" is a plain 1×1 ConvBnAct, not a residual block.
    return [block for stage in model.blocks for block in stage if not isinstance(block, efficientnet_blocks.ConvBnAct)]


def walked_widths(model: nn.Module) -> list[int]:
    """Each block's output width: the features of the last BatchNorm among its modules (a plain model's)."""
    return [
        [m for m in block.modules() if isinstance(m, nn.BatchNorm2d)][-1].num_features for block in stage_blocks(model)
    ]


def channels_of(block: nn.Module) -> int:
    return block.channel_gate.channels if isinstance(block, CBAM) else block.channels


# ---------------------------------------------------------------------------------------------------------------
# 1. Five-plus families, three blocks: the forward runs and the parameters grow by the formulas.


@pytest.mark.parametrize("attention", ["se", "eca", "cbam"])
@pytest.mark.parametrize("name", list(WIDTHS))
def test_parameters_grow_by_the_blocks_formulas(name, attention):
    torch.manual_seed(0)
    model = timm.create_model(name, num_classes=10)
    assert walked_widths(model) == WIDTHS[name]
    before = count(model)
    assert add_attention(model, attention) is model
    assert count(model) - before == sum(PARAMS[attention](c) for c in WIDTHS[name])
    inserted = [m for m in model.modules() if type(m) is CLASSES[attention]]
    assert [channels_of(m) for m in inserted] == WIDTHS[name]
    calls = []
    for module in inserted:
        module.register_forward_hook(lambda module, args, output: calls.append(module))
    with torch.no_grad():
        out = model.eval()(torch.randn(1, 3, 64, 64))
    assert out.shape == (1, 10) and torch.isfinite(out).all()
    assert calls == inserted  # each block runs once per forward, in order


def test_attention_kwargs_and_block_kwargs_reach_every_block():
    model = add_attention(timm.create_model("mobilenetv2_100", device="meta"), "se", rd_ratio=1 / 8)
    added = count(model) - count(timm.create_model("mobilenetv2_100", device="meta"))
    assert added == sum(se_params(c, r=8) for c in MOBILENETV2) == 58_620
    model = add_attention(
        timm.create_model("mobilenetv2_100", device="meta"),
        "eca",
        block_kwargs=lambda c: {"kernel_size": 1 + 2 * (c > 64)},
    )
    assert [m.kernel_size for m in model.modules() if isinstance(m, ECA)] == [1] * 10 + [3] * 7


def test_blocks_follow_the_models_device_and_dtype():
    model = add_attention(timm.create_model("mobilenetv2_100", device="meta"), "cbam")
    assert {p.device.type for p in model.parameters()} == {"meta"}
    model = create_attention_mobilenetv2("se", num_classes=4, dtype=torch.float64)
    assert {p.dtype for p in model.parameters()} == {torch.float64}
    with torch.no_grad():
        assert model.eval()(torch.randn(1, 3, 64, 64, dtype=torch.float64)).dtype == torch.float64


def test_none_leaves_the_model_alone_even_for_unknown_models():
    model = timm.create_model("mobilenetv2_100", device="meta")
    keys = list(model.state_dict())
    assert add_attention(model, None) is model and add_attention(model, "none") is model
    assert list(model.state_dict()) == keys
    vit = timm.create_model("vit_tiny_patch16_224", device="meta")
    assert add_attention(vit, None) is vit


# ---------------------------------------------------------------------------------------------------------------
# 2. ResNet-50: the same network as create_attention_resnet.


@pytest.mark.parametrize(
    ("attention", "reference_kwargs", "params"),
    [
        ("se", {}, 28_088_024),
        # ECA's adaptive k over ResNet-50's widths: 5 (256, 512, 1024), 7 (2048).
        ("eca", {"attention_kwargs": {"kernel_size": None}}, 25_557_032 + 3 * 5 + 4 * 5 + 6 * 5 + 3 * 7),
        ("cbam", {}, 28_089_624),
    ],
)
def test_resnet50_equals_create_attention_resnet(attention, reference_kwargs, params):
    assert params == 25_557_032 + sum(PARAMS[attention](c) for c in RESNET50)
    torch.manual_seed(0)
    model = add_attention(timm.create_model("resnet50"), attention)
    reference = create_attention_resnet(50, attention, **reference_kwargs)
    assert count(model) == count(reference) == params
    # The same keys (in another order: the se slot is filled after the block was built).
    assert set(model.state_dict()) == set(reference.state_dict())
    model.load_state_dict(reference.state_dict())  # strict: same keys and shapes
    plain = timm.create_model("resnet50")
    plain.load_state_dict(reference.state_dict(), strict=False)
    model, reference, plain = (m.double().eval() for m in (model, reference, plain))
    x = torch.randn(2, 3, 64, 64, dtype=torch.float64)
    with torch.no_grad():
        out = model(x)
        assert torch.equal(out, reference(x))
        assert not torch.allclose(out, plain(x))  # the blocks act
    if attention == "eca":
        assert [m.kernel_size for m in model.modules() if isinstance(m, ECA)] == [5] * 13 + [7] * 3


# ---------------------------------------------------------------------------------------------------------------
# 3. Placement: after the last BN of the residual branch, before the addition; errors.


def _randomize_norms(model: nn.Module) -> None:
    """Running statistics and affine parameters away from the identity, so that eval-mode BNs matter."""
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            nn.init.uniform_(m.weight, 0.5, 1.5)
            nn.init.uniform_(m.bias, -0.5, 0.5)


@torch.no_grad()
def test_mobilenetv2_blocks_apply_attention_after_the_projection_bn():
    torch.manual_seed(0)
    model = add_attention(timm.create_model("mobilenetv2_100"), "se").eval()
    _randomize_norms(model)
    for m in model.modules():
        if isinstance(m, SqueezeExcite):
            nn.init.uniform_(m.fc2.bias, -1.0, 1.0)
    # An inverted residual block with a shortcut (24 → 24, stride 1) and one without (16 → 24, stride 2).
    for block, skip in ((model.blocks[1][1], True), (model.blocks[1][0], False)):
        assert isinstance(block, efficientnet_blocks.InvertedResidual) and block.has_skip is skip
        x = torch.randn(2, block.conv_pw.in_channels, 16, 16)
        h = block.se(block.aa(block.bn2(block.conv_dw(block.bn1(block.conv_pw(x))))))
        h = block.bn3.forward(block.conv_pwl(h))  # forward(): without the hook
        expected = x + block.attention(h) if skip else block.attention(h)
        assert torch.allclose(block(x), expected, atol=1e-6)
        assert not torch.allclose(block(x), x + h if skip else h, atol=1e-3)
    # The first block (t = 1): depthwise separable, no shortcut.
    block = model.blocks[0][0]
    assert isinstance(block, efficientnet_blocks.DepthwiseSeparableConv) and not block.has_skip
    x = torch.randn(2, 32, 16, 16)
    h = block.bn2.forward(block.conv_pw(block.se(block.aa(block.bn1(block.conv_dw(x))))))
    assert torch.allclose(block(x), block.attention(h), atol=1e-6)


@torch.no_grad()
def test_regnet_blocks_apply_attention_after_conv3_before_the_addition():
    torch.manual_seed(0)
    model = add_attention(timm.create_model("regnety_002"), "cbam").eval()
    _randomize_norms(model)
    for m in model.modules():
        if isinstance(m, CBAM):
            nn.init.uniform_(m.channel_gate.mlp[2].bias, -1.0, 1.0)
            nn.init.uniform_(m.spatial_gate.bn.bias, -1.0, 1.0)
    for block in (model.s3.b1, model.s3.b2):  # a projection shortcut, an identity one
        assert isinstance(block, regnet.Bottleneck)
        x = torch.randn(2, block.conv1.conv.in_channels, 16, 16)
        branch = block.conv3.forward(block.se(block.conv2(block.conv1(x))))  # forward(): without the hook
        expected = block.act3(block.attention(branch) + block.downsample(x))
        assert torch.allclose(block(x), expected, atol=1e-6)
        assert not torch.allclose(block(x), block.act3(branch + block.downsample(x)), atol=1e-3)


@torch.no_grad()
def test_resnet_blocks_use_the_se_slot():
    torch.manual_seed(0)
    model = add_attention(timm.create_model("resnet18"), "eca").eval()
    _randomize_norms(model)
    block = model.layer2[0]
    assert isinstance(block.se, ECA) and not hasattr(block, "attention")
    x = torch.randn(2, 64, 16, 16)
    branch = block.bn2(block.conv2(block.aa(block.act1(block.bn1(block.conv1(x))))))
    expected = block.act2(block.se(branch) + block.downsample(x))
    assert torch.allclose(block(x), expected, atol=1e-6)


def test_a_filled_slot_or_a_second_insertion_is_refused():
    with pytest.raises(ValueError, match="already has an attention block in its se slot"):
        add_attention(timm.create_model("seresnet50", device="meta"), "eca")
    model = add_attention(timm.create_model("mobilenetv2_100", device="meta"), "eca")
    keys = list(model.state_dict())
    with pytest.raises(ValueError, match=r"block 'blocks\.0\.0' already has an attention block \(ECA\)"):
        add_attention(model, "se")
    assert list(model.state_dict()) == keys
    model = add_attention(timm.create_model("resnet18", device="meta"), "se")
    with pytest.raises(ValueError, match="already has an attention block"):
        add_attention(model, "se")


@pytest.mark.parametrize("name", ["vit_tiny_patch16_224", "resnext26ts"])
def test_unsupported_models_are_refused_naming_the_families(name):
    model = timm.create_model(name, device="meta")
    with pytest.raises(ValueError, match="add_attention knows no block of") as error:
        add_attention(model, "se")
    message = str(error.value)
    assert "ResNet / ResNeXt" in message and "RegNet" in message and "MobileNetV2" in message
    assert "EfficientNet" in message


def test_residual_blocks_skips_the_blocks_without_a_shortcut():
    model = add_attention(timm.create_model("mobilenetv2_100", device="meta"), "se", where="residual_blocks")
    plain = timm.create_model("mobilenetv2_100", device="meta")
    has = [[hasattr(block, "attention") for block in stage] for stage in model.blocks]
    # The first block of each of the 7 stages changes the width (or the stride): no shortcut, no block.
    first_only = [False, True, True]
    assert has == [[False], [False, True], first_only, [False, True, True, True], first_only, first_only, [False]]
    assert sum(map(sum, has)) == 10 and sum(len(stage) for stage in has) == 17
    widths = [24, 32, 32, 64, 64, 64, 96, 96, 160, 160]  # the blocks after the first of each stage
    assert count(model) - count(plain) == sum(se_params(c) for c in widths)
    # ResNet and RegNet blocks all have a shortcut.
    for name in ("resnet18", "regnety_002"):
        model = add_attention(timm.create_model(name, device="meta"), "eca", where="residual_blocks")
        assert sum(isinstance(m, ECA) for m in model.modules()) == len(WIDTHS[name])


def test_unknown_where_is_refused():
    model = timm.create_model("resnet18", device="meta")
    with pytest.raises(ValueError, match="where must be one of 'blocks', 'residual_blocks', got 'stages'"):
        add_attention(model, "se", where="stages")
    assert not any(isinstance(m, SqueezeExcite) for m in model.modules())


# ---------------------------------------------------------------------------------------------------------------
# 4. Pretrained weights keep their keys.


@pytest.mark.parametrize(
    "name", ["mobilenetv2_100", "efficientnet_b0", "mobilenetv3_small_100", "mnasnet_100", "regnety_002", "resnet50"]
)
def test_pretrained_keys_are_unchanged(name):
    torch.manual_seed(0)
    state = timm.create_model(name).state_dict()
    model = add_attention(timm.create_model(name), "cbam")
    new = model.state_dict()
    assert set(state) < set(new)
    added = set(new) - set(state)
    slot = ".se." if name == "resnet50" else ".attention."
    assert added and all(slot in key for key in added)
    result = model.load_state_dict(state, strict=False)
    # BatchNorm fills a missing num_batches_tracked itself (CBAM's spatial BN): not reported.
    assert sorted(result.missing_keys) == sorted(k for k in added if not k.endswith("num_batches_tracked"))
    assert result.unexpected_keys == []
    loaded = model.state_dict()
    assert all(torch.equal(loaded[key], value) for key, value in state.items())


# ---------------------------------------------------------------------------------------------------------------
# 6. Backbones and segmentation networks with ``attention``.


def test_backbone_with_eca_keeps_the_feature_shapes():
    torch.manual_seed(0)
    plain = Backbone("resnet18", output_stride=8)
    eca = Backbone("resnet18", output_stride=8, attention="eca")
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        shapes = [tuple(f.shape) for f in plain.eval()(x)]
        assert [tuple(f.shape) for f in eca.eval()(x)] == shapes
    assert shapes == [(2, 64, 16, 16), (2, 128, 8, 8), (2, 256, 8, 8), (2, 512, 8, 8)]
    assert (eca.channels, eca.reductions) == (plain.channels, plain.reductions)
    widths = WIDTHS["resnet18"]
    assert count(eca) - count(plain) == sum(eca_k(c) for c in widths) == 2 * (3 + 5 + 5 + 5)
    assert [m.kernel_size for m in eca.modules() if isinstance(m, ECA)] == [eca_k(c) for c in widths]
    se = Backbone("resnet18", output_stride=8, attention="se", attention_kwargs={"rd_ratio": 1 / 8})
    assert count(se) - count(plain) == sum(se_params(c, r=8) for c in widths)


def test_backbone_loads_weights_before_inserting(tmp_path):
    torch.manual_seed(0)
    weights = {k: v for k, v in timm.create_model("resnet18").state_dict().items() if not k.startswith("fc.")}
    torch.save(weights, tmp_path / "resnet18.pth")
    backbone = Backbone("resnet18", pretrained_path=tmp_path / "resnet18.pth", attention="se")
    assert torch.equal(backbone.body.layer3[1].conv2.weight, weights["layer3.1.conv2.weight"])
    assert sum(isinstance(m, SqueezeExcite) for m in backbone.modules()) == 8


@pytest.mark.parametrize("network", [FCN, DANet, SANet, GSCNN])
def test_segmentation_networks_take_attention(network):
    torch.manual_seed(0)
    net = network(5, backbone="resnet18", attention="cbam").eval()
    assert sum(isinstance(m, CBAM) for m in net.backbone.modules()) == 8
    plain = network(5, backbone="resnet18")
    assert count(net) - count(plain) == sum(cbam_params(c) for c in WIDTHS["resnet18"])
    images = (torch.rand(2, 3, 64, 64) - IMAGENET_MEAN) / IMAGENET_STD
    with torch.no_grad():
        outputs = net(images)
    assert outputs["out"].shape == (2, 5, 64, 64) and torch.isfinite(outputs["out"]).all()


def test_gscnn_with_wider_resnet_refuses_attention():
    with pytest.raises(ValueError, match="wider_resnet38 takes no attention blocks; use a timm backbone"):
        GSCNN(5, attention="se")


def test_a_syncbatchnorm_conversion_keeps_the_attention_with_restore_attention_hooks():
    from timm.layers import convert_sync_batchnorm

    from lightning_modules.add_attention import restore_attention_hooks
    from lightning_modules.classification_models import create_attention_mobilenetv2

    torch.manual_seed(0)
    model = create_attention_mobilenetv2("eca").eval()
    for block in model.modules():
        if isinstance(block, ECA):
            torch.nn.init.normal_(block.conv.weight, std=3.0)  # gates far from 0.5: the attention matters
    images = torch.randn(1, 3, 64, 64)
    expected = model(images)
    plain = create_attention_mobilenetv2(None).eval()
    plain.load_state_dict(model.state_dict(), strict=False)
    converted = convert_sync_batchnorm(model).eval()
    assert torch.equal(converted(images), plain(images))  # the conversion drops the hooks with the BN layers
    restore_attention_hooks(converted)
    restore_attention_hooks(converted)  # a second call adds no second hook
    assert torch.allclose(converted(images), expected, atol=1e-6)
    assert not torch.allclose(expected, plain(images), atol=1e-3)


def test_deeplabv3plus_takes_attention_in_its_encoder():
    from lightning_modules.deeplab import DeepLabV3Plus

    plain = DeepLabV3Plus(5, backbone="resnet18", output_stride=16)
    with_eca = DeepLabV3Plus(5, backbone="resnet18", output_stride=16, attention="eca")
    added = sum(p.numel() for p in with_eca.parameters()) - sum(p.numel() for p in plain.parameters())
    k = {64: 3, 128: 5, 256: 5, 512: 5}  # ψ(C) of ResNet-18's stage widths
    assert added == 2 * sum(k.values())
    assert with_eca.eval()(torch.randn(1, 3, 64, 64))["out"].shape == (1, 5, 64, 64)
