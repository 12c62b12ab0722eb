"""GCL of Gated-SCNN: the official computation against a formula written out here, parameter counts, shape errors."""

import pytest
import torch

from lightning_modules.blocks import GatedSpatialConv2d


def n_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def batch_norm(x: torch.Tensor, bn: torch.nn.BatchNorm2d) -> torch.Tensor:
    """Inference BatchNorm written out: (x - μ) / √(σ² + ε) · γ + β, per channel."""
    shape = (1, -1, 1, 1)
    scale = bn.weight.view(shape) / torch.sqrt(bn.running_var.view(shape) + bn.eps)
    return (x - bn.running_mean.view(shape)) * scale + bn.bias.view(shape)


def conv1x1(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """A 1×1 convolution as a sum over input channels."""
    out = torch.einsum("oc,bchw->bohw", weight[:, :, 0, 0], x)
    return out if bias is None else out + bias.view(1, -1, 1, 1)


def gcl_formula(layer: GatedSpatialConv2d, s: torch.Tensor, r: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """α = σ(BN₁(W₂ · ReLU(W₁ · BN_{C+1}([s; r]) + b₁) + b₂)); ŝ = W_t (s ⊙ (α + 1)) (spec Sec. 1.1.2)."""
    bn_in, w1, _, w2, bn_out, _ = layer._gate_conv
    hidden = torch.clamp(conv1x1(batch_norm(torch.cat([s, r], 1), bn_in), w1.weight, w1.bias), min=0)
    alpha = 1 / (1 + torch.exp(-batch_norm(conv1x1(hidden, w2.weight, w2.bias), bn_out)))
    return conv1x1(s * (alpha + 1), layer.weight, None), alpha


@pytest.mark.parametrize(("channels", "expected"), [(32, 2_248), (16, 616), (8, 184)])
def test_parameter_counts(channels, expected):
    layer = GatedSpatialConv2d(channels)
    assert n_params(layer) == expected == (channels + 1) ** 2 + 4 * (channels + 1) + 3 + channels**2
    assert layer.weight.shape == (channels, channels, 1, 1)


@pytest.mark.parametrize("channels", [8, 3])
def test_matches_the_formula_in_float64(randomise, channels):
    layer = randomise(GatedSpatialConv2d(channels)).double().eval()
    generator = torch.Generator().manual_seed(1)
    s = torch.randn(2, channels, 5, 7, generator=generator, dtype=torch.float64)
    r = torch.randn(2, 1, 5, 7, generator=generator, dtype=torch.float64)
    expected, expected_alpha = gcl_formula(layer, s, r)
    with torch.no_grad():
        output, alpha = layer(s, r, return_gate=True)
        plain = layer(s, r)
        gate = layer.gate(s, r)
    assert output.shape == (2, channels, 5, 7) and alpha.shape == (2, 1, 5, 7)
    assert torch.allclose(output, expected, atol=1e-10, rtol=0)
    assert torch.allclose(alpha, expected_alpha, atol=1e-10, rtol=0)
    assert torch.equal(plain, output) and torch.equal(gate, alpha)
    assert alpha.min() > 0 and alpha.max() < 1
    assert not torch.allclose(output, conv1x1(s, layer.weight, None))  # the gate changes the result


def test_gate_of_zero_leaves_the_projection():
    """With α ≡ 0 (BN₁ shifted far negative) the layer is the plain 1×1 projection W_t s."""
    layer = GatedSpatialConv2d(4).double().eval()
    with torch.no_grad():
        layer._gate_conv[4].bias.fill_(-1e4)
    s = torch.randn(1, 4, 3, 3, dtype=torch.float64)
    output, alpha = layer(s, torch.zeros(1, 1, 3, 3, dtype=torch.float64), return_gate=True)
    assert torch.all(alpha < 1e-300)
    assert torch.allclose(output, conv1x1(s, layer.weight, None), atol=1e-12, rtol=0)


def test_xavier_normal_projection():
    torch.manual_seed(0)
    weight = GatedSpatialConv2d(64).weight
    # Xavier-normal: std = √(2 / (fan_in + fan_out)) = √(2 / 128) = 0.125.
    assert weight.std().item() == pytest.approx(0.125, rel=0.05)
    assert weight.mean().abs().item() < 0.01


def test_gradient_reaches_both_inputs_and_all_parameters():
    layer = GatedSpatialConv2d(4)
    s = torch.randn(2, 4, 3, 3, requires_grad=True)
    r = torch.randn(2, 1, 3, 3, requires_grad=True)
    layer(s, r).square().sum().backward()
    assert s.grad.abs().sum() > 0 and r.grad.abs().sum() > 0
    assert all(p.grad is not None for p in layer.parameters())


@pytest.mark.parametrize(
    ("features", "gate", "match"),
    [
        ((2, 5, 4, 4), (2, 1, 4, 4), r"features must have shape \(B, 4, H, W\)"),
        ((2, 4, 4), (2, 1, 4, 4), r"features must have shape"),
        ((2, 4, 4, 4), (2, 2, 4, 4), r"gate must have shape \(B, 1, H, W\) = \(2, 1, 4, 4\)"),
        ((2, 4, 4, 4), (2, 1, 4, 5), r"gate must have shape"),
        ((2, 4, 4, 4), (1, 1, 4, 4), r"gate must have shape"),
    ],
)
def test_shape_errors(features, gate, match):
    layer = GatedSpatialConv2d(4)
    with pytest.raises(ValueError, match=match):
        layer(torch.randn(features), torch.randn(gate))
    with pytest.raises(ValueError, match=match):
        layer.gate(torch.randn(features), torch.randn(gate))


def test_channels_must_be_positive():
    with pytest.raises(ValueError, match="channels must be a positive integer"):
        GatedSpatialConv2d(0)
