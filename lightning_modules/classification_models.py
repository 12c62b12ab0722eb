"""ResNet-18/34/50/101 and MobileNetV2 with SE, ECA or CBAM in every residual block, built on timm's models.

All three official codes put the block at the same place (SE prototxt, ECANet ``eca_resnet.py``,
attention-module ``model_resnet.py``): on the residual branch after its last BatchNorm and before
the addition, ``y = ReLU(shortcut(x) + A(BN3(conv3(...))))``, one block per residual block (16 in ResNet-50).
timm's ``BasicBlock`` / ``Bottleneck`` call their ``attn_layer`` exactly there, so an attention
ResNet is ``timm.create_model("resnet50", block_args=dict(attn_layer=...))``. The same timm
arguments make a dilated segmentation backbone::

    Backbone("resnet50", output_stride=8, **attention_resnet_kwargs(50, "cbam"))

The network is timm's (torchvision-style, "ResNet v1.5": stride 2 in the 3×3 convolution), as in the
official ECA and CBAM code; the official Caffe SE-ResNet-50 strides in the first 1×1 convolution
("v1", ``stride_in_1x1=True``), which costs fewer multiply-adds (3.86 G instead of 4.09 G for
ResNet-50) with the same parameters. ``zero_init_last`` is off by default: no official code
zero-initialises the last BN of a residual branch.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import partial
from typing import Any

import timm
from timm.models.resnet import BasicBlock, Bottleneck, ResNet
from torch import nn

from lightning_modules.add_attention import add_attention
from lightning_modules.blocks.channel import ECA, AttentionSpec, get_attention

RESNET_LAYOUTS: dict[int, tuple[type[nn.Module], tuple[int, int, int, int]]] = {
    18: (BasicBlock, (2, 2, 2, 2)),
    34: (BasicBlock, (3, 4, 6, 3)),
    50: (Bottleneck, (3, 4, 6, 3)),
    101: (Bottleneck, (3, 4, 23, 3)),
}
DEFAULT_STAGE_PLANES = (64, 128, 256, 512)

# Per-stage ECA kernel sizes of the released ImageNet models (ECANet README: "k3577", "k3357",
# "k3557", "k3357"), passed as k_size by the official eca_resnet18 / 34 / 50 / 101 (an early commit of
# eca_resnet.py built eca_resnet18 with k = 3 whatever its k_size; the current one passes it through).
OFFICIAL_ECA_KERNEL_SIZES: dict[int, tuple[int, int, int, int]] = {
    18: (3, 5, 7, 7),
    34: (3, 3, 5, 7),
    50: (3, 5, 5, 7),
    101: (3, 3, 5, 7),
}


def _check_depth(depth: Any) -> int:
    if depth not in RESNET_LAYOUTS:
        raise ValueError(f"depth must be one of {sorted(RESNET_LAYOUTS)}, got {depth!r}.")
    return depth


def stage_widths(depth: int, planes: Sequence[int] | None = None) -> list[int]:
    """Output channels of the four stages: ``planes × expansion`` (ResNet-50: 256, 512, 1024, 2048)."""
    block, _ = RESNET_LAYOUTS[_check_depth(depth)]
    planes = DEFAULT_STAGE_PLANES if planes is None else tuple(planes)
    if len(planes) != 4:
        raise ValueError(f"a ResNet has 4 stages: planes must have 4 values, got {planes!r}.")
    return [p * block.expansion for p in planes]


class StageAttention:
    """An ``attn_layer`` for timm's ResNet whose keyword arguments change from stage to stage.

    timm builds a block's attention as ``attn_layer(channels, device=..., dtype=...)`` and says nothing
    about the stage; in a ResNet every stage has its own output width, so the width names the stage.

    Args:
        attention: the block (name, class or callable; see :func:`get_attention`).
        widths: output channels of each stage, e.g. ``stage_widths(50)``.
        stage_kwargs: per-stage values, e.g. ``{"kernel_size": (3, 5, 5, 7)}`` (ECA-ResNet-50 "k3557").
        **kwargs: arguments shared by every stage.
    """

    def __init__(
        self,
        attention: AttentionSpec,
        widths: Sequence[int],
        stage_kwargs: Mapping[str, Sequence[Any]],
        **kwargs: Any,
    ) -> None:
        layer = get_attention(attention)
        if layer is None:
            raise ValueError("StageAttention needs an attention block, got None.")
        if len(set(widths)) != len(widths):
            raise ValueError(f"stage widths must differ to tell the stages apart, got {list(widths)}.")
        for key, values in stage_kwargs.items():
            if isinstance(values, str) or len(values) != len(widths):
                raise ValueError(f"stage_kwargs[{key!r}] needs one value per stage ({len(widths)}), got {values!r}.")
        self.layer = layer
        self.widths = list(widths)
        self.stage_kwargs = {key: list(values) for key, values in stage_kwargs.items()}
        self.kwargs = kwargs

    def __call__(self, channels: int, **kwargs: Any) -> nn.Module:
        if channels not in self.widths:
            raise ValueError(f"no stage of width {channels}: the stage widths are {self.widths}.")
        stage = self.widths.index(channels)
        per_stage = {key: values[stage] for key, values in self.stage_kwargs.items()}
        return self.layer(channels, **self.kwargs, **per_stage, **kwargs)

    def __repr__(self) -> str:
        name = getattr(self.layer, "__name__", repr(self.layer))
        return f"StageAttention({name}, widths={self.widths}, {self.stage_kwargs}, {self.kwargs})"


def attention_resnet_kwargs(
    depth: int,
    attention: AttentionSpec,
    stage_kwargs: Mapping[str, Sequence[Any]] | None = None,
    planes: Sequence[int] | None = None,
    **attention_kwargs: Any,
) -> dict[str, Any]:
    """The ``timm.create_model("resnet{depth}", ...)`` arguments that put ``attention`` in every residual block.

    ``attention="eca"`` without ``kernel_size`` and without ``stage_kwargs`` takes the official per-stage
    kernel sizes of :data:`OFFICIAL_ECA_KERNEL_SIZES` (ResNet-50: k = 3, 5, 5, 7); ``kernel_size=k`` fixes k,
    ``kernel_size=None`` uses ECA's adaptive ``k = ψ(C)``. ``planes`` are timm's ``channels`` (the stage
    widths before expansion) when they differ from ``(64, 128, 256, 512)``.

    Returns ``{"block_args": {"attn_layer": ...}, "zero_init_last": False}`` (only the latter for no attention).
    """
    _check_depth(depth)
    layer = get_attention(attention)
    kwargs: dict[str, Any] = {"zero_init_last": False}
    if layer is None:
        if attention_kwargs or stage_kwargs:
            raise ValueError("attention None takes no attention arguments.")
        return kwargs
    if stage_kwargs is None and layer is ECA and "kernel_size" not in attention_kwargs:
        stage_kwargs = {"kernel_size": OFFICIAL_ECA_KERNEL_SIZES[depth]}
    if stage_kwargs:
        layer = StageAttention(layer, stage_widths(depth, planes), stage_kwargs, **attention_kwargs)
    elif attention_kwargs:
        layer = partial(layer, **attention_kwargs)
    kwargs["block_args"] = {"attn_layer": layer}
    return kwargs


def move_stride_to_first_conv(model: ResNet) -> ResNet:
    """Turn a timm ResNet (v1.5: stride 2 in the 3×3 conv of a Bottleneck) into the original "v1" layout.

    The official Caffe SE-ResNets (and the original ResNet) stride in the first 1×1 convolution of a
    downsampling bottleneck. The parameters stay the same; the multiply-adds drop (ResNet-50: 4.09 G →
    3.86 G, the number in the SE and CBAM papers). BasicBlocks and dilated stages are left as they are.
    """
    for block in model.modules():
        if isinstance(block, Bottleneck) and block.conv2.stride == (2, 2):
            block.conv1.stride, block.conv2.stride = (2, 2), (1, 1)
    return model


def create_attention_resnet(
    depth: int,
    attention: AttentionSpec = None,
    num_classes: int = 1000,
    stage_kwargs: Mapping[str, Sequence[Any]] | None = None,
    attention_kwargs: Mapping[str, Any] | None = None,
    stride_in_1x1: bool = False,
    **timm_kwargs: Any,
) -> ResNet:
    """ResNet-``depth`` (18, 34, 50, 101) with ``attention`` ("se", "eca", "cbam", a class or None).

    Args:
        depth: 18 / 34 (BasicBlock) or 50 / 101 (Bottleneck).
        attention: the block in every residual block, after the last BN, before the addition.
        num_classes: classifier outputs.
        stage_kwargs, attention_kwargs: see :func:`attention_resnet_kwargs`.
        stride_in_1x1: the "v1" layout of the official Caffe SE models (see :func:`move_stride_to_first_conv`).
        **timm_kwargs: more arguments of timm's ``ResNet``, e.g. ``layers=(1, 1, 1, 1)`` and
            ``channels=(8, 16, 32, 64)`` for a tiny test network, ``in_chans``, ``drop_rate``,
            ``output_stride``, ``device``; ``zero_init_last=True`` for timm's zero-initialised last BN.

    Shapes: ``(B, in_chans, H, W) → (B, num_classes)`` logits.
    """
    kwargs = attention_resnet_kwargs(
        depth, attention, stage_kwargs, timm_kwargs.get("channels"), **dict(attention_kwargs or {})
    )
    kwargs.update(timm_kwargs)
    model = timm.create_model(f"resnet{depth}", pretrained=False, num_classes=num_classes, **kwargs)
    return move_stride_to_first_conv(model) if stride_in_1x1 else model


def eca_mobilenetv2_kernel_size(channels: int) -> dict[str, int]:
    """The official ECA-MobileNetV2's kernel size for a block of ``channels`` outputs (``eca_mobilenetv2.py`` at its
    current commit 5e1301c: k = 1 below 96 channels, 3 from 96; the README's "k13"; an earlier commit, 4329104, had
    k = 1 up to and including 96)."""
    return {"kernel_size": 1 if channels < 96 else 3}


def create_attention_mobilenetv2(
    attention: AttentionSpec = None,
    num_classes: int = 1000,
    attention_kwargs: Mapping[str, Any] | None = None,
    drop_rate: float = 0.25,
    **timm_kwargs: Any,
) -> nn.Module:
    """MobileNetV2 (timm ``mobilenetv2_100``: torchvision's network, 3,504,872 parameters, 300.8 M multiply-adds at
    224) with ``attention`` in each of its 17 inverted residual blocks, after the BatchNorm of the linear 1×1
    projection, with or without a shortcut: the official ``eca_mobilenetv2.py`` placement (:func:`add_attention`).

    Args:
        attention: "se", "eca", "cbam", a class or None. "eca" without a ``kernel_size`` takes the official
            per-block sizes (:func:`eca_mobilenetv2_kernel_size`, 31 parameters in all); "se" / "cbam" use r = 16.
        num_classes: classifier outputs.
        attention_kwargs: arguments of every block (``{"kernel_size": None}``: ECA's adaptive k).
        drop_rate: dropout before the classifier (official ECA-MobileNetV2: 0.25; torchvision's MobileNetV2: 0.2).
        **timm_kwargs: more arguments of timm's ``EfficientNet`` class (``in_chans``, ``device``, ...).

    Shapes: ``(B, in_chans, H, W) → (B, num_classes)`` logits.
    """
    kwargs = dict(attention_kwargs or {})
    per_block = eca_mobilenetv2_kernel_size if get_attention(attention) is ECA and "kernel_size" not in kwargs else None
    model = timm.create_model(
        "mobilenetv2_100", pretrained=False, num_classes=num_classes, drop_rate=drop_rate, **timm_kwargs
    )
    return add_attention(model, attention, "blocks", per_block, **kwargs)
