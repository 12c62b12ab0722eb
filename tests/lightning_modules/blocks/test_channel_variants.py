"""SE's max squeeze, the ECA channel gate inside CBAM and the gradient of max pooling with tied maxima.

Every block is checked against a formula written out here (float64), never against the module's helpers.
"""

from collections.abc import Callable

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from lightning_modules.blocks import CBAM, CBAMChannelGate, CBAMSpatialGate, ECAChannelGate, SqueezeExcite

DTYPE = torch.float64
Pool = Callable[[torch.Tensor], torch.Tensor]


def n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


# Global pooling (B, C, H, W) -> (B, C). The official CBAM max is F.max_pool2d over the whole map; amax gives the
# same values but splits the gradient between tied maxima; mean is the average squeeze.
def official_global_max(x: torch.Tensor) -> torch.Tensor:
    return F.max_pool2d(x, (x.shape[2], x.shape[3]), stride=(x.shape[2], x.shape[3]))[:, :, 0, 0]


def amax_global_max(x: torch.Tensor) -> torch.Tensor:
    return x.amax(dim=(2, 3))


def global_avg(x: torch.Tensor) -> torch.Tensor:
    return x.sum(dim=(2, 3)) / (x.shape[2] * x.shape[3])


# Channel pooling (B, C, H, W) -> (B, H, W) for the spatial gate: official torch.max(x, 1)[0] against amax.
def official_channel_max(x: torch.Tensor) -> torch.Tensor:
    return torch.max(x, 1)[0]


def amax_channel_max(x: torch.Tensor) -> torch.Tensor:
    return x.amax(dim=1)


