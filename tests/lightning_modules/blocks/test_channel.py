"""SE / ECA / CBAM against formulas written out here, on random input."""

import pytest
import torch
from torch import nn

from lightning_modules.blocks import (
    CBAM,
    ECA,
    CBAMChannelGate,
    CBAMSpatialGate,
    ECAChannelGate,
    SqueezeExcite,
    eca_kernel_size,
    get_attention,
    make_attention,
    reduced_channels,
)


def n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_se_equals_formula(randomise):
    torch.manual_seed(0)
    c, r = 64, 16
    se = randomise(SqueezeExcite(c)).eval()
    x = torch.randn(3, c, 9, 7)
    w1, b1 = se.fc1.weight.view(c // r, c), se.fc1.bias
    w2, b2 = se.fc2.weight.view(c, c // r), se.fc2.bias
    z = x.mean(dim=(2, 3))  # (B, C)
    s = torch.sigmoid(torch.relu(z @ w1.T + b1) @ w2.T + b2)
    torch.testing.assert_close(se(x), x * s[:, :, None, None])


def test_se_parameters_and_reduction():
    # Official SE-ResNet-50 conv2_x: 256 -> 16 -> 256 with biases.
    se = SqueezeExcite(256)
    assert se.rd_channels == 16 and se.fc1.bias is not None
    assert n_params(se) == 2 * 256 * 16 + 16 + 256 == 8_464
    assert n_params(SqueezeExcite(256, bias=False)) == 2 * 256 * 16
    assert torch.count_nonzero(se.fc1.bias) == 0  # Caffe's default bias filler
    # C / r floors with rd_divisor=1 (paper, official C // r); timm's rd_divisor=8 rounds to a multiple of 8.
    assert reduced_channels(200, 1 / 16) == 12
    assert reduced_channels(200, 1 / 16, rd_divisor=8) == 16
    assert reduced_channels(48, 1 / 3) == 16
    assert SqueezeExcite(64, rd_channels=5).rd_channels == 5


@pytest.mark.parametrize(("channels", "k"), [(64, 3), (128, 5), (256, 5), (512, 5), (1024, 5), (2048, 7)])
def test_eca_adaptive_kernel_size_follows_the_paper(channels, k):
    # By hand, k = |(log2 C + 1) / 2|_odd: 64 -> 3.5 -> 3; 128 -> 4 -> 5; 256 -> 4.5 -> 4 -> 5;
    # 512 -> 5; 1024 -> 5.5 -> 5; 2048 -> 6 -> 7.
    assert eca_kernel_size(channels) == k
    eca = ECA(channels)
    assert eca.kernel_size == k and n_params(eca) == k


def test_eca_equals_formula(randomise):
    torch.manual_seed(0)
    c, k = 32, 5
    eca = randomise(ECA(c, kernel_size=k))
    assert eca.conv.bias is None
    x = torch.randn(2, c, 6, 5)
    w = eca.conv.weight.view(k)
    y = x.mean(dim=(2, 3))  # (B, C)
    padded = torch.cat([torch.zeros(2, (k - 1) // 2), y, torch.zeros(2, (k - 1) // 2)], dim=1)
    mixed = torch.stack([sum(w[j] * padded[:, i + j] for j in range(k)) for i in range(c)], dim=1)  # (B, C)
    torch.testing.assert_close(eca(x), x * torch.sigmoid(mixed)[:, :, None, None])


def test_eca_rejects_even_kernel():
    with pytest.raises(ValueError, match="positive odd integer"):
        ECA(64, kernel_size=4)


def mlp(x: torch.Tensor, gate: CBAMChannelGate) -> torch.Tensor:
    first, _, second = gate.mlp
    return torch.relu(x @ first.weight.T + first.bias) @ second.weight.T + second.bias


@pytest.mark.parametrize("pool_types", [("avg",), ("max",), ("avg", "max")])
def test_cbam_channel_gate_equals_formula(randomise, pool_types):
    torch.manual_seed(0)
    gate = randomise(CBAMChannelGate(32, pool_types=pool_types))
    x = torch.randn(2, 32, 5, 6)
    descriptors = {"avg": x.mean(dim=(2, 3)), "max": x.flatten(2).max(dim=2).values}
    logits = sum(mlp(descriptors[name], gate) for name in pool_types)
    torch.testing.assert_close(gate(x), x * torch.sigmoid(logits)[:, :, None, None])


def spatial_formula(x: torch.Tensor, gate: CBAMSpatialGate) -> torch.Tensor:
    """[max_c; mean_c] -> k x k correlation written as a sum of shifted maps -> eval BN -> sigmoid."""
    k, pad = gate.kernel_size, gate.kernel_size // 2
    maps = torch.stack([x.max(dim=1).values, x.mean(dim=1)], dim=1)  # (B, 2, H, W)
    h, w = maps.shape[-2:]
    padded = nn.functional.pad(maps, (pad, pad, pad, pad))
    weight = gate.conv.weight[0]  # (2, k, k)
    s = sum(weight[c, i, j] * padded[:, c, i : i + h, j : j + w] for c in range(2) for i in range(k) for j in range(k))
    bn = gate.bn
    s = (s - bn.running_mean) / torch.sqrt(bn.running_var + bn.eps) * bn.weight + bn.bias
    return x * torch.sigmoid(s)[:, None]


@pytest.mark.parametrize("kernel_size", [3, 5, 7])
def test_cbam_equals_formula(randomise, kernel_size):
    torch.manual_seed(0)
    cbam = randomise(CBAM(32, spatial_kernel_size=kernel_size)).eval()
    x = torch.randn(2, 32, 9, 11)
    descriptors = x.mean(dim=(2, 3)), x.flatten(2).max(dim=2).values
    channel = x * torch.sigmoid(sum(mlp(d, cbam.channel_gate) for d in descriptors))[:, :, None, None]
    torch.testing.assert_close(cbam(x), spatial_formula(channel, cbam.spatial_gate))


def test_cbam_official_init_and_parameters():
    cbam = CBAM(256)
    gate = cbam.spatial_gate
    assert gate.conv.bias is None and gate.bn.momentum == 0.01 and gate.bn.eps == 1e-5
    assert torch.count_nonzero(gate.bn.weight) == 0 and torch.count_nonzero(gate.bn.bias) == 0
    # Spatial gate starts at sigmoid(0) = 0.5 everywhere (training-mode BN with weight 0, bias 0).
    x = torch.randn(2, 256, 7, 7)
    torch.testing.assert_close(gate.train()(x), 0.5 * x)
    # Channel MLP with biases (official), plus 7x7x2 conv and BN(1).
    assert n_params(cbam) == (2 * 256 * 16 + 16 + 256) + 2 * 7 * 7 + 2 == 8_564
    assert n_params(CBAM(256, spatial=False)) == 8_464
    assert n_params(CBAM(256, mlp_bias=False)) == 2 * 256 * 16 + 100
    # Official init of the 7×7 convolution: Kaiming normal, fan_out = 1 · 7 · 7, std = sqrt(2 / 49) ≈ 0.202
    # (fan_in would give sqrt(2 / 98) ≈ 0.143); 200 gates hold 19,600 weights, std within ±2 %.
    torch.manual_seed(0)
    weights = torch.cat([CBAM(16).spatial_gate.conv.weight.flatten() for _ in range(200)])
    assert weights.std().item() == pytest.approx((2 / 49) ** 0.5, rel=0.02)


def test_cbam_rejects_bad_settings():
    with pytest.raises(ValueError, match="one of"):
        CBAM(64, spatial_kernel_size=9)
    with pytest.raises(ValueError, match="pool_types"):
        CBAM(64, pool_types=("avg", "lse"))
    with pytest.raises(ValueError, match="pool_types"):
        CBAM(64, pool_types=())


@pytest.mark.parametrize("name", ["se", "eca", "cbam", "SE", None, "none"])
def test_factory_builds_shape_preserving_blocks(name):
    block = make_attention(name, 48)
    x = torch.randn(2, 48, 45, 23)
    assert block(x).shape == x.shape
    if name in (None, "none"):
        assert isinstance(block, nn.Identity)


def test_factory_passes_arguments_and_accepts_user_classes():
    assert make_attention("eca", 512, kernel_size=9).kernel_size == 9
    assert make_attention("se", 256, rd_ratio=1 / 8).rd_channels == 32
    assert make_attention("se", 256, pool_type="max").pool_type == "max"
    assert isinstance(make_attention("cbam", 256, channel_gate="eca").channel_gate, ECAChannelGate)

    class Gate(nn.Module):
        def __init__(self, channels: int, scale: float = 1.0) -> None:
            super().__init__()
            self.channels, self.scale = channels, scale

        def forward(self, x):
            return x * self.scale

    block = make_attention(Gate, 16, scale=2.0)
    assert isinstance(block, Gate) and block.channels == 16
    assert get_attention(Gate) is Gate and get_attention("cbam") is CBAM


def test_factory_errors():
    with pytest.raises(ValueError, match="Unknown attention 'bam'"):
        make_attention("bam", 64)
    with pytest.raises(ValueError, match="takes no arguments"):
        make_attention(None, 64, kernel_size=3)
    with pytest.raises(TypeError, match="name, a class or a callable"):
        make_attention(3, 64)
    with pytest.raises(ValueError, match="positive integer"):
        make_attention("se", 0)


@pytest.mark.parametrize(
    "block",
    [SqueezeExcite(16), SqueezeExcite(16, pool_type="max"), ECA(16), CBAM(16), CBAM(16, channel_gate="eca")],
)
def test_wrong_channel_count_is_a_clear_error(block):
    with pytest.raises(ValueError, match=r"expects input of shape \(B, 16, H, W\)"):
        block(torch.randn(1, 8, 4, 4))


def test_blocks_accept_timm_device_and_dtype_arguments():
    # timm's ResNet blocks call attn_layer(channels, device=..., dtype=...).
    for name in ("se", "eca", "cbam"):
        block = make_attention(name, 32, device="meta", dtype=torch.float64)
        assert all(p.device.type == "meta" and p.dtype == torch.float64 for p in block.parameters())
    for block in (
        ECAChannelGate(32, device="meta", dtype=torch.float64),
        CBAM(32, channel_gate="eca", device="meta", dtype=torch.float64),
        SqueezeExcite(32, pool_type="max", device="meta", dtype=torch.float64),
    ):
        assert all(p.device.type == "meta" and p.dtype == torch.float64 for p in block.parameters())
