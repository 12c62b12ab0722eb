"""MobileNetV2 ± ECA / SE / CBAM: the official ECA-MobileNetV2 layer list, its parameters and multiply-adds.

The layer list is derived here from the inverted-residual table of BangguWu/ECANet ``models/eca_mobilenetv2.py``
(a 3×3 stem 3 → 32 stride 2; per row (t, c, n, s), n blocks of: 1×1 expansion to t·in (when t ≠ 1), 3×3
depthwise (stride s in the first block), 1×1 linear projection to c, each convolution without bias followed by a
BatchNorm, then ECA with k = 1 for c < 96 and 3 from 96 (the current official code); a 1×1 convolution to 1280;
dropout 0.25; a linear classifier), and compared with ``create_attention_mobilenetv2`` (timm's ``mobilenetv2_100``).
"""

import math
from typing import NamedTuple

import pytest
import timm
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from lightning_modules.blocks.channel import CBAM, ECA, SqueezeExcite
from lightning_modules.classification_models import create_attention_mobilenetv2, eca_mobilenetv2_kernel_size

# The inverted residual rows of MobileNetV2 (Sandler et al., CVPR 2018, Table 2): expansion t, width c, blocks n,
# stride s of the first block.
INVERTED_RESIDUALS = [
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
]
STEM, LAST, NUM_CLASSES, SIZE = 32, 1280, 1000, 224


class Conv(NamedTuple):
    in_channels: int
    out_channels: int
    kernel: int
    stride: int
    groups: int
    out_size: int  # side of the output map at 224


class Block(NamedTuple):
    channels: int  # output width: where the attention block sits
    size: int  # side of its output map at 224


def official_layers() -> tuple[list[Conv], list[Block]]:
    """Every convolution (each followed by a BatchNorm of its outputs) and every inverted residual block."""
    size = SIZE // 2
    convs = [Conv(3, STEM, 3, 2, 1, size)]
    blocks = []
    width = STEM
    for t, c, n, s in INVERTED_RESIDUALS:
        for i in range(n):
            stride = s if i == 0 else 1
            hidden = width * t
            if t != 1:
                convs.append(Conv(width, hidden, 1, 1, 1, size))
            size //= stride
            convs.append(Conv(hidden, hidden, 3, stride, hidden, size))  # depthwise
            convs.append(Conv(hidden, c, 1, 1, 1, size))  # linear projection
            blocks.append(Block(c, size))
            width = c
    convs.append(Conv(width, LAST, 1, 1, 1, size))
    return convs, blocks


CONVS, BLOCKS = official_layers()
WIDTHS = [block.channels for block in BLOCKS]


