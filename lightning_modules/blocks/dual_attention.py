"""DANet's position and channel attention modules (Fu et al., CVPR 2019, Sec. 3.2 and 3.3), as in the official code.

Both blocks keep the shape of their input, ``(B, C, H, W) → (B, C, H, W)``, and add their attended features to
the input through a learned scalar γ that starts at 0, so that an untrained block is the identity.

Where these blocks follow the official code (``encoding/nn/da_att.py``: ``PAM_Module``, ``CAM_Module``) rather
than the paper's text:

- the query and key of the position module are reduced to ``C / 8`` channels (SAGAN-style) and have biases;
- the position energies ``Q_i · K_j`` are not scaled by ``1 / sqrt(d)``;
- the channel module applies the softmax to ``max_j(e_ij) - e_ij`` instead of the paper's ``e_ij`` (see
  :class:`ChannelAttention`).

The submodules carry the official names (``query_conv``, ``key_conv``, ``value_conv``, ``gamma``) so that the
released DANet weights load by name.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

PositionMode = Literal["fused", "fused_heads", "naive"]
ChannelMode = Literal["official", "paper"]
POSITION_MODES = ("fused", "fused_heads", "naive")
CHANNEL_MODES = ("official", "paper")


def _check_input(x: torch.Tensor, channels: int | None, block: str) -> None:
    expected = "C" if channels is None else str(channels)
    if x.ndim != 4 or (channels is not None and x.shape[1] != channels):
        raise ValueError(f"{block} expects input of shape (B, {expected}, H, W), got {tuple(x.shape)}.")


def _at_least_fp32(x: torch.Tensor) -> torch.Tensor:
    """``x`` in fp32 if it is in a 16-bit float type, else unchanged (fp64 stays fp64)."""
    return x.to(torch.promote_types(x.dtype, torch.float32))


def _tokens(features: torch.Tensor) -> torch.Tensor:
    """``(B, C, H, W) → (B, N, C)`` with unit stride along C.

    The fused attention kernels on CUDA (flash, memory-efficient, cuDNN) take only inputs whose last dimension
    is contiguous and otherwise fall back silently to the math path, which builds the ``N × N`` matrix. The copy
    costs ``B·N·C`` elements; channels_last features are already in this layout and are not copied.
    """
    return features.flatten(2).transpose(1, 2).contiguous()


class PositionAttention(nn.Module):
    """Position attention module, PAM (DANet Sec. 3.2, Eq. 1-2).

    With ``A ∈ R^{C×H×W}`` and ``N = H·W``: ``Q = W_q A + b_q``, ``K = W_k A + b_k`` (1×1 convolutions to
    ``C / reduction`` channels) and ``V = W_v A + b_v`` (1×1 convolution, C channels);

    - Eq. (1): the paper's ``s_ji = exp(B_i · C_j) / Σ_i exp(B_i · C_j)`` weighs position i for output position
      j; written here, as in the code, for a query position i over key positions j: ``S_ij = softmax_j(Q_i · K_j)``,
      an ``N × N`` matrix without ``1 / sqrt(d)`` scaling (official code);
    - Eq. (2): ``E_i = α Σ_j S_ij V_j + A_i``, α (``gamma``) a learned scalar initialised to 0.

    ``mode="fused"`` calls :func:`torch.nn.functional.scaled_dot_product_attention` with ``scale=1.0`` on one
    head, ``q, k`` of shape ``(B, 1, N, C / reduction)`` and ``v`` of shape ``(B, 1, N, C)``: on CUDA its
    memory-efficient kernel (which accepts a value width other than the query's) never stores the ``N × N``
    matrix (memory linear in N). PyTorch's CPU kernel needs equal query and value widths, so on a CPU the call
    takes PyTorch's math path, which does build the matrix.
    ``mode="fused_heads"`` splits the value into ``C / d`` heads of the query's width ``d`` that share one
    query and key: ``(B, C / d, N, d)`` each, the shape FlashAttention's kernels (CUDA and CPU) take, since they
    need equal query and value widths. It recomputes ``Q Kᵀ`` once per head: ``N² d (C / d - 1)`` more
    multiply-adds than ``"fused"`` (1.8× the attention's FLOPs at C = 512, d = 64), for the faster kernel;
    ``benchmarks/position_attention.py`` measures which wins. Needs ``C`` divisible by ``d``.
    ``mode="naive"`` builds the ``N × N`` softmax explicitly, as the official code does; the three modes compute
    the same function (the tests check forward and gradients to 1e-10 in float64).

    Args:
        channels: C (512 in DANet's head).
        reduction: ``C / d`` of the query and key (8 in the official code: 512 → 64).
        mode: ``"fused"``, ``"fused_heads"`` or ``"naive"``, see above.

    Parameters: ``2 (C d + d) + C² + C + 1`` with ``d = C // reduction`` (328,321 for C = 512).

    Shapes: ``(B, C, H, W) → (B, C, H, W)``.
    """

    def __init__(self, channels: int, reduction: int = 8, mode: PositionMode = "fused") -> None:
        super().__init__()
        if isinstance(channels, bool) or not isinstance(channels, int) or channels < 1:
            raise ValueError(f"channels must be a positive integer (the C of (B, C, H, W) inputs), got {channels!r}.")
        if isinstance(reduction, bool) or not isinstance(reduction, int) or not 1 <= reduction <= channels:
            raise ValueError(f"reduction must be an integer in [1, channels={channels}], got {reduction!r}.")
        if mode not in POSITION_MODES:
            raise ValueError(f"PositionAttention mode must be one of {POSITION_MODES}, got {mode!r}.")
        self.channels = channels
        self.key_channels = channels // reduction
        if mode == "fused_heads" and channels % self.key_channels:
            raise ValueError(
                f"mode='fused_heads' splits the {channels} value channels into heads of the query width "
                f"{self.key_channels} = channels // reduction, which must divide channels; choose another reduction."
            )
        self.mode = mode
        self.query_conv = nn.Conv2d(channels, self.key_channels, 1)
        self.key_conv = nn.Conv2d(channels, self.key_channels, 1)
        self.value_conv = nn.Conv2d(channels, channels, 1)
        self.gamma = nn.Parameter(torch.zeros(1))

    def _queries_keys(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Queries and keys as ``(B, N, d)``."""
        return _tokens(self.query_conv(x)), _tokens(self.key_conv(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_input(x, self.channels, "PositionAttention")
        b, c, h, w = x.shape
        q, k = self._queries_keys(x)  # (B, N, d) each
        v = _tokens(self.value_conv(x))  # (B, N, C)
        if self.mode == "fused":
            out = F.scaled_dot_product_attention(q[:, None], k[:, None], v[:, None], scale=1.0)[:, 0]  # (B, N, C)
        elif self.mode == "fused_heads":
            n, d = q.shape[1], self.key_channels
            heads = c // d
            shared = (b, heads, n, d)
            v_heads = v.reshape(b, n, heads, d).transpose(1, 2)  # (B, heads, N, d): channel block t = head t
            out = F.scaled_dot_product_attention(
                q[:, None].expand(shared), k[:, None].expand(shared), v_heads, scale=1.0
            )  # (B, heads, N, d)
            out = out.transpose(1, 2).reshape(b, n, c)
        else:
            attention = torch.softmax(q @ k.transpose(1, 2), dim=-1)  # (B, N, N), rows: queries i, columns: keys j
            out = attention @ v  # (B, N, C)
        out = out.transpose(1, 2).reshape(b, c, h, w)
        return self.gamma * out + x

    def attention_weights(self, x: torch.Tensor, queries: torch.Tensor) -> torch.Tensor:
        """Rows ``S_i = softmax_j(Q_i · K_j)`` of Eq. (1) for the chosen query positions only.

        Args:
            x: the module's input ``(B, C, H, W)``.
            queries: flat positions ``i = row · W + col`` of the queries, an integer tensor ``(Q,)`` in ``[0, N)``.

        Returns:
            ``(B, Q, N)``: for each query, its attention over the N keys (each row sums to 1). Costs ``Q × N``
            memory, not ``N × N``.
        """
        _check_input(x, self.channels, "PositionAttention")
        n = x.shape[-2] * x.shape[-1]
        if queries.ndim != 1 or queries.is_floating_point() or queries.numel() == 0:
            raise ValueError(f"queries must be a non-empty 1-D integer tensor of flat positions, got {queries!r}.")
        if int(queries.min()) < 0 or int(queries.max()) >= n:
            raise ValueError(f"queries must lie in [0, N = H·W = {n}), got values {queries.tolist()}.")
        q, k = self._queries_keys(x)  # (B, N, d)
        selected = q[:, queries.to(q.device)]  # (B, Q, d)
        return torch.softmax(selected @ k.transpose(1, 2), dim=-1)


class ChannelAttention(nn.Module):
    """Channel attention module, CAM (DANet Sec. 3.3, Eq. 3-4), without any convolution.

    With ``A`` reshaped to ``C × N``: the energy ``e = A Aᵀ`` (``C × C``, ``e_ij = A_i · A_j``), an attention
    matrix ``X`` with rows summing to 1 and ``E_j = β Σ_i X_ji A_i + A_j`` (Eq. 4), β (``gamma``) a learned
    scalar initialised to 0.

    The two modes differ in ``X``:

    - ``"paper"``: Eq. (3), ``X_ji = softmax_i(e_ji)``: the most similar channels get the largest weights;
    - ``"official"`` (default): the released code computes ``softmax_i(max_k(e_jk) - e_ji)``. The softmax does not
      change when a constant is added to a row, so this equals ``softmax_i(-e_ji)``: the *least* similar channels
      get the largest weights. The author explains it as a guard against diverging losses (CASIA-IVA-Lab/DANet
      issue #9) and reports that ``e - max`` trained worse; it is the default because the paper's numbers and the
      released weights were produced with it.

    Args:
        mode: ``"official"`` or ``"paper"``.

    Parameters: 1 (β). Shapes: ``(B, C, H, W) → (B, C, H, W)``.
    """

    def __init__(self, mode: ChannelMode = "official") -> None:
        super().__init__()
        if mode not in CHANNEL_MODES:
            raise ValueError(f"ChannelAttention mode must be one of {CHANNEL_MODES}, got {mode!r}.")
        self.mode = mode
        self.gamma = nn.Parameter(torch.zeros(1))

    def attention(self, x: torch.Tensor) -> torch.Tensor:
        """The channel attention matrix ``X`` of Eq. (3), ``(B, C, H, W) → (B, C, C)``; rows sum to 1.

        Computed in at least fp32, also under autocast: the energies are sums over N = H·W products (thousands), and
        bf16's 8-bit mantissa would round them by more than the differences the softmax responds to.
        """
        _check_input(x, None, "ChannelAttention")
        with torch.autocast(x.device.type, enabled=False):
            a = _at_least_fp32(x).flatten(2)  # (B, C, N)
            energy = a @ a.transpose(1, 2)  # (B, C, C)
            if self.mode == "official":
                energy = energy.amax(dim=-1, keepdim=True) - energy
            return torch.softmax(energy, dim=-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        attention = self.attention(x)  # (B, C, C)
        with torch.autocast(x.device.type, enabled=False):
            out = (attention @ _at_least_fp32(x).flatten(2)).view_as(x)  # (B, C, C) @ (B, C, N)
        return (self.gamma * out).to(x.dtype) + x
