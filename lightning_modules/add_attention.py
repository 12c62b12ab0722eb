"""``add_attention``: put SE, ECA or CBAM into the residual blocks of a timm CNN, where the papers put them.

SE (official Caffe prototxt), ECA (``eca_resnet.py``, ``eca_mobilenetv2.py``) and CBAM (``model_resnet.py``) all
re-weight a block's residual branch after its last BatchNorm and before the addition with the shortcut; in
MobileNetV2 (``eca_mobilenetv2.py``) after the BatchNorm of the linear 1×1 projection, in every inverted residual
block, with or without a shortcut. ``add_attention`` does that in place on a timm model:

- timm's ResNet / ResNeXt blocks (``BasicBlock``, ``Bottleneck``) call their ``se`` slot exactly there; the block
  goes into it, so the model equals ``timm.create_model("resnet50", block_args=dict(attn_layer=...))`` and
  :func:`~lightning_modules.classification_models.create_attention_resnet`, state-dict keys included.
- elsewhere (RegNet's ``Bottleneck``, the EfficientNet-family blocks of MobileNetV2 / V3, EfficientNet, MnasNet:
  ``DepthwiseSeparableConv``, ``InvertedResidual``, ``EdgeResidual``) timm's own ``se`` slot sits after the
  depthwise convolution (the MobileNetV3 / EfficientNet / RegNetY position), not the papers'; the block is
  registered as the residual block's ``attention`` submodule and applied by a forward hook on its last norm layer,
  so the pretrained weights' keys stay as they are. A conversion that replaces that norm layer (SyncBatchNorm for
  DDP) drops the hook with the layer: :func:`restore_attention_hooks` puts it back (the runner calls it after its
  SyncBatchNorm conversion).
- Blocks that have an SE of their own in timm's slot (MobileNetV3, EfficientNet, RegNetY) keep it: the inserted
  block comes in addition, at the papers' place.

Each inserted block is built by its class, with the official initialisation (zero biases for SE and CBAM's MLP,
CBAM's spatial BatchNorm weight at 0, Kaiming for CBAM's convolution), after any pretrained weights were loaded.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Literal

from timm.models import _efficientnet_blocks as efficientnet_blocks
from timm.models import regnet, resnet
from torch import nn

from lightning_modules.blocks.channel import AttentionSpec, get_attention

Where = Literal["blocks", "residual_blocks"]
WHERE: tuple[str, ...] = ("blocks", "residual_blocks")

# Residual block class → (the attribute of its last norm layer, or of the layer ending in it; whether it uses timm's
# ``se`` slot, which sits at the papers' position).
KNOWN_BLOCKS: dict[type[nn.Module], tuple[str, bool]] = {
    resnet.BasicBlock: ("bn2", True),
    resnet.Bottleneck: ("bn3", True),
    regnet.Bottleneck: ("conv3", False),  # ConvNormAct(apply_act=False): 1×1 convolution + BN
    efficientnet_blocks.DepthwiseSeparableConv: ("bn2", False),
    efficientnet_blocks.InvertedResidual: ("bn3", False),  # CondConvResidual too (a subclass)
    efficientnet_blocks.EdgeResidual: ("bn2", False),
}
FAMILIES = (
    "ResNet / ResNeXt / Wide ResNet (resnet.BasicBlock, resnet.Bottleneck)",
    "RegNet (regnet.Bottleneck)",
    "MobileNetV2 / MobileNetV3 / EfficientNet / MnasNet / MixNet (DepthwiseSeparableConv, InvertedResidual, "
    "EdgeResidual)",
)


class AttentionAfter:
    """Forward hook: the output of the hooked layer re-weighted by ``attention`` (a module the block holds)."""

    def __init__(self, attention: nn.Module) -> None:
        self.attention = attention

    def __call__(self, module: nn.Module, args: tuple[Any, ...], output: Any) -> Any:
        return self.attention(output)


def _known(block: nn.Module) -> tuple[str, bool] | None:
    for cls in type(block).__mro__:
        if cls in KNOWN_BLOCKS:
            return KNOWN_BLOCKS[cls]
    return None


def _has_shortcut(block: nn.Module) -> bool:
    if isinstance(block, resnet.BasicBlock | resnet.Bottleneck):
        return True
    if isinstance(block, regnet.Bottleneck):
        return block.downsample is not None
    return bool(getattr(block, "has_skip", False))


def _width(layer: nn.Module) -> int:
    """Output channels of a block's last norm layer (or of the ConvNormAct ending in it)."""
    norm = getattr(layer, "bn", layer)
    channels = getattr(norm, "num_features", None)
    if not isinstance(channels, int):
        raise ValueError(f"cannot tell the output channels of {type(layer).__name__}: it is not a BatchNorm layer.")
    return channels