def conv1d_by_hand(y: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """``out_i = Σ_j w_j · y_{i + j - (k - 1) / 2}`` over channels, zero outside ``[0, C)`` (cross-correlation)."""
    k, c = w.numel(), y.shape[1]
    pad = (k - 1) // 2
    columns = []
    for i in range(c):
        terms = [w[j] * y[:, i + j - pad] for j in range(k) if 0 <= i + j - pad < c]
        columns.append(sum(terms, torch.zeros_like(y[:, 0])))
    return torch.stack(columns, dim=1)


def se_formula(x: torch.Tensor, se: SqueezeExcite, pool: Pool) -> torch.Tensor:
    c, r = se.channels, se.rd_channels
    w1, b1 = se.fc1.weight.view(r, c), se.fc1.bias
    w2, b2 = se.fc2.weight.view(c, r), se.fc2.bias
    s = torch.sigmoid(torch.relu(pool(x) @ w1.T + b1) @ w2.T + b2)  # (B, C)
    return x * s[:, :, None, None]


def cbam_mlp_logits(x: torch.Tensor, gate: CBAMChannelGate, pool: Pool) -> torch.Tensor:
    first, _, second = gate.mlp
    return torch.relu(pool(x) @ first.weight.T + first.bias) @ second.weight.T + second.bias


def eca_gate_formula(
    x: torch.Tensor, gate: ECAChannelGate, max_pool: Pool = official_global_max, pool_types=("avg", "max")
) -> torch.Tensor:
    w = gate.conv.weight.view(-1)
    descriptors = {"avg": global_avg, "max": max_pool}
    logits = sum(conv1d_by_hand(descriptors[name](x), w) for name in pool_types)  # (B, C)
    return x * torch.sigmoid(logits)[:, :, None, None]


def spatial_formula(x: torch.Tensor, gate: CBAMSpatialGate, channel_max: Pool = official_channel_max) -> torch.Tensor:
    """[max_c; mean_c] -> k×k conv (F.conv2d, tested in test_channel.py) -> eval BN -> σ -> times x."""
    maps = torch.stack([channel_max(x), x.mean(dim=1)], dim=1)  # (B, 2, H, W)
    s = F.conv2d(maps, gate.conv.weight, padding=gate.kernel_size // 2)[:, 0]  # (B, H, W)
    bn = gate.bn
    s = (s - bn.running_mean) / torch.sqrt(bn.running_var + bn.eps) * bn.weight + bn.bias
    return x * torch.sigmoid(s)[:, None]


# SqueezeExcite(pool_type=...)


@pytest.mark.parametrize(("pool_type", "pool"), [("avg", global_avg), ("max", amax_global_max)])
def test_se_pool_type_equals_formula(randomise, pool_type, pool):
    se = randomise(SqueezeExcite(64, pool_type=pool_type).to(DTYPE))
    assert se.pool_type == pool_type
    x = torch.randn(3, 64, 9, 7, dtype=DTYPE, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(se(x), se_formula(x, se, pool))


def test_se_max_squeeze_differs_from_avg(randomise):
    avg = randomise(SqueezeExcite(32).to(DTYPE))
    mx = randomise(SqueezeExcite(32, pool_type="max").to(DTYPE))  # same weights (same seed)
    x = torch.randn(2, 32, 5, 5, dtype=DTYPE)
    assert not torch.allclose(avg(x), mx(x))


@pytest.mark.parametrize("pool_type", ["avg", "max"])
@pytest.mark.parametrize(("c", "r"), [(256, 16), (64, 8), (2048, 16)])
def test_se_parameter_count_does_not_depend_on_pool_type(pool_type, c, r):
    se = SqueezeExcite(c, rd_ratio=1 / r, pool_type=pool_type)
    assert n_params(se) == 2 * c * (c // r) + c // r + c
    assert n_params(SqueezeExcite(256, pool_type=pool_type)) == 8_464


def test_se_default_is_the_papers_average_squeeze():
    assert SqueezeExcite(16).pool_type == "avg"


# ECAChannelGate


@pytest.mark.parametrize("pool_types", [("avg", "max"), ("avg",), ("max",)])
@pytest.mark.parametrize("k", [3, 5, 7])
def test_eca_channel_gate_equals_formula(randomise, pool_types, k):
    gate = randomise(ECAChannelGate(32, kernel_size=k, pool_types=pool_types).to(DTYPE))
    assert gate.conv.bias is None and gate.conv.padding == ((k - 1) // 2,)
    x = torch.randn(2, 32, 6, 5, dtype=DTYPE, generator=torch.Generator().manual_seed(2))
    torch.testing.assert_close(gate(x), eca_gate_formula(x, gate, pool_types=pool_types))


def test_eca_channel_gate_shares_one_convolution_between_descriptors():
    gate = ECAChannelGate(64, kernel_size=5)
    convs = [m for m in gate.modules() if isinstance(m, nn.Conv1d)]
    assert len(convs) == 1 and n_params(gate) == 5


@pytest.mark.parametrize(("channels", "k"), [(64, 3), (256, 5), (2048, 7)])
def test_eca_channel_gate_adaptive_kernel_and_parameters(channels, k):
    # k = |(log2 C + 1) / 2|_odd by hand: 64 -> 3.5 -> 3, 256 -> 4.5 -> 4 -> 5, 2048 -> 6 -> 7.
    gate = ECAChannelGate(channels)
    assert gate.kernel_size == k and n_params(gate) == k
    assert n_params(ECAChannelGate(channels, kernel_size=9)) == 9


def test_eca_channel_gate_gradcheck(randomise):
    gate = randomise(ECAChannelGate(8, kernel_size=3).to(DTYPE))
    x = torch.randn(2, 8, 3, 4, dtype=DTYPE, generator=torch.Generator().manual_seed(3), requires_grad=True)
    assert x.flatten(2).unique(dim=-1).shape[-1] == 12  # no tied maxima: max pooling is differentiable here
    weight = gate.conv.weight.detach().clone().requires_grad_(True)

    def f(inp: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        return torch.func.functional_call(gate, {"conv.weight": w}, (inp,))

    assert torch.autograd.gradcheck(f, (x, weight))


# CBAM(channel_gate="eca")


@pytest.mark.parametrize("spatial_kernel_size", [3, 5, 7])
def test_cbam_eca_equals_formula(randomise, spatial_kernel_size):
    cbam = randomise(CBAM(32, channel_gate="eca", spatial_kernel_size=spatial_kernel_size).to(DTYPE)).eval()
    assert isinstance(cbam.channel_gate, ECAChannelGate) and cbam.channel_gate_type == "eca"
    x = torch.randn(2, 32, 9, 11, dtype=DTYPE, generator=torch.Generator().manual_seed(4))
    # F' = σ(C1D(avg F) + C1D(max F)) · F, then F'' = M_s(F') · F'.
    w = cbam.channel_gate.conv.weight.view(-1)
    logits = conv1d_by_hand(global_avg(x), w) + conv1d_by_hand(official_global_max(x), w)
    refined = x * torch.sigmoid(logits)[:, :, None, None]
    torch.testing.assert_close(cbam(x), spatial_formula(refined, cbam.spatial_gate))


@pytest.mark.parametrize("spatial_kernel_size", [3, 5, 7])
@pytest.mark.parametrize(("channels", "k"), [(64, 3), (256, 5), (2048, 7)])
def test_cbam_eca_parameters(channels, k, spatial_kernel_size):
    cbam = CBAM(channels, channel_gate="eca", spatial_kernel_size=spatial_kernel_size)
    assert n_params(cbam) == k + 2 * spatial_kernel_size**2 + 2
    assert n_params(CBAM(channels, channel_gate="eca", eca_kernel_size=9)) == 9 + 2 * 49 + 2


def test_cbam_eca_parameter_example_and_defaults():
    assert n_params(CBAM(256, channel_gate="eca")) == 5 + 2 * 7 * 7 + 2 == 105
    assert n_params(CBAM(256, channel_gate="eca", spatial=False)) == 5
    cbam = CBAM(256)
    assert cbam.channel_gate_type == "mlp" and isinstance(cbam.channel_gate, CBAMChannelGate)
    assert CBAM(256, channel_gate="eca", eca_kernel_size=3).channel_gate.kernel_size == 3
    assert CBAM(256, channel_gate="eca", pool_types=("max",)).channel_gate.pool_types == ("max",)


# Max pooling gradients with tied maxima


def tie_global_maxima(x: torch.Tensor) -> tuple[tuple[int, int], tuple[int, int]]:
    """Make ``x[b, c]`` peak at exactly two positions, with the same value, for every (b, c)."""
    first, second = (0, 1), (2, 3)
    with torch.no_grad():
        peak = x.amax(dim=(2, 3)) + 1
        x[:, :, first[0], first[1]] = peak
        x[:, :, second[0], second[1]] = peak
    return first, second


def tie_channel_maxima(x: torch.Tensor) -> tuple[int, int]:
    """Make ``x[b, :, h, w]`` peak at exactly two channels, with the same value, for every (b, h, w)."""
    first, second = 1, 3
    with torch.no_grad():
        peak = x.amax(dim=1) + 1
        x[:, first] = peak
        x[:, second] = peak
    return first, second


def input_grad(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, upstream: torch.Tensor) -> torch.Tensor:
    x = x.detach().clone().requires_grad_(True)
    (fn(x) * upstream).sum().backward()
    return x.grad


def detach_pool(pool: Pool) -> Pool:
    return lambda t: pool(t.detach())


def assert_one_of_two(a: torch.Tensor, b: torch.Tensor) -> None:
    """At every position exactly one of ``a``, ``b`` is nonzero (the other zero up to round-off)."""
    tol = 1e-12 * max(a.abs().max().item(), b.abs().max().item())
    a_on, b_on = a.abs() > tol, b.abs() > tol
    assert torch.all(a_on ^ b_on), "the max-pooling gradient must reach exactly one of the tied maxima"


def test_pooling_references_route_or_split_the_gradient():
    # The references themselves: the official ops send a tie's gradient to one element, amax splits it.
    x = torch.zeros(1, 1, 3, 4, dtype=DTYPE)
    x[0, 0, 0, 1] = x[0, 0, 2, 3] = 1.0
    grad = input_grad(official_global_max, x, torch.ones(1, 1, dtype=DTYPE))
    assert sorted(grad[0, 0, [0, 2], [1, 3]].tolist()) == [0.0, 1.0] and grad.sum() == 1
    grad = input_grad(amax_global_max, x, torch.ones(1, 1, dtype=DTYPE))
    assert grad[0, 0, [0, 2], [1, 3]].tolist() == [0.5, 0.5] and grad.sum() == 1
    y = torch.zeros(1, 3, 1, 1, dtype=DTYPE)
    y[0, 0] = y[0, 2] = 1.0
    grad = input_grad(official_channel_max, y, torch.ones(1, 1, 1, dtype=DTYPE))
    assert sorted(grad[0, [0, 2], 0, 0].tolist()) == [0.0, 1.0] and grad[0, 1] == 0
    grad = input_grad(amax_channel_max, y, torch.ones(1, 1, 1, dtype=DTYPE))
    assert grad[0, [0, 2], 0, 0].tolist() == [0.5, 0.5]


def make_se(randomise):
    se = randomise(SqueezeExcite(16, rd_channels=8, pool_type="max").to(DTYPE))  # r = 2: no dead bottleneck
    return se, lambda x, pool: se_formula(x, se, pool)


def make_cbam_mlp(randomise):
    gate = randomise(CBAMChannelGate(16, rd_channels=8, pool_types=("avg", "max")).to(DTYPE))

    def formula(x, pool):
        logits = cbam_mlp_logits(x, gate, global_avg) + cbam_mlp_logits(x, gate, pool)
        return x * torch.sigmoid(logits)[:, :, None, None]

    return gate, formula


def make_eca_gate(randomise):
    gate = randomise(ECAChannelGate(16, kernel_size=5).to(DTYPE))
    return gate, lambda x, pool: eca_gate_formula(x, gate, pool)


def make_cbam_eca_global(randomise):
    cbam = randomise(CBAM(16, channel_gate="eca", spatial_kernel_size=3).to(DTYPE)).eval()
    return cbam, lambda x, pool: spatial_formula(eca_gate_formula(x, cbam.channel_gate, pool), cbam.spatial_gate)


@pytest.mark.parametrize(
    "make",
    [make_se, make_cbam_mlp, make_eca_gate, make_cbam_eca_global],
    ids=["se", "cbam_mlp", "eca_gate", "cbam_eca"],
)
def test_global_max_gradient_goes_to_one_of_tied_maxima(randomise, make):
    block, formula = make(randomise)
    generator = torch.Generator().manual_seed(5)
    x = torch.randn(2, 16, 3, 4, dtype=DTYPE, generator=generator)
    first, second = tie_global_maxima(x)
    upstream = torch.randn(2, 16, 3, 4, dtype=DTYPE, generator=generator)

    module = input_grad(block, x, upstream)
    official = input_grad(lambda t: formula(t, official_global_max), x, upstream)
    split = input_grad(lambda t: formula(t, amax_global_max), x, upstream)
    no_max = input_grad(lambda t: formula(t, detach_pool(official_global_max)), x, upstream)
    torch.testing.assert_close(module, official, rtol=1e-12, atol=1e-12)
    assert not torch.allclose(module, split)

    # The max path alone: the gradient minus that with the max descriptor detached.
    path, official_path, split_path = module - no_max, official - no_max, split - no_max
    torch.testing.assert_close(path, official_path, rtol=1e-12, atol=1e-12)
    a, b = path[:, :, first[0], first[1]], path[:, :, second[0], second[1]]
    assert_one_of_two(a, b)
    mask = torch.ones(3, 4, dtype=torch.bool)
    mask[first], mask[second] = False, False
    torch.testing.assert_close(path[:, :, mask], torch.zeros_like(path[:, :, mask]))
    # amax would give each tied maximum half of it: the regression the test guards against.
    total = a + b
    torch.testing.assert_close(split_path[:, :, first[0], first[1]], 0.5 * total)
    torch.testing.assert_close(split_path[:, :, second[0], second[1]], 0.5 * total)


def make_spatial(randomise):
    gate = randomise(CBAMSpatialGate(3).to(DTYPE)).eval()
    return gate, lambda x, channel_max: spatial_formula(x, gate, channel_max)


def make_cbam_eca_channel(randomise):
    # The ties must survive into F' = M_c(F) · F: a zero ECA kernel makes M_c = σ(0) = 1/2 for every channel.
    cbam = randomise(CBAM(16, channel_gate="eca", spatial_kernel_size=3).to(DTYPE)).eval()
    with torch.no_grad():
        cbam.channel_gate.conv.weight.zero_()

    def formula(x, channel_max):
        return spatial_formula(eca_gate_formula(x, cbam.channel_gate), cbam.spatial_gate, channel_max)

    return cbam, formula


@pytest.mark.parametrize("make", [make_spatial, make_cbam_eca_channel], ids=["spatial_gate", "cbam_eca"])
def test_channel_max_gradient_goes_to_one_of_tied_maxima(randomise, make):
    block, formula = make(randomise)
    generator = torch.Generator().manual_seed(6)
    x = torch.randn(2, 16, 4, 5, dtype=DTYPE, generator=generator)
    first, second = tie_channel_maxima(x)
    upstream = torch.randn(2, 16, 4, 5, dtype=DTYPE, generator=generator)

    module = input_grad(block, x, upstream)
    official = input_grad(lambda t: formula(t, official_channel_max), x, upstream)
    split = input_grad(lambda t: formula(t, amax_channel_max), x, upstream)
    no_max = input_grad(lambda t: formula(t, detach_pool(official_channel_max)), x, upstream)
    torch.testing.assert_close(module, official, rtol=1e-12, atol=1e-12)
    assert not torch.allclose(module, split)

    # The max path alone: the gradient minus that with the channel max detached.
    path, official_path, split_path = module - no_max, official - no_max, split - no_max
    torch.testing.assert_close(path, official_path, rtol=1e-12, atol=1e-12)
    a, b = path[:, first], path[:, second]
    assert_one_of_two(a, b)  # at every (b, h, w)
    others = [c for c in range(16) if c not in (first, second)]
    torch.testing.assert_close(path[:, others], torch.zeros_like(path[:, others]))
    torch.testing.assert_close(split_path[:, first], 0.5 * (a + b))
    torch.testing.assert_close(split_path[:, second], 0.5 * (a + b))


# Validation


def test_se_rejects_unknown_pool_type():
    with pytest.raises(ValueError, match=r"SqueezeExcite pool_type must be one of \('avg', 'max'\).*got 'lse'"):
        SqueezeExcite(64, pool_type="lse")


@pytest.mark.parametrize("kernel_size", [4, 0, -3, 3.0, True])
def test_eca_channel_gate_rejects_bad_kernel_size(kernel_size):
    with pytest.raises(ValueError, match=r"ECAChannelGate kernel_size must be a positive odd integer"):
        ECAChannelGate(64, kernel_size=kernel_size)


def test_eca_channel_gate_rejects_bad_pool_types_and_channels():
    with pytest.raises(ValueError, match="pool_types"):
        ECAChannelGate(64, pool_types=("avg", "lp"))
    with pytest.raises(ValueError, match="pool_types"):
        ECAChannelGate(64, pool_types=())
    with pytest.raises(ValueError, match="positive integer"):
        ECAChannelGate(0)
    with pytest.raises(ValueError, match=r"ECAChannelGate expects input of shape \(B, 16, H, W\)"):
        ECAChannelGate(16)(torch.randn(1, 8, 4, 4))


def test_cbam_rejects_bad_channel_gate_settings():
    with pytest.raises(ValueError, match=r"CBAM channel_gate must be one of \('mlp', 'eca'\).*got 'se'"):
        CBAM(64, channel_gate="se")
    with pytest.raises(ValueError, match=r"CBAM eca_kernel_size must be a positive odd integer.*got 4"):
        CBAM(64, channel_gate="eca", eca_kernel_size=4)
    with pytest.raises(ValueError, match=r"eca_kernel_size=5 is only used with channel_gate='eca'"):
        CBAM(64, eca_kernel_size=5)
    with pytest.raises(ValueError, match=r"has no MLP, so rd_ratio would be unused"):
        CBAM(64, channel_gate="eca", rd_ratio=1 / 8)
    with pytest.raises(ValueError, match=r"has no MLP, so rd_channels, mlp_bias would be unused"):
        CBAM(64, channel_gate="eca", rd_channels=4, mlp_bias=False)
    with pytest.raises(ValueError, match=r"has no MLP, so rd_divisor, act_layer would be unused"):
        CBAM(64, channel_gate="eca", rd_divisor=8, act_layer=nn.GELU)
    with pytest.raises(ValueError, match="one of"):
        CBAM(64, channel_gate="eca", spatial_kernel_size=9)
