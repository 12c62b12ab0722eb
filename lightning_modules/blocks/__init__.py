"""Attention blocks: small ``nn.Module``s, each with its paper's equation; usable without Lightning."""

from lightning_modules.blocks.channel import (
    ATTENTION_LAYERS,
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
from lightning_modules.blocks.dual_attention import ChannelAttention, PositionAttention
from lightning_modules.blocks.gated_conv import GatedSpatialConv2d

__all__ = [
    "ATTENTION_LAYERS",
    "CBAM",
    "ECA",
    "CBAMChannelGate",
    "CBAMSpatialGate",
    "ChannelAttention",
    "ECAChannelGate",
    "GatedSpatialConv2d",
    "PositionAttention",
    "SqueezeExcite",
    "eca_kernel_size",
    "get_attention",
    "make_attention",
    "reduced_channels",
]
