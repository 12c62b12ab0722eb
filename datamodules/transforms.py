"""Joint image / label transforms (torchvision.transforms.v2 with ``tv_tensors``).

Training follows the recipe shared by DANet, SANet and PyTorch-Encoding: the shorter side is
resized to a random size in ``[0.5, 2.0] × base_size``, a random crop pads with 0 (image) and 255
(label, ignored) where the scaled image is smaller than the crop, and a horizontal flip with
p = 0.5. Validation sees the full image. Labels are resized with nearest neighbour (``tv_tensors.Mask``).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torchvision import tv_tensors
from torchvision.transforms import v2

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _to_model_input(mean: Sequence[float], std: Sequence[float]) -> list[v2.Transform]:
    return [
        v2.ToDtype({tv_tensors.Image: torch.float32, tv_tensors.Mask: torch.int64}, scale=True),
        v2.Normalize(mean=list(mean), std=list(std)),
    ]


def train_transforms(
    crop_size: int | Sequence[int],
    base_size: int,
    scale_range: tuple[float, float] = (0.5, 2.0),
    ignore_index: int = 255,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
) -> v2.Compose:
    """Random scale → random crop (padded with ignore) → horizontal flip → float, normalised.

    Input: ``tv_tensors.Image`` uint8 ``(3, H, W)`` and ``tv_tensors.Mask`` ``(H, W)``;
    output: float32 ``(3, h, w)`` and int64 ``(h, w)`` with ``(h, w) = crop_size``.
    """
    low, high = scale_range
    if not 0 < low <= high:
        raise ValueError(f"scale_range must satisfy 0 < low <= high, got {scale_range}.")
    return v2.Compose(
        [
            v2.RandomResize(min_size=round(low * base_size), max_size=round(high * base_size) + 1),
            v2.RandomCrop(crop_size, pad_if_needed=True, fill={tv_tensors.Image: 0, tv_tensors.Mask: ignore_index}),
            v2.RandomHorizontalFlip(p=0.5),
            *_to_model_input(mean, std),
        ]
    )


def eval_transforms(
    short_side: int | None = None, mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD
) -> v2.Compose:
    """Full image: float32 normalised ``(3, H, W)`` and int64 ``(H, W)`` labels.

    ``short_side`` evaluates at reduced resolution (shorter side resized to it, labels with nearest
    neighbour), for CPU runs; the benchmarks' protocol is the full image (``None``).
    """
    resize = [v2.Resize(short_side, antialias=True)] if short_side is not None else []
    return v2.Compose([*resize, *_to_model_input(mean, std)])