def restore_attention_hooks(model: nn.Module) -> nn.Module:
    """Hook each block's ``attention`` onto its last norm layer again where that layer has lost the hook (a layer
    replaced after :func:`add_attention`, e.g. by ``convert_sync_batchnorm``); in place, returns ``model``."""
    for _, block in residual_blocks(model):
        attention = getattr(block, "attention", None)
        last_name, use_se_slot = _known(block)
        if attention is None or use_se_slot:
            continue
        last = getattr(block, last_name)
        hooked = any(isinstance(hook, AttentionAfter) for hook in last._forward_hooks.values())
        if not hooked:
            last.register_forward_hook(AttentionAfter(attention))
    return model


def residual_blocks(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The blocks of ``model`` that :func:`add_attention` knows, by name, in order."""
    return [(name, module) for name, module in model.named_modules() if _known(module) is not None]


def add_attention(
    model: nn.Module,
    attention: AttentionSpec,
    where: Where = "blocks",
    block_kwargs: Callable[[int], Mapping[str, Any]] | None = None,
    **kwargs: Any,
) -> nn.Module:
    """Insert ``attention`` ("se", "eca", "cbam", or a class / callable taking the channels first) into every
    residual block of ``model`` (a timm CNN), after the last norm of its residual branch and before the addition.

    Args:
        model: a timm ResNet, ResNeXt, RegNet, MobileNetV2 / V3, EfficientNet, MnasNet... (see :data:`FAMILIES`);
            a ``features_only`` model too. Changed in place and returned.
        attention: the block; None / "none" leaves the model as it is.
        where: ``"blocks"`` every known block (the papers: every ResNet block, every MobileNetV2 inverted residual
            with or without shortcut); ``"residual_blocks"`` only those with a shortcut.
        block_kwargs: per-block arguments from the block's output channels, e.g. ECA-MobileNetV2's official kernel
            sizes ``lambda c: {"kernel_size": 1 if c < 96 else 3}``.
        **kwargs: arguments of every block (``rd_ratio=1 / 8``, ``kernel_size=5``, ...); ECA without
            ``kernel_size`` takes the adaptive ``k = ψ(C)``.

    Returns the model, whose parameters grew by exactly the inserted blocks'.

    Raises:
        ValueError: a model with none of the known blocks (naming the families it knows), a block that already
            has an attention block in that place, or an unknown ``where``.
    """
    if where not in WHERE:
        raise ValueError(f"where must be one of {', '.join(map(repr, WHERE))}, got {where!r}.")
    layer = get_attention(attention)
    if layer is None:
        return model
    blocks = residual_blocks(model)
    if not blocks:
        raise ValueError(
            f"add_attention knows no block of {type(model).__name__}: it inserts into timm's {'; '.join(FAMILIES)}."
        )
    for name, block in blocks:
        if where == "residual_blocks" and not _has_shortcut(block):
            continue
        last_name, use_se_slot = _known(block)
        last = getattr(block, last_name)
        channels = _width(last)
        module = layer(channels, **kwargs, **(block_kwargs(channels) if block_kwargs else {}))
        reference = next(last.parameters(), None)
        if reference is not None:  # the block's device and dtype (a model on "meta", in float64, ...)
            module.to(device=reference.device, dtype=reference.dtype)
        if use_se_slot:
            if block.se is not None:
                raise ValueError(f"block {name!r} already has an attention block in its se slot: {block.se!r}.")
            block.se = module
        else:
            if hasattr(block, "attention"):
                raise ValueError(f"block {name!r} already has an attention block ({type(block.attention).__name__}).")
            block.attention = module
            last.register_forward_hook(AttentionAfter(module))
    return model
