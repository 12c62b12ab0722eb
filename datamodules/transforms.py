"""Joint image / label transforms (torchvision.transforms.v2 with ``tv_tensors``).

Training follows the recipe shared by DANet, SANet and PyTorch-Encoding: the shorter side is
resized to a random size in ``[0.5, 2.0] × base_size``, a random crop pads with black (image,
:data:`IMAGE_PAD`) and 255 (label, ignored) where the scaled image is smaller than the crop, and a
horizontal flip with p = 0.5. Validation sees the full image.

Every label resize goes through :func:`resize_labels`: centre-aligned nearest neighbour, the rule
of PIL's ``NEAREST`` and torch's ``nearest-exact``. torch's ``nearest`` (and torchvision's resize of a
``tv_tensors.Mask``) samples at ``floor(i · in / out)`` instead, which shifts the labels by up to
half a pixel against a bilinearly resized image.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torchvision import tv_tensors
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as TF

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# The pixel value (0..255) that pads an image: black, as PyTorch-Encoding's crops and test windows pad.
IMAGE_PAD = 0


def normalized_pad_value(
    mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD
) -> tuple[float, ...]:
    """The per-channel value of an :data:`IMAGE_PAD` pixel after normalisation: ``(IMAGE_PAD / 255 - mean) / std``.

    What a training crop's padding holds once normalised, and so what evaluation pads a normalised
    image with (:func:`lightning_modules.inference.predict_sliding`): ``(-2.1179, -2.0357, -1.8044)``
    for ImageNet statistics.
    """
    if len(mean) != len(std):
        raise ValueError(f"mean and std must have one value per channel, got {len(mean)} and {len(std)}.")
    return tuple((IMAGE_PAD / 255 - m) / s for m, s in zip(mean, std, strict=True))


def resize_labels(labels: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """Resize label maps ``(..., H, W)`` to ``(..., h, w)``: each output pixel takes the label under its centre.

    Output row ``i`` reads input row ``floor((i + 1/2) · H / h)`` (the same for columns), computed in
    integers, so the labels stay aligned with an image resized bilinearly with ``align_corners=False``
    (PIL ``NEAREST``, torch ``nearest-exact``). Any integer dtype and device; no class is invented.

    Raises:
        ValueError: if ``size`` is not two positive integers.
    """
    height, width = (int(s) for s in size) if len(size) == 2 else (0, 0)
    if height < 1 or width < 1:
        raise ValueError(f"label size must be two positive integers (h, w), got {tuple(size)}.")
    in_height, in_width = labels.shape[-2:]
    if (in_height, in_width) == (height, width):
        return labels
    device = labels.device
    rows = (2 * torch.arange(height, device=device) + 1) * in_height // (2 * height)
    cols = (2 * torch.arange(width, device=device) + 1) * in_width // (2 * width)
    return labels[..., rows[:, None], cols[None, :]]


class ResizeShorterSide:
    """Resize the shorter side to ``size``, or to an integer drawn uniformly from ``[size, max_size]``.

    The image is resized bilinearly with antialiasing (the longer side keeps the aspect ratio,
    torchvision's rounding), the label to the image's new size with :func:`resize_labels`.
    Call with ``(tv_tensors.Image, tv_tensors.Mask)``, or with an image alone.
    """

    def __init__(self, size: int, max_size: int | None = None) -> None:
        max_size = size if max_size is None else max_size
        if not 1 <= size <= max_size:
            raise ValueError(f"the shorter side must satisfy 1 <= size <= max_size, got {size} and {max_size}.")
        self.size = size
        self.max_size = max_size

    def __call__(
        self, image: tv_tensors.Image, label: tv_tensors.Mask | None = None
    ) -> tv_tensors.Image | tuple[tv_tensors.Image, tv_tensors.Mask]:
        # torch.randint, as v2.RandomResize draws it: seeding torch makes the scale reproducible.
        side = self.size if self.size == self.max_size else int(torch.randint(self.size, self.max_size + 1, ()))
        resized = TF.resize(image, [side], antialias=True)
        if label is None:
            return resized
        return resized, tv_tensors.wrap(resize_labels(label.as_subclass(torch.Tensor), resized.shape[-2:]), like=label)


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
    """Random scale → random crop (padded with black / ignore) → horizontal flip → float, normalised.

    Input: ``tv_tensors.Image`` uint8 ``(3, H, W)`` and ``tv_tensors.Mask`` ``(H, W)``;
    output: float32 ``(3, h, w)`` and int64 ``(h, w)`` with ``(h, w) = crop_size``.
    """
    low, high = scale_range
    if not 0 < low <= high:
        raise ValueError(f"scale_range must satisfy 0 < low <= high, got {scale_range}.")
    return v2.Compose(
        [
            ResizeShorterSide(round(low * base_size), round(high * base_size)),
            v2.RandomCrop(
                crop_size, pad_if_needed=True, fill={tv_tensors.Image: IMAGE_PAD, tv_tensors.Mask: ignore_index}
            ),
            v2.RandomHorizontalFlip(p=0.5),
            *_to_model_input(mean, std),
        ]
    )


def eval_transforms(
    short_side: int | None = None, mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD
) -> v2.Compose:
    """Full image: float32 normalised ``(3, H, W)`` and int64 ``(H, W)`` labels.

    ``short_side`` evaluates at reduced resolution (shorter side resized to it, labels with
    :func:`resize_labels`), for CPU runs; the benchmarks' protocol is the full image (``None``).
    """
    resize = [ResizeShorterSide(short_side)] if short_side is not None else []
    return v2.Compose([*resize, *_to_model_input(mean, std)])
