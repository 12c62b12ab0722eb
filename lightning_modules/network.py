"""The contract every segmentation network of this codebase follows.

As in torchvision's segmentation models, a network returns a dict of logits at input resolution:
``{"out": (B, K, H, W), ...}`` plus paper-specific keys (``"aux"``, ``"sa_masks"``, ``"edge"``).
The base class checks the input once, so that every architecture fails the same clear way.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn


def check_images(images: Any, in_chans: int | None = None) -> None:
    """Raise unless ``images`` is a non-empty float ``(B, C, H, W)`` tensor with ``C == in_chans``."""
    channels = "C" if in_chans is None else str(in_chans)
    if not isinstance(images, torch.Tensor):
        raise TypeError(f"images must be a torch.Tensor of shape (B, {channels}, H, W), got {type(images).__name__}.")
    if images.ndim != 4:
        raise ValueError(f"images must have shape (B, {channels}, H, W), got shape {tuple(images.shape)}.")
    if in_chans is not None and images.shape[1] != in_chans:
        raise ValueError(
            f"images have {images.shape[1]} channels but the network was built for in_chans={in_chans}: "
            f"expected shape (B, {in_chans}, H, W), got {tuple(images.shape)}."
        )
    if not images.is_floating_point():
        raise ValueError(f"images must be a floating-point tensor (normalised image), got dtype {images.dtype}.")
    if min(images.shape) < 1:
        raise ValueError(f"images must not be empty, got shape {tuple(images.shape)}.")


def check_outputs(outputs: Any, batch: int, size: Sequence[int]) -> Mapping[str, torch.Tensor]:
    """Return ``outputs`` if it is a dict whose ``"out"`` holds ``(batch, K, *size)`` logits."""
    if not isinstance(outputs, Mapping):
        raise ValueError(f"the network must return a dict of logits with the key 'out', got {type(outputs).__name__}.")
    if "out" not in outputs:
        raise ValueError(
            "the network output has no key 'out' (the (B, K, H, W) logits at input resolution); "
            f"keys found: {sorted(map(str, outputs))}."
        )
    logits = outputs["out"]
    expected = (batch, *size)
    if not isinstance(logits, torch.Tensor) or logits.ndim != 4 or (logits.shape[0], *logits.shape[2:]) != expected:
        found = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
        raise ValueError(
            f"the network output 'out' must be logits of shape (B, K, H, W) = ({batch}, K, {size[0]}, {size[1]}), "
            f"got {found}. Upsample the logits to the input size inside the network."
        )
    return outputs


class SegmentationNetwork(nn.Module):
    """Base class: subclasses implement :meth:`forward_outputs`.

    A subclass whose pretrained part is reachable as ``self.backbone`` (an ``nn.Module``) lets the
    LightningModule give it its own learning rate (the papers train the head at 10× the
    backbone's rate); without it every parameter is trained at the head's rate.
    """

    def __init__(self, num_classes: int, in_chans: int = 3) -> None:
        super().__init__()
        if num_classes < 2:
            raise ValueError(f"num_classes must be >= 2, got {num_classes}.")
        self.num_classes = num_classes
        self.in_chans = in_chans

    def forward_outputs(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """``(B, in_chans, H, W)`` → ``{"out": (B, num_classes, H, W), ...}`` logits."""
        check_images(images, self.in_chans)
        return self.forward_outputs(images)
