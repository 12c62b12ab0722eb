"""Attention ResNets: parameter counts of the official models, block placement, backbone use."""

import pytest
import torch
from timm.models.resnet import Bottleneck
from torch.utils.flop_counter import FlopCounterMode

from lightning_modules.backbones import Backbone
from lightning_modules.blocks import CBAM, ECA, SqueezeExcite
from lightning_modules.classification_models import (
    OFFICIAL_ECA_KERNEL_SIZES,
    StageAttention,
    attention_resnet_kwargs,
    create_attention_resnet,
    stage_widths,
)

LAYERS = {50: (3, 4, 6, 3), 101: (3, 4, 23, 3)}
WIDTHS = (256, 512, 1024, 2048)


def n_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def torchvision_resnet_params(layers, num_classes=1000) -> int:
    """Bottleneck ResNet (torchvision / official ECA and CBAM code) from its layer shapes: conv weights, BN (2 C)."""
    total = 3 * 64 * 7 * 7 + 2 * 64  # stem conv + BN
    inplanes = 64
    for planes, blocks in zip((64, 128, 256, 512), layers, strict=True):
        for i in range(blocks):
            total += inplanes * planes + 2 * planes  # 1x1 reduce + BN
            total += planes * planes * 9 + 2 * planes  # 3x3 + BN
            total += planes * 4 * planes + 2 * 4 * planes  # 1x1 expand + BN
            if i == 0:
                total += inplanes * 4 * planes + 2 * 4 * planes  # projection shortcut + BN
            inplanes = 4 * planes
    return total + 2048 * num_classes + num_classes


