"""DANet's position and channel attention against formulas written out here, on random input."""

import pytest
import torch
from torch import nn

from lightning_modules.blocks import ChannelAttention, PositionAttention


def n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def randomised_pam(channels: int, mode: str, seed: int = 0) -> PositionAttention:
    """A PAM with random weights and γ ≠ 0 (at init γ = 0 hides the attention)."""
    torch.manual_seed(seed)
    pam = PositionAttention(channels, mode=mode)
    with torch.no_grad():
        for p in pam.parameters():
            p.copy_(torch.randn(p.shape) * 0.3)
        pam.gamma.fill_(0.7)
    return pam


def pam_formula(pam: PositionAttention, x: torch.Tensor) -> torch.Tensor:
    """Eq. (1)-(2) with einsum: E_i = γ Σ_j softmax_j(q_i · k_j) v_j + x_i, no 1/sqrt(d) scaling."""

    def conv1x1(conv: nn.Conv2d) -> torch.Tensor:
        return torch.einsum("oc,bchw->bohw", conv.weight[:, :, 0, 0], x) + conv.bias[:, None, None]

    q, k, v = (conv1x1(conv).flatten(2) for conv in (pam.query_conv, pam.key_conv, pam.value_conv))
    energy = torch.einsum("bdi,bdj->bij", q, k)  # (B, N, N)
    weights = energy.exp() / energy.exp().sum(dim=-1, keepdim=True)
    out = torch.einsum("bij,bcj->bci", weights, v).view_as(x)
    return pam.gamma * out + x


def test_every_pam_mode_agrees_with_the_others_and_the_formula():
    # In float64, so that the kernels' different summation orders (flash accumulates blockwise) stay far below
    # the tolerance and any real difference shows.
    x = torch.randn(2, 16, 7, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    outputs, grads = {}, {}
    for mode in ("fused", "fused_heads", "naive"):
        pam = randomised_pam(16, mode).double()
        inputs = x.clone().requires_grad_(True)
        out = pam(inputs)
        (out * torch.linspace(-1, 1, out.numel(), dtype=torch.float64).view_as(out)).sum().backward()
        outputs[mode] = out.detach()
        grads[mode] = {"input": inputs.grad, **{name: p.grad for name, p in pam.named_parameters()}}
        with torch.no_grad():
            torch.testing.assert_close(out, pam_formula(pam, x), rtol=1e-10, atol=1e-10)
    params = {f"{conv}.{kind}" for conv in ("query_conv", "key_conv", "value_conv") for kind in ("weight", "bias")}
    for mode in ("fused", "fused_heads"):
        torch.testing.assert_close(outputs[mode], outputs["naive"], rtol=1e-10, atol=1e-10)
        assert set(grads[mode]) == {"input", "gamma", *params}
        for name, grad in grads[mode].items():
            torch.testing.assert_close(grad, grads["naive"][name], rtol=1e-10, atol=1e-10, msg=f"{mode} {name}")


def test_fused_heads_pam_takes_the_flash_kernel_and_never_builds_the_n_by_n_matrix():
    # On a CPU "fused" falls back to PyTorch's math path (query width 2 ≠ value width 16), which multiplies
    # out the (B, N, N) matrix; "fused_heads" gives equal widths and reaches the flash kernel.
    x = torch.randn(1, 16, 8, 8)
    ops = {}
    for mode in ("fused", "fused_heads"):
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU], record_shapes=True) as prof:
            randomised_pam(16, mode)(x)
        ops[mode] = {(event.key, str(event.input_shapes)) for event in prof.key_averages(group_by_input_shape=True)}
    assert any("flash_attention" in op for op, _ in ops["fused_heads"])
    assert not any("flash_attention" in op for op, _ in ops["fused"])
    n_by_n = "[1, 1, 64, 64]"  # the math path's (B, heads, N, N) scores
    assert any(n_by_n in shapes for _, shapes in ops["fused"])
    assert not any("64, 64]" in shapes for _, shapes in ops["fused_heads"])


@pytest.mark.parametrize("mode", ["fused", "fused_heads"])
@pytest.mark.parametrize("channels_last", [False, True])
def test_fused_pam_gives_sdpa_inputs_with_a_contiguous_last_dimension(mode, channels_last, monkeypatch):
    # CUDA's fused kernels reject any other stride and fall back to the math path's N × N matrix.
    strides = []
    sdpa = torch.nn.functional.scaled_dot_product_attention

    def recording_sdpa(q, k, v, **kwargs):
        strides.extend(t.stride(-1) for t in (q, k, v))
        return sdpa(q, k, v, **kwargs)

    monkeypatch.setattr(torch.nn.functional, "scaled_dot_product_attention", recording_sdpa)
    pam = randomised_pam(16, mode)
    x = torch.randn(2, 16, 5, 6)
    if channels_last:
        pam = pam.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(pam(x), pam_formula(pam, x), rtol=1e-5, atol=1e-5)
    assert strides == [1, 1, 1]


