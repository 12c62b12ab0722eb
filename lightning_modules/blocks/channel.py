"""Channel (and spatial) attention blocks: SE, ECA and CBAM, as in their official code.

Every block re-weights a feature map and keeps its shape, ``(B, C, H, W) → (B, C, H, W)``, takes
``channels`` first and names its knobs as timm does (``rd_ratio``, ``rd_channels``,
``rd_divisor``, ``act_layer``, ``gate_layer``), so that it drops into timm's ResNet blocks
(``block_args=dict(attn_layer=SqueezeExcite)``) as well as into any other network.

Where these blocks and timm's differ (all on purpose, to match the official models):

- the reduced width is ``floor(C · rd_ratio)`` (``rd_divisor=1``, the papers' C/r), not rounded to a
  multiple of 8 as timm's ``SEModule`` does;
- the MLPs of SE and CBAM have biases (official Caffe SE model, official CBAM code); timm's CBAM has none;
- CBAM's spatial gate has a BatchNorm after its convolution whose weight starts at 0 (official code);
- max pooling (global or across channels) sends the gradient to one of tied maxima, the element whose index
  ``max`` returns, as the official ``F.max_pool2d`` and ``torch.max(x, 1)[0]`` do; ``torch.amax`` (timm's
  choice) would split it equally between them. Forward values are the same either way.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from timm.layers import create_act_layer, make_divisible
from torch import nn

LayerType = str | type[nn.Module] | Callable[..., nn.Module]

SE_POOL_TYPES = ("avg", "max")
CBAM_POOL_TYPES = ("avg", "max")
CBAM_SPATIAL_KERNEL_SIZES = (3, 5, 7)
CBAM_CHANNEL_GATES = ("mlp", "eca")


def _check_channels(channels: Any) -> int:
    if isinstance(channels, bool) or not isinstance(channels, int) or channels < 1:
        raise ValueError(f"channels must be a positive integer (the C of (B, C, H, W) inputs), got {channels!r}.")
    return channels


def _check_input(x: torch.Tensor, channels: int, block: str) -> None:
    if x.ndim != 4 or x.shape[1] != channels:
        raise ValueError(f"{block} expects input of shape (B, {channels}, H, W), got {tuple(x.shape)}.")


def reduced_channels(
    channels: int, rd_ratio: float = 1 / 16, rd_channels: int | None = None, rd_divisor: int = 1
) -> int:
    """Width of the bottleneck of an SE / CBAM MLP.

    ``rd_channels`` wins when given. Otherwise ``rd_divisor=1`` gives the papers' ``C // r`` with
    ``r = 1 / rd_ratio`` (``floor(C · rd_ratio)``, at least 1), as the official SE prototxt (256 → 16) and
    CBAM code (``gate_channels // reduction_ratio``) do; ``rd_divisor > 1`` rounds to a multiple of it as
    timm's ``make_divisible`` does (timm's SE default is 8).
    """
    channels = _check_channels(channels)
    if rd_channels is not None:
        if isinstance(rd_channels, bool) or not isinstance(rd_channels, int) or rd_channels < 1:
            raise ValueError(f"rd_channels must be a positive integer, got {rd_channels!r}.")
        return rd_channels
    if not 0 < rd_ratio <= 1:
        raise ValueError(f"rd_ratio must be in (0, 1] (1 / the reduction ratio r), got {rd_ratio!r}.")
    if rd_divisor == 1:
        # The tolerance keeps e.g. 48 * (1 / 3) = 15.999... at 16.
        return max(1, math.floor(channels * rd_ratio + 1e-6))
    return make_divisible(channels * rd_ratio, rd_divisor)


def _global_pool(x: torch.Tensor, pool_type: str) -> torch.Tensor:
    """``(B, C, H, W) → (B, C)`` global average or max pooling.

    The max is one ``F.max_pool2d`` window covering the whole map, the official CBAM op, rather than
    ``torch.amax``: both give the same values, but with tied maxima ``amax`` splits the gradient equally
    between them while ``max_pool2d`` sends all of it to the single element its index points at, so the
    gradient is bit for bit the official one (on every device, since it is the same kernel).
    """
    if pool_type == "avg":
        return x.mean(dim=(2, 3))
    return F.max_pool2d(x, kernel_size=tuple(x.shape[-2:])).flatten(1)


def _check_pool_types(pool_types: Sequence[str] | str) -> tuple[str, ...]:
    pool_types = tuple(pool_types) if not isinstance(pool_types, str) else (pool_types,)
    if not pool_types or len(set(pool_types)) != len(pool_types) or not set(pool_types) <= set(CBAM_POOL_TYPES):
        raise ValueError(
            f"pool_types must be a non-empty subset of {CBAM_POOL_TYPES} without repeats, got {pool_types!r}."
        )
    return pool_types


class SqueezeExcite(nn.Module):
    """Squeeze-and-Excitation block (Hu et al., CVPR 2018, Sec. 3, Eq. 2-4).

    ``z = avgpool(x)`` (Eq. 2), ``s = σ(W2 δ(W1 z + b1) + b2)`` (Eq. 3), ``y = s · x`` channel-wise (Eq. 4),
    with ``W1 ∈ R^{C/r × C}``, ``W2 ∈ R^{C × C/r}``, δ = ReLU and σ = sigmoid. The two FC layers are 1×1
    convolutions with biases, as in the official Caffe models (``conv2_1_1x1_down`` 256 → 16 and
    ``conv2_1_1x1_up`` 16 → 256 in SE-ResNet-50, r = 16 in every released model).
    ``pool_type="max"`` squeezes by global max pooling instead, ``z_c = max_{h,w} x_c(h, w)``: the
    squeeze-operator ablation of the journal version (TPAMI 2020 [mem]; the released models average). Its
    gradient goes to a single one of tied maxima, as with the official ``F.max_pool2d``.

    Parameters: ``2 · C · C/r + C/r + C`` (8,464 for C = 256, r = 16), the same for both ``pool_type``
    (pooling has no parameters).

    Args:
        channels: C.
        rd_ratio: 1 / r (default 1/16, the papers' r = 16).
        rd_channels: the bottleneck width C/r itself, overriding ``rd_ratio``.
        rd_divisor: 1 keeps ``C // r`` (paper); 8 rounds as timm's ``SEModule``.
        act_layer: δ; gate_layer: σ (classes or timm names such as ``"relu"``, ``"sigmoid"``).
        bias: biases in both FC layers (official: True; timm and several re-implementations: False).
        pool_type: the squeeze, ``"avg"`` (Eq. 2, default) or ``"max"`` (global max pooling).

    Shapes: ``(B, C, H, W) → (B, C, H, W)``.
    """

    def __init__(
        self,
        channels: int,
        rd_ratio: float = 1 / 16,
        rd_channels: int | None = None,
        rd_divisor: int = 1,
        act_layer: LayerType = nn.ReLU,
        gate_layer: LayerType = nn.Sigmoid,
        bias: bool = True,
        pool_type: str = "avg",
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        self.channels = _check_channels(channels)
        if pool_type not in SE_POOL_TYPES:
            raise ValueError(
                f"SqueezeExcite pool_type must be one of {SE_POOL_TYPES} (global average or global max pooling), "
                f"got {pool_type!r}."
            )
        self.pool_type = pool_type
        self.rd_channels = reduced_channels(channels, rd_ratio, rd_channels, rd_divisor)
        self.fc1 = nn.Conv2d(channels, self.rd_channels, 1, bias=bias, device=device, dtype=dtype)
        self.act = create_act_layer(act_layer)
        self.fc2 = nn.Conv2d(self.rd_channels, channels, 1, bias=bias, device=device, dtype=dtype)
        self.gate = create_act_layer(gate_layer)
        for fc in (self.fc1, self.fc2):
            if fc.bias is not None:
                nn.init.zeros_(fc.bias)  # Caffe's default bias filler

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_input(x, self.channels, "SqueezeExcite")
        z = _global_pool(x, self.pool_type)[:, :, None, None]  # (B, C, 1, 1)
        s = self.gate(self.fc2(self.act(self.fc1(z))))  # (B, C, 1, 1)
        return x * s


def eca_kernel_size(channels: int, gamma: float = 2, beta: float = 1) -> int:
    """ECA's adaptive kernel size ``k = ψ(C) = |log2(C) / γ + b / γ|_odd`` (Wang et al., CVPR 2020, Eq. 12).

    As in the common code: ``t = int(|(log2(C) + b) / γ|)``, ``k = t`` if t is odd else ``t + 1``.
    With γ = 2, b = 1: C = 64 → 3, 128 → 5, 256 → 5, 512 → 5, 1024 → 5, 2048 → 7.
    """
    channels = _check_channels(channels)
    t = int(abs((math.log2(channels) + beta) / gamma))
    return t if t % 2 else t + 1


def _resolve_eca_kernel_size(channels: int, kernel_size: Any, gamma: float, beta: float, name: str) -> int:
    """``kernel_size`` itself when a positive odd integer, ψ(C) when ``None``; ``name`` labels the error."""
    if kernel_size is None:
        return eca_kernel_size(channels, gamma, beta)
    if isinstance(kernel_size, bool) or not isinstance(kernel_size, int) or kernel_size < 1 or not kernel_size % 2:
        raise ValueError(
            f"{name} must be a positive odd integer (odd keeps C channels), or None for the adaptive "
            f"k = ψ(C), got {kernel_size!r}."
        )
    return kernel_size


class ECA(nn.Module):
    """Efficient Channel Attention (Wang et al., CVPR 2020, Sec. 3.2, Eq. 9 and 12).

    ``y = avgpool(x)`` viewed as a length-C sequence ``(B, 1, C)``; ``ω = σ(C1D_k(y))`` (Eq. 9), a 1-D
    convolution of kernel k across channels (padding (k - 1) / 2, no bias: official ``eca_layer``);
    output ``ω · x`` channel-wise. No dimensionality reduction, k parameters.

    Args:
        channels: C.
        kernel_size: a fixed odd k, or ``None`` for the adaptive ``k = ψ(C)`` of :func:`eca_kernel_size`.
            The official module defaults to k = 3 and the released ImageNet models pass k per stage
            (ECA-ResNet-50 "k3557"); see ``lightning_modules.classification_models``.
        gamma, beta: γ and b of ψ (2 and 1 in the paper).
        gate_layer: σ.

    Shapes: ``(B, C, H, W) → (B, C, H, W)``.
    """

    def __init__(
        self,
        channels: int,
        kernel_size: int | None = None,
        gamma: float = 2,
        beta: float = 1,
        gate_layer: LayerType = nn.Sigmoid,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        self.channels = _check_channels(channels)
        kernel_size = _resolve_eca_kernel_size(channels, kernel_size, gamma, beta, f"{type(self).__name__} kernel_size")
        self.kernel_size = kernel_size
        self.conv = nn.Conv1d(1, 1, kernel_size, padding=(kernel_size - 1) // 2, bias=False, device=device, dtype=dtype)
        self.gate = create_act_layer(gate_layer)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_input(x, self.channels, "ECA")
        b, c = x.shape[:2]
        y = x.mean(dim=(2, 3)).view(b, 1, c)  # (B, 1, C)
        w = self.gate(self.conv(y))  # (B, 1, C)
        return x * w.view(b, c, 1, 1)


class CBAMChannelGate(nn.Module):
    """CBAM's channel attention (Woo et al., ECCV 2018, Sec. 3, Eq. 2).

    ``M_c(F) = σ(MLP(avgpool(F)) + MLP(maxpool(F)))``, one MLP ``C → C/r → C`` (ReLU between, biases as in
    the official ``ChannelGate``) shared by the pooled descriptors; output ``M_c(F) · F`` channel-wise.
    ``pool_types`` picks the descriptors (the paper's Table 1 ablation: avg, max, avg & max).

    Parameters: ``2 · C · C/r + C/r + C`` (as SE with biases).
    Shapes: ``(B, C, H, W) → (B, C, H, W)``.
    """

    def __init__(
        self,
        channels: int,
        rd_ratio: float = 1 / 16,
        rd_channels: int | None = None,
        rd_divisor: int = 1,
        pool_types: Sequence[str] = CBAM_POOL_TYPES,
        act_layer: LayerType = nn.ReLU,
        gate_layer: LayerType = nn.Sigmoid,
        mlp_bias: bool = True,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        self.channels = _check_channels(channels)
        self.pool_types = _check_pool_types(pool_types)
        self.rd_channels = reduced_channels(channels, rd_ratio, rd_channels, rd_divisor)
        self.mlp = nn.Sequential(
            nn.Linear(channels, self.rd_channels, bias=mlp_bias, device=device, dtype=dtype),
            create_act_layer(act_layer),
            nn.Linear(self.rd_channels, channels, bias=mlp_bias, device=device, dtype=dtype),
        )
        self.gate = create_act_layer(gate_layer)
        for layer in self.mlp:
            if isinstance(layer, nn.Linear) and layer.bias is not None:
                nn.init.zeros_(layer.bias)  # the official ResidualNet zeroes every bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_input(x, self.channels, "CBAMChannelGate")
        logits = sum(self.mlp(_global_pool(x, name)) for name in self.pool_types)  # (B, C)
        return x * self.gate(logits)[:, :, None, None]


class ECAChannelGate(ECA):
    """CBAM's channel attention with ECA's 1-D convolution in place of the MLP.

    ``M_c(F) = σ(C1D_k(avgpool(F)) + C1D_k(maxpool(F)))``: CBAM's Eq. 2 (Woo et al., ECCV 2018) with the
    shared MLP replaced by ECA's ``C1D_k`` (Wang et al., CVPR 2020, Eq. 9). Each pooled descriptor, viewed as
    a length-C sequence ``(B, 1, C)``, goes through the same ``Conv1d(1, 1, k)`` (padding (k - 1) / 2, no
    bias, as the official ``eca_layer``); the results are summed, passed through σ and multiply ``F``
    channel-wise. No dimensionality reduction. There is no official module for this combination: the pooling
    and the sum follow ``ChannelGate`` of Jongchan/attention-module ``MODELS/cbam.py`` (max by
    ``F.max_pool2d``), the convolution ``eca_layer`` of BangguWu/ECANet ``models/eca_module.py``.

    Args:
        channels: C.
        kernel_size: a fixed odd k, or ``None`` for ECA's adaptive ``k = ψ(C)`` (:func:`eca_kernel_size`).
        gamma, beta: γ and b of ψ (2 and 1 in the ECA paper).
        pool_types: the descriptors, a non-empty subset of ``("avg", "max")`` (CBAM's Table 1 ablation).
        gate_layer: σ.

    Parameters: ``k`` (5 for C = 256 with the adaptive k). Shapes: ``(B, C, H, W) → (B, C, H, W)``.
    """

    def __init__(
        self,
        channels: int,
        kernel_size: int | None = None,
        gamma: float = 2,
        beta: float = 1,
        pool_types: Sequence[str] = CBAM_POOL_TYPES,
        gate_layer: LayerType = nn.Sigmoid,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__(channels, kernel_size, gamma, beta, gate_layer, device=device, dtype=dtype)
        self.pool_types = _check_pool_types(pool_types)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_input(x, self.channels, "ECAChannelGate")
        b, c = x.shape[:2]
        logits = sum(self.conv(_global_pool(x, name).view(b, 1, c)) for name in self.pool_types)  # (B, 1, C)
        return x * self.gate(logits).view(b, c, 1, 1)


class CBAMSpatialGate(nn.Module):
    """CBAM's spatial attention (Woo et al., ECCV 2018, Sec. 3, Eq. 3), as the official ``SpatialGate``.

    ``M_s(F) = σ(BN(conv_k×k([max_c(F); mean_c(F)])))``: the channel-wise max and mean maps ``(B, 2, H, W)``
    (official order: max first; the paper writes [avg; max]), a k×k convolution 2 → 1 without bias,
    BatchNorm over the single channel (eps 1e-5, momentum 0.01, affine) and a sigmoid; output ``M_s(F) · F``.
    The BatchNorm is in the official code but not in the paper's equation; its weight starts at 0
    (official init), so the gate starts at σ(0) = 0.5 everywhere.

    Parameters: ``2 k² + 2`` (100 for k = 7). Shapes: ``(B, C, H, W) → (B, C, H, W)``.
    """

    def __init__(
        self,
        kernel_size: int = 7,
        gate_layer: LayerType = nn.Sigmoid,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        if kernel_size not in CBAM_SPATIAL_KERNEL_SIZES:
            raise ValueError(
                f"CBAM spatial kernel_size must be one of {CBAM_SPATIAL_KERNEL_SIZES}, got {kernel_size!r}."
            )
        self.kernel_size = kernel_size
        self.conv = nn.Conv2d(2, 1, kernel_size, padding=(kernel_size - 1) // 2, bias=False, device=device, dtype=dtype)
        self.bn = nn.BatchNorm2d(1, eps=1e-5, momentum=0.01, device=device, dtype=dtype)
        self.gate = create_act_layer(gate_layer)
        nn.init.kaiming_normal_(self.conv.weight, mode="fan_out", nonlinearity="relu")
        nn.init.zeros_(self.bn.weight)
        nn.init.zeros_(self.bn.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4:
            raise ValueError(f"CBAMSpatialGate expects input of shape (B, C, H, W), got {tuple(x.shape)}.")
        # The channel max by ``max`` (the official ``torch.max(x, 1)[0]``), not ``amax``: same values, but the
        # gradient of tied maxima goes to the one element whose index ``max`` returns instead of being split
        # equally, bit for bit the official gradient.
        channel_max = x.max(dim=1, keepdim=True).values
        pooled = torch.cat([channel_max, x.mean(dim=1, keepdim=True)], dim=1)  # (B, 2, H, W)
        return x * self.gate(self.bn(self.conv(pooled)))  # gate (B, 1, H, W)


class CBAM(nn.Module):
    """Convolutional Block Attention Module (Woo et al., ECCV 2018, Sec. 3, Eq. 1).

    ``F' = M_c(F) ⊗ F``, then ``F'' = M_s(F') ⊗ F'``: :class:`CBAMChannelGate` followed by
    :class:`CBAMSpatialGate` (sequential, channel first: the paper's best arrangement, Table 3).
    ``channel_gate="eca"`` swaps the channel gate's MLP for ECA's 1-D convolution (:class:`ECAChannelGate`,
    ``M_c(F) = σ(C1D_k(avgpool(F)) + C1D_k(maxpool(F)))``); the spatial gate is unchanged.

    Args:
        channels: C.
        rd_ratio, rd_channels, rd_divisor, act_layer, mlp_bias: of the MLP channel gate (r = 16).
        pool_types: the channel gate's descriptors (either gate).
        spatial_kernel_size: k of the spatial gate, 3, 5 or 7 (paper and official code: 7).
        spatial: False leaves the spatial gate out (channel attention only, as in the paper's Table 1).
        gate_layer: σ of both gates.
        channel_gate: ``"mlp"`` (default, the paper's and official ``ChannelGate``, :class:`CBAMChannelGate`)
            or ``"eca"`` (:class:`ECAChannelGate`). The ECA gate has no MLP, so with ``"eca"`` the MLP-only
            arguments (``rd_ratio``, ``rd_channels``, ``rd_divisor``, ``act_layer``, ``mlp_bias``) must keep
            their defaults: any other value raises a ValueError rather than being silently ignored. Likewise
            ``eca_kernel_size`` must stay ``None`` with ``"mlp"``.
        eca_kernel_size: k of the ECA gate, a positive odd integer, or ``None`` for the adaptive ``k = ψ(C)``.

    Parameters: ``2 · C · C/r + C/r + C + 2 k_s² + 2`` with the MLP gate (8,564 for C = 256, r = 16,
    k_s = 7); ``k + 2 k_s² + 2`` with the ECA gate (105 for C = 256: ψ(256) = 5, k_s = 7).
    Shapes: ``(B, C, H, W) → (B, C, H, W)``.
    """

    def __init__(
        self,
        channels: int,
        rd_ratio: float = 1 / 16,
        rd_channels: int | None = None,
        rd_divisor: int = 1,
        pool_types: Sequence[str] = CBAM_POOL_TYPES,
        spatial_kernel_size: int = 7,
        spatial: bool = True,
        act_layer: LayerType = nn.ReLU,
        gate_layer: LayerType = nn.Sigmoid,
        mlp_bias: bool = True,
        channel_gate: str = "mlp",
        eca_kernel_size: int | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        if channel_gate not in CBAM_CHANNEL_GATES:
            raise ValueError(
                f"CBAM channel_gate must be one of {CBAM_CHANNEL_GATES} (the paper's shared MLP or ECA's 1-D "
                f"convolution), got {channel_gate!r}."
            )
        self.channel_gate_type = channel_gate
        self.channel_gate: CBAMChannelGate | ECAChannelGate
        if channel_gate == "mlp":
            if eca_kernel_size is not None:
                raise ValueError(
                    f"CBAM eca_kernel_size={eca_kernel_size!r} is only used with channel_gate='eca'; "
                    "leave it None with channel_gate='mlp'."
                )
            self.channel_gate = CBAMChannelGate(
                channels,
                rd_ratio,
                rd_channels,
                rd_divisor,
                pool_types,
                act_layer,
                gate_layer,
                mlp_bias,
                device=device,
                dtype=dtype,
            )
        else:
            mlp_only = {
                "rd_ratio": rd_ratio != 1 / 16,
                "rd_channels": rd_channels is not None,
                "rd_divisor": rd_divisor != 1,
                "act_layer": act_layer is not nn.ReLU,
                "mlp_bias": mlp_bias is not True,
            }
            if any(mlp_only.values()):
                given = ", ".join(name for name, changed in mlp_only.items() if changed)
                raise ValueError(
                    f"CBAM(channel_gate='eca') has no MLP, so {given} would be unused; leave them at their defaults "
                    "or use channel_gate='mlp'."
                )
            channels = _check_channels(channels)
            kernel_size = _resolve_eca_kernel_size(channels, eca_kernel_size, 2, 1, "CBAM eca_kernel_size")
            self.channel_gate = ECAChannelGate(
                channels, kernel_size, pool_types=pool_types, gate_layer=gate_layer, device=device, dtype=dtype
            )
        self.spatial_gate = (
            CBAMSpatialGate(spatial_kernel_size, gate_layer, device=device, dtype=dtype) if spatial else None
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.channel_gate(x)
        return x if self.spatial_gate is None else self.spatial_gate(x)


ATTENTION_LAYERS: dict[str, type[nn.Module]] = {"se": SqueezeExcite, "eca": ECA, "cbam": CBAM}
AttentionSpec = str | type[nn.Module] | Callable[..., nn.Module] | None


def get_attention(attention: AttentionSpec) -> Callable[..., nn.Module] | None:
    """The block class of ``attention``: ``"se"``, ``"eca"``, ``"cbam"``, a class or a callable
    ``(channels, **kwargs) -> nn.Module`` (returned as is); ``None`` / ``"none"`` → ``None``.

    The result can go straight into timm's ResNet: ``block_args=dict(attn_layer=get_attention("se"))``.
    """
    if attention is None:
        return None
    if isinstance(attention, str):
        key = attention.lower()
        if key == "none":
            return None
        if key not in ATTENTION_LAYERS:
            raise ValueError(
                f"Unknown attention {attention!r}: expected one of {', '.join(ATTENTION_LAYERS)}, 'none' / None, "
                "or a class taking channels first."
            )
        return ATTENTION_LAYERS[key]
    if callable(attention):
        return attention
    raise TypeError(f"attention must be a name, a class or a callable, got {type(attention).__name__}.")


def make_attention(attention: AttentionSpec, channels: int, **kwargs: Any) -> nn.Module:
    """Build an attention block for ``channels`` input channels; ``None`` / ``"none"`` → ``nn.Identity``.

    ``make_attention("se", 256, rd_ratio=1 / 8)``, ``make_attention("eca", 512, kernel_size=5)``,
    ``make_attention(MyBlock, 64)``. Every block maps ``(B, C, H, W) → (B, C, H, W)``.
    """
    layer = get_attention(attention)
    if layer is None:
        if kwargs:
            raise ValueError(f"attention {attention!r} builds no block and takes no arguments; got {sorted(kwargs)}.")
        _check_channels(channels)
        return nn.Identity()
    return layer(channels, **kwargs)
