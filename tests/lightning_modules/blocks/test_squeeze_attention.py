"""SANet's SA module (Eq. 4-5) against the formula written out here, on random input."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from lightning_modules.blocks.squeeze_attention import SqueezeAttention


def conv_bn(x, conv: nn.Conv2d, bn: nn.BatchNorm2d) -> torch.Tensor:
    """Convolution (no bias) and inference BatchNorm, written out."""
    y = F.conv2d(x, conv.weight, padding=conv.kernel_size[0] // 2, groups=conv.groups)
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    return y * scale[None, :, None, None] + (bn.bias - bn.running_mean * scale)[None, :, None, None]


def pool_cells(x: torch.Tensor, r: int, reduce) -> torch.Tensor:
    """r × r pooling cell by cell; the last row / column of cells holds what is left (ceil mode)."""
    h, w = x.shape[-2:]
    rows = []
    for i in range(math.ceil(h / r)):
        cells = [reduce(x[:, :, i * r : (i + 1) * r, j * r : (j + 1) * r]) for j in range(math.ceil(w / r))]
        rows.append(torch.stack(cells, dim=-1))
    return torch.stack(rows, dim=-2)


@pytest.mark.parametrize("pool", ["max", "avg"])
@pytest.mark.parametrize("activation", ["relu", "sigmoid"])
def test_sa_equals_formula(randomise, pool, activation):
    torch.manual_seed(0)
    sa = randomise(SqueezeAttention(16, pool=pool, attention_activation=activation), scale=0.3).eval()
    x = torch.randn(2, 16, 19, 23)  # not multiples of 8: the last pooling cells are partial
    conv1, bn1, _, conv2, bn2, _ = sa.main
    x_res = torch.relu(conv_bn(torch.relu(conv_bn(x, conv1, bn1)), conv2, bn2))
    reduce = (lambda t: t.amax(dim=(2, 3))) if pool == "max" else (lambda t: t.mean(dim=(2, 3)))
    pooled = pool_cells(x, 8, reduce)
    assert pooled.shape[-2:] == (3, 3)
    aconv1, abn1, _, aconv2, abn2 = sa.attention
    x_hat = conv_bn(torch.relu(conv_bn(pooled, aconv1, abn1)), aconv2, abn2)  # X̂_attn, Eq. 5
    sigma = torch.relu if activation == "relu" else torch.sigmoid
    x_attn = F.interpolate(sigma(x_hat), size=(19, 23), mode="bilinear", align_corners=False)
    with torch.no_grad():
        torch.testing.assert_close(sa.attention_map(x), x_attn)
        torch.testing.assert_close(sa(x), x_attn * x_res + x_attn)  # Eq. 4


def test_channels_reduced_to_a_quarter_with_two_groups_in_first_convs():
    sa = SqueezeAttention(64)
    assert sa.out_channels == 16
    for path in (sa.main, sa.attention):
        convs = [m for m in path if isinstance(m, nn.Conv2d)]
        assert [c.groups for c in convs] == [2, 1]
        assert convs[0].in_channels == 64 and convs[0].out_channels == convs[1].out_channels == 16
        assert all(c.kernel_size == (3, 3) and c.bias is None for c in convs)
    assert not isinstance(sa.attention[-1], nn.ReLU)  # σ is applied after the last BN, not a ReLU before it
    with torch.no_grad():
        assert sa.eval()(torch.randn(1, 64, 10, 12)).shape == (1, 16, 10, 12)


@pytest.mark.parametrize("num_convs", [1, 2, 3])
def test_parameter_count(num_convs):
    c, k, g = 64, 3, 2
    o = c // 4
    per_path = c * o * k * k // g + 2 * o + (num_convs - 1) * (o * o * k * k + 2 * o)
    sa = SqueezeAttention(c, num_convs=num_convs)
    assert sum(p.numel() for p in sa.parameters()) == 2 * per_path


def test_attention_ranges_and_small_maps():
    x = torch.randn(2, 8, 3, 5)  # smaller than one pooling cell: pools to 1 × 1
    relu = SqueezeAttention(8).eval()
    sigmoid = SqueezeAttention(8, attention_activation="sigmoid", pool="avg").eval()
    with torch.no_grad():
        a = relu.attention_map(x)
        assert a.shape == (2, 2, 3, 5) and (a >= 0).all()
        # One pooled cell: the upsampled attention is constant over the map.
        torch.testing.assert_close(a, a[:, :, :1, :1].expand_as(a))
        s = sigmoid.attention_map(x)
        assert ((s > 0) & (s < 1)).all()


def test_invalid_arguments():
    with pytest.raises(ValueError, match="multiples of groups=2"):
        SqueezeAttention(12)  # 12 // 4 = 3 channels cannot be split into 2 groups
    with pytest.raises(ValueError, match="pool must be one of"):
        SqueezeAttention(16, pool="median")
    with pytest.raises(ValueError, match="attention_activation must be one of"):
        SqueezeAttention(16, attention_activation="tanh")
    with pytest.raises(ValueError, match="kernel_size a positive odd integer"):
        SqueezeAttention(16, kernel_size=2)
    with pytest.raises(ValueError, match=r"expects input of shape \(B, 16, H, W\)"):
        SqueezeAttention(16)(torch.randn(1, 8, 4, 4))