def official_params() -> int:
    convs = sum(c.in_channels // c.groups * c.out_channels * c.kernel**2 for c in CONVS)
    norms = sum(2 * c.out_channels for c in CONVS)
    return convs + norms + LAST * NUM_CLASSES + NUM_CLASSES


def official_macs() -> int:
    convs = sum(c.out_size**2 * c.out_channels * c.in_channels // c.groups * c.kernel**2 for c in CONVS)
    return convs + LAST * NUM_CLASSES


def official_eca_k(channels: int) -> int:
    return 1 if channels < 96 else 3


def adaptive_k(channels: int) -> int:
    t = int(abs((math.log2(channels) + 1) / 2))
    return t if t % 2 else t + 1


def reduced(channels: int) -> int:
    return channels // 16


def count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def macs(model: nn.Module) -> int:
    """FlopCounterMode's FLOPs / 2 for one 224×224 image: convolutions (conv1d too) and matrix products."""
    device = next(model.parameters()).device
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model.eval()(torch.empty(1, 3, SIZE, SIZE, device=device))
    return counter.get_total_flops() // 2


def test_the_derived_layer_list_gives_mobilenetv2s_published_counts():
    assert len(BLOCKS) == 17 and len(CONVS) == 52
    assert WIDTHS == [16, 24, 24, 32, 32, 32, 64, 64, 64, 64, 96, 96, 96, 160, 160, 160, 320]
    assert [block.size for block in BLOCKS] == [112, 56, 56, 28, 28, 28] + [14] * 7 + [7] * 4
    assert official_params() == 3_504_872
    assert official_macs() == 300_774_272


def test_timm_network_is_the_official_layer_list():
    model = create_attention_mobilenetv2(device="meta")
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert [(m.in_channels, m.out_channels, m.kernel_size[0], m.stride[0], m.groups) for m in convs] == [
        c[:5] for c in CONVS
    ]
    assert all(m.bias is None for m in convs)
    norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert [m.num_features for m in norms] == [c.out_channels for c in CONVS]
    assert isinstance(model.classifier, nn.Linear)
    assert (model.classifier.in_features, model.classifier.out_features) == (LAST, NUM_CLASSES)
    assert count(model) == official_params() == 3_504_872
    assert macs(model) == official_macs() == 300_774_272


def test_eca_mobilenetv2_counts():
    model = create_attention_mobilenetv2("eca", device="meta")
    ecas = [m for m in model.modules() if isinstance(m, ECA)]
    assert [m.channels for m in ecas] == WIDTHS
    assert [m.kernel_size for m in ecas] == [official_eca_k(c) for c in WIDTHS] == [1] * 10 + [3] * 7
    assert count(model) - 3_504_872 == sum(official_eca_k(c) for c in WIDTHS) == 31
    assert count(model) == 3_504_903
    # Each 1-D convolution slides k weights over a length-C sequence: C·k multiply-adds.
    extra = sum(c * official_eca_k(c) for c in WIDTHS)
    assert extra == 1 * (16 + 2 * 24 + 3 * 32 + 4 * 64) + 3 * (3 * 96 + 3 * 160 + 320) == 3_680
    assert macs(model) == 300_774_272 + extra


def test_eca_kernel_size_arguments():
    assert [eca_mobilenetv2_kernel_size(c) for c in (16, 96, 160, 320)] == [
        {"kernel_size": 1},
        {"kernel_size": 3},
        {"kernel_size": 3},
        {"kernel_size": 3},
    ]
    adaptive = create_attention_mobilenetv2("eca", attention_kwargs={"kernel_size": None}, device="meta")
    kernels = [m.kernel_size for m in adaptive.modules() if isinstance(m, ECA)]
    assert kernels == [adaptive_k(c) for c in WIDTHS] == [3] * 13 + [5] * 4
    assert count(adaptive) == 3_504_872 + 13 * 3 + 4 * 5
    fixed = create_attention_mobilenetv2("eca", attention_kwargs={"kernel_size": 5}, device="meta")
    assert [m.kernel_size for m in fixed.modules() if isinstance(m, ECA)] == [5] * 17


def test_se_mobilenetv2_counts():
    model = create_attention_mobilenetv2("se", device="meta")
    ses = [m for m in model.modules() if isinstance(m, SqueezeExcite)]
    assert [(m.channels, m.rd_channels) for m in ses] == [(c, reduced(c)) for c in WIDTHS]
    extra_params = sum(2 * c * reduced(c) + reduced(c) + c for c in WIDTHS)
    assert count(model) - 3_504_872 == extra_params == 30_013
    assert count(model) == 3_534_885
    # The two FC layers (1×1 convolutions on the pooled 1×1 map; biases are not multiply-adds).
    extra_macs = sum(2 * c * reduced(c) for c in WIDTHS)
    assert extra_macs == 28_416
    assert macs(model) == 300_774_272 + extra_macs


def test_cbam_mobilenetv2_counts():
    model = create_attention_mobilenetv2("cbam", device="meta")
    assert sum(isinstance(m, CBAM) for m in model.modules()) == 17
    assert count(model) - 3_504_872 == 30_013 + 17 * (2 * 7**2 + 2)
    # The shared MLP runs on the average and the max descriptor; the spatial 7×7 convolution 2 → 1 on each map.
    extra = sum(2 * (2 * b.channels * reduced(b.channels)) + b.size**2 * 2 * 7**2 for b in BLOCKS)
    assert macs(model) == 300_774_272 + extra


def test_dropout_is_0_25_by_default():
    model = create_attention_mobilenetv2("eca", num_classes=10)
    assert model.drop_rate == 0.25
    assert create_attention_mobilenetv2(num_classes=10, drop_rate=0.2).drop_rate == 0.2
    # The head drops a quarter of the pooled features in training and rescales the rest by 1 / 0.75.
    torch.manual_seed(0)
    seen = []
    model.classifier.register_forward_hook(lambda module, args, output: seen.append(args[0]))
    with torch.no_grad():
        model.train().forward_head(torch.ones(64, LAST, 2, 2))
    features = seen[0]
    values = features.unique().tolist()
    assert len(values) == 2 and values[0] == 0.0 and values[1] == pytest.approx(4 / 3)
    assert (features == 0).float().mean().item() == pytest.approx(0.25, abs=0.01)


def test_forward_at_64_pixels():
    torch.manual_seed(0)
    for attention in (None, "se", "eca"):
        model = create_attention_mobilenetv2(attention, num_classes=10).eval()
        with torch.no_grad():
            out = model(torch.randn(2, 3, 64, 64))
        assert out.shape == (2, 10) and torch.isfinite(out).all()


def test_official_placement_without_timm_slot():
    model = create_attention_mobilenetv2("eca", device="meta")
    plain = timm.create_model("mobilenetv2_100", device="meta")
    # timm's own se slot stays empty (Identity); the ECA block is each block's ``attention`` submodule.
    blocks = [block for stage in model.blocks for block in stage]
    assert all(isinstance(block.se, nn.Identity) for block in blocks)
    assert all(isinstance(block.attention, ECA) for block in blocks)
    assert set(plain.state_dict()) < set(model.state_dict())