def se_params(c: int, r: int = 16) -> int:
    """Official SE (Caffe prototxt): conv1x1 C -> C/r with bias, conv1x1 C/r -> C with bias."""
    return c * (c // r) + c // r + (c // r) * c + c


def cbam_params(c: int, r: int = 16, k: int = 7) -> int:
    """Official CBAM: Linear(C, C//r) + Linear(C//r, C) with biases; Conv2d(2, 1, k, bias=False); BN(1)."""
    return se_params(c, r) + 2 * k * k + 2


def attention_total(depth: int, per_block) -> int:
    return sum(
        blocks * per_block(c, stage) for stage, (c, blocks) in enumerate(zip(WIDTHS, LAYERS[depth], strict=True))
    )


def test_plain_resnet_counts_match_torchvision():
    assert torchvision_resnet_params(LAYERS[50]) == 25_557_032
    assert torchvision_resnet_params(LAYERS[101]) == 44_549_160
    assert n_params(create_attention_resnet(50)) == 25_557_032
    assert n_params(create_attention_resnet(101)) == 44_549_160


@pytest.mark.parametrize("depth", [50, 101])
def test_parameter_counts_equal_the_official_models(depth):
    base = torchvision_resnet_params(LAYERS[depth])
    se = base + attention_total(depth, lambda c, _: se_params(c))
    eca = base + attention_total(depth, lambda c, stage: OFFICIAL_ECA_KERNEL_SIZES[depth][stage])
    cbam = base + attention_total(depth, lambda c, _: cbam_params(c))
    if depth == 50:
        assert (se, eca, cbam) == (28_088_024, 25_557_032 + 80, 28_089_624)
    else:
        assert (se, eca, cbam) == (49_326_872, 44_549_160 + 157, 49_330_172)
    assert n_params(create_attention_resnet(depth, "se", device="meta")) == se
    assert n_params(create_attention_resnet(depth, "eca", device="meta")) == eca
    assert n_params(create_attention_resnet(depth, "cbam", device="meta")) == cbam


def test_eca_kernel_sizes_per_stage():
    def kernels(model):
        return [
            [block.se.kernel_size for block in stage]
            for stage in (model.layer1, model.layer2, model.layer3, model.layer4)
        ]

    assert kernels(create_attention_resnet(50, "eca", device="meta")) == [[3] * 3, [5] * 4, [5] * 6, [7] * 3]
    adaptive = create_attention_resnet(50, "eca", attention_kwargs={"kernel_size": None}, device="meta")
    assert kernels(adaptive) == [[5] * 3, [5] * 4, [5] * 6, [7] * 3]
    fixed = create_attention_resnet(50, "eca", attention_kwargs={"kernel_size": 9}, device="meta")
    assert {k for stage in kernels(fixed) for k in stage} == {9}
    # The other released models (ECANet README): ECA-Net18 "k3577", ECA-Net34 "k3357", ECA-Net101 "k3357".
    assert kernels(create_attention_resnet(18, "eca", device="meta")) == [[3] * 2, [5] * 2, [7] * 2, [7] * 2]
    assert kernels(create_attention_resnet(34, "eca", device="meta")) == [[3] * 3, [3] * 4, [5] * 6, [7] * 3]
    assert kernels(create_attention_resnet(101, "eca", device="meta")) == [[3] * 3, [3] * 4, [5] * 23, [7] * 3]
    custom = create_attention_resnet(18, "eca", stage_kwargs={"kernel_size": (1, 3, 5, 7)}, device="meta")
    assert kernels(custom) == [[1, 1], [3, 3], [5, 5], [7, 7]]


def test_attention_sits_after_the_last_bn_before_the_addition():
    torch.manual_seed(0)
    model = create_attention_resnet(50, "cbam", layers=(1, 1, 1, 1), channels=(8, 16, 32, 64)).eval()
    block = model.layer2[0]
    assert isinstance(block, Bottleneck) and isinstance(block.se, CBAM)
    seen = {}
    block.bn3.register_forward_hook(lambda m, i, o: seen.__setitem__("bn3", o.clone()))
    block.se.register_forward_hook(lambda m, i, o: seen.update(se_in=i[0].clone(), se_out=o.clone()))
    block.register_forward_hook(lambda m, i, o: seen.update(block_in=i[0].clone(), block_out=o.clone()))
    with torch.no_grad():
        model(torch.randn(2, 3, 64, 64))
        shortcut = block.downsample(seen["block_in"])
    torch.testing.assert_close(seen["se_in"], seen["bn3"])
    torch.testing.assert_close(seen["block_out"], torch.relu(seen["se_out"] + shortcut))


@pytest.mark.parametrize(
    ("depth", "attention", "cls"), [(18, "se", SqueezeExcite), (34, "eca", ECA), (50, "cbam", CBAM)]
)
def test_every_residual_block_has_one_block(depth, attention, cls):
    model = create_attention_resnet(depth, attention, num_classes=10, device="meta")
    blocks = [b for stage in (model.layer1, model.layer2, model.layer3, model.layer4) for b in stage]
    assert all(isinstance(b.se, cls) for b in blocks)
    assert sum(isinstance(m, cls) for m in model.modules()) == len(blocks)


def test_no_zero_init_of_the_last_bn_by_default():
    model = create_attention_resnet(50, "se", layers=(1, 1, 1, 1), channels=(8, 16, 32, 64))
    assert torch.all(model.layer1[0].bn3.weight == 1)


def test_tiny_network_forward_and_backward():
    model = create_attention_resnet(50, "eca", num_classes=7, layers=(1, 1, 1, 1), channels=(8, 16, 32, 64))
    logits = model(torch.randn(2, 3, 45, 37))
    assert logits.shape == (2, 7)
    logits.sum().backward()
    assert model.layer4[0].se.conv.weight.grad is not None


def test_stride_in_first_conv_keeps_parameters_and_gives_the_papers_flops():
    v15 = create_attention_resnet(50, device="meta")
    v1 = create_attention_resnet(50, stride_in_1x1=True, device="meta")
    assert n_params(v1) == n_params(v15)
    assert v1.layer2[0].conv1.stride == (2, 2) and v1.layer2[0].conv2.stride == (1, 1)
    with FlopCounterMode(display=False) as counter:
        v1(torch.empty(1, 3, 224, 224, device="meta"))
    assert counter.get_total_flops() // 2 == 3_857_973_248  # 3.858 GMACs, the CBAM paper's ResNet-50 number


@pytest.mark.parametrize("attention", ["se", "eca", "cbam"])
def test_attention_resnet_as_dilated_segmentation_backbone(attention):
    backbone = Backbone("resnet50", output_stride=8, **attention_resnet_kwargs(50, attention)).eval()
    assert backbone.channels == [256, 512, 1024, 2048] and backbone.reductions == [4, 8, 8, 8]
    model = create_attention_resnet(50, attention, device="meta")
    assert n_params(backbone) == n_params(model) - (2048 * 1000 + 1000)
    assert backbone.body.layer4[0].conv2.dilation == (2, 2)
    with torch.no_grad():
        features = backbone(torch.randn(1, 3, 64, 80))
    assert [tuple(f.shape) for f in features] == [
        (1, 256, 16, 20),
        (1, 512, 8, 10),
        (1, 1024, 8, 10),
        (1, 2048, 8, 10),
    ]


def test_stage_attention_errors():
    with pytest.raises(ValueError, match="one value per stage"):
        StageAttention("eca", stage_widths(50), {"kernel_size": (3, 5)})
    with pytest.raises(ValueError, match="must differ"):
        StageAttention("eca", [64, 64, 128, 256], {"kernel_size": (3, 3, 5, 5)})
    with pytest.raises(ValueError, match="no stage of width 100"):
        StageAttention("eca", stage_widths(50), {"kernel_size": (3, 5, 5, 7)})(100)
    with pytest.raises(ValueError, match="depth must be one of"):
        create_attention_resnet(152, "se")
    with pytest.raises(ValueError, match="takes no attention arguments"):
        attention_resnet_kwargs(50, None, kernel_size=3)
