"""Losses that stay defined when a batch has no labelled pixel.

PASCAL Context-59 has images whose every pixel is background (ignored), and a random crop of any
dataset can fall entirely on ignored pixels. ``F.cross_entropy(..., ignore_index=255)`` with its mean
reduction divides by the number of labelled pixels, so such a batch gives 0 / 0 = NaN and stops the
run. Here a batch without labels contributes 0 with a zero gradient, and any other batch the usual
mean over its labelled pixels.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def labelled_pixels(target: torch.Tensor, ignore_index: int = 255) -> torch.Tensor:
    """The number of pixels of ``target`` ``(B, H, W)`` that are not ``ignore_index`` (an int64 scalar tensor)."""
    return (target != ignore_index).sum()


def pixel_cross_entropy(logits: torch.Tensor, target: torch.Tensor, ignore_index: int = 255) -> torch.Tensor:
    """Cross-entropy averaged over the labelled pixels; 0 with a zero gradient when none is labelled.

    Shapes: logits ``(B, K, H, W)``, target ``(B, H, W)`` int64 → a scalar. Equal to
    ``F.cross_entropy(logits, target, ignore_index=ignore_index)`` whenever one pixel is labelled.
    """
    total = F.cross_entropy(logits, target, ignore_index=ignore_index, reduction="sum")
    return total / labelled_pixels(target, ignore_index).clamp(min=1)


def labelled_images(target: torch.Tensor, ignore_index: int = 255) -> torch.Tensor:
    """``(B,)`` bool: whether image b of ``target`` ``(B, H, W)`` has a labelled pixel."""
    return (target != ignore_index).flatten(1).any(dim=1)


def presence_bce(logits: torch.Tensor, presence: torch.Tensor, labelled: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy of image-level class logits ``(B, K)`` against ``presence`` ``(B, K)`` in {0, 1},
    averaged over the images whose ``labelled`` ``(B,)`` is True; 0 with a zero gradient when none is.

    An image without a labelled pixel says nothing about which classes it shows, so it is left out rather
    than taught that no class is present.
    """
    per_image = F.binary_cross_entropy_with_logits(logits, presence, reduction="none").mean(dim=1)
    weights = labelled.to(per_image.dtype)
    return (per_image * weights).sum() / weights.sum().clamp(min=1)