def test_pam_parameters_and_identity_at_init():
    # Official PAM_Module(512): query / key 512 -> 64 with bias, value 512 -> 512 with bias, gamma.
    pam = PositionAttention(512)
    assert pam.key_channels == 64
    assert n_params(pam) == 2 * (512 * 64 + 64) + (512 * 512 + 512) + 1 == 328_321
    x = torch.randn(1, 32, 4, 6)
    torch.testing.assert_close(PositionAttention(32)(x), x)


def test_pam_attention_weights_of_chosen_queries_are_rows_of_the_full_matrix():
    pam = randomised_pam(16, "naive")
    x = torch.randn(2, 16, 6, 5)
    queries = torch.tensor([0, 7, 29])
    weights = pam.attention_weights(x, queries)
    q = pam.query_conv(x).flatten(2)
    k = pam.key_conv(x).flatten(2)
    full = torch.softmax(torch.einsum("bdi,bdj->bij", q, k), dim=-1)  # (B, N, N)
    assert weights.shape == (2, 3, 30)
    torch.testing.assert_close(weights, full[:, queries])
    torch.testing.assert_close(weights.sum(dim=-1), torch.ones(2, 3))


def test_pam_rejects_bad_input():
    pam = PositionAttention(16)
    with pytest.raises(ValueError, match=r"expects input of shape \(B, 16, H, W\)"):
        pam(torch.randn(1, 8, 4, 4))
    with pytest.raises(ValueError, match="mode must be one of"):
        PositionAttention(16, mode="flash")
    with pytest.raises(ValueError, match="heads of the query width 3"):
        PositionAttention(20, reduction=6, mode="fused_heads")
    with pytest.raises(ValueError, match=r"queries must lie in \[0, N = H·W = 16\)"):
        pam.attention_weights(torch.randn(1, 16, 4, 4), torch.tensor([16]))


def cam_formula(x: torch.Tensor, gamma: float, mode: str) -> torch.Tensor:
    """Eq. (3)-(4): E_j = β Σ_i X_ji A_i + A_j; official X = softmax(max - e), paper X = softmax(e)."""
    a = x.flatten(2)  # (B, C, N)
    energy = torch.einsum("bin,bjn->bij", a, a)
    if mode == "official":
        energy = energy.max(dim=-1, keepdim=True).values - energy
    weights = energy.exp() / energy.exp().sum(dim=-1, keepdim=True)
    return gamma * torch.einsum("bji,bin->bjn", weights, a).view_as(x) + x


@pytest.mark.parametrize("mode", ["official", "paper"])
def test_cam_equals_formula(mode):
    torch.manual_seed(0)
    x = torch.randn(2, 12, 5, 4) * 0.3
    cam = ChannelAttention(mode)
    with torch.no_grad():
        cam.gamma.fill_(0.6)
    torch.testing.assert_close(cam(x), cam_formula(x, 0.6, mode))
    torch.testing.assert_close(cam.attention(x).sum(dim=-1), torch.ones(2, 12))


def test_official_cam_is_softmax_of_minus_energy():
    # Softmax is shift-invariant per row, so softmax(max - e) = softmax(-e): dissimilar channels weigh most.
    x = torch.randn(1, 8, 3, 3) * 0.3
    a = x.flatten(2)
    energy = a @ a.transpose(1, 2)
    torch.testing.assert_close(ChannelAttention("official").attention(x), torch.softmax(-energy, dim=-1))
    torch.testing.assert_close(ChannelAttention("paper").attention(x), torch.softmax(energy, dim=-1))


def test_cam_is_identity_at_init_and_has_one_parameter():
    cam = ChannelAttention()
    assert n_params(cam) == 1 and torch.count_nonzero(cam.gamma) == 0
    x = torch.randn(2, 8, 3, 5)
    torch.testing.assert_close(cam(x), x)
    with pytest.raises(ValueError, match="mode must be one of"):
        ChannelAttention("softmax")


def test_cam_energies_stay_fp32_under_bf16_autocast():
    # bf16 would round energies of ~N = 1024 terms by more than the softmax's scale.
    torch.manual_seed(0)
    x = torch.randn(1, 8, 32, 32) * 0.2
    cam = ChannelAttention()
    with torch.no_grad():
        cam.gamma.fill_(1.0)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        attention = cam.attention(x.bfloat16())
        out = cam(x.bfloat16())
    assert attention.dtype == torch.float32 and out.dtype == torch.bfloat16
    torch.testing.assert_close(attention, cam.attention(x.bfloat16().float()))
