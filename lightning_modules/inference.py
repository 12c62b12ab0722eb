"""Evaluation-time prediction protocols shared by every paper (DANet, SANet, Gated-SCNN).

A segmentation network is any ``nn.Module`` whose ``forward(images)`` maps float images ``(B, C, H, W)``
to a dict of logits at input resolution holding at least ``{"out": (B, K, H, W)}``; the other keys
(``"aux"``, ``"edge"``, ...) are ignored here.

Protocols:

* single scale: :func:`predict_logits`, one forward pass on the whole image;
* sliding window: :func:`predict_sliding`, for images larger than the training crop;
* multi-scale + horizontal flip: :func:`predict_multiscale`, scales ``(0.5, 0.75, 1.0, 1.25, 1.5, 1.75)``.

The functions neither switch the network to eval mode nor disable autograd: wrapping the call in
``torch.no_grad()`` / ``torch.inference_mode()`` and calling ``network.eval()`` is the caller's business.
Results keep the dtype and device the network produces for the input.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lightning_modules.network import check_images, check_outputs

DEFAULT_SCALES = (0.5, 0.75, 1.0, 1.25, 1.5, 1.75)
COMBINES = ("softmax", "logits")


def _pair(value: int | tuple[int, int], name: str) -> tuple[int, int]:
    """Return ``(h, w)`` from an int or a pair of ints, each ``>= 1``."""
    if isinstance(value, int):
        pair: tuple = (value, value)
    elif isinstance(value, (tuple, list)):
        pair = tuple(value)
    else:
        pair = ()
    if len(pair) != 2 or any(isinstance(v, bool) or not isinstance(v, int) for v in pair):
        raise ValueError(f"{name} must be an int or a pair of ints (h, w), got {value!r}.")
    if min(pair) < 1:
        raise ValueError(f"{name} must be >= 1 in both dimensions, got {value!r}.")
    return pair[0], pair[1]


def _window_starts(size: int, window: int, stride: int) -> list[int]:
    """Start offsets of windows of length ``window`` covering ``[0, size)``; the last one ends at ``size``."""
    starts = list(range(0, size - window + 1, stride))
    if starts[-1] != size - window:
        starts.append(size - window)
    return starts


def _resize(tensor: Tensor, size: tuple[int, int], align_corners: bool) -> Tensor:
    if tuple(tensor.shape[-2:]) == size:
        return tensor
    return F.interpolate(tensor, size=size, mode="bilinear", align_corners=align_corners)


def predict_logits(network: nn.Module, images: Tensor) -> Tensor:
    """Single-scale prediction: ``network(images)["out"]``.

    Args:
        network: segmentation network returning a dict with key ``"out"``.
        images: ``(B, C, H, W)`` float images.

    Returns:
        ``(B, K, H, W)`` logits.

    Raises:
        ValueError: if the images are not a non-empty 4-D float tensor, if the network output is not a dict
            with key ``"out"``, or if ``"out"`` is not a ``(B, K, H, W)`` tensor at the input's ``B, H, W``.
    """
    check_images(images)
    return check_outputs(network(images), images.shape[0], images.shape[-2:])["out"]


def predict_sliding(
    network: nn.Module,
    images: Tensor,
    window: int | tuple[int, int],
    stride: int | tuple[int, int] | None = None,
) -> Tensor:
    """Sliding-window prediction, for images larger than the training crop.

    Windows of size ``window = (h, w)`` move by ``stride``; the last window of each row/column is aligned
    with the bottom/right edge, so the windows cover the image exactly. In a dimension where the image is
    smaller than the window, the image is zero-padded at the bottom/right up to the window, and the logits
    are cropped back. The logits of overlapping windows are averaged (sum / count).

    Args:
        network: segmentation network returning a dict with key ``"out"``.
        images: ``(B, C, H, W)`` float images.
        window: window size, an int or ``(h, w)``.
        stride: step between windows, an int or ``(h, w)``, at most the window; defaults to 2/3 of the window
            (DANet's protocol), rounded, at least 1.

    Returns:
        ``(B, K, H, W)`` logits.
    """
    check_images(images)
    window_h, window_w = _pair(window, "window")
    if stride is None:
        stride_h, stride_w = (max(1, round(2 * size / 3)) for size in (window_h, window_w))
    else:
        stride_h, stride_w = _pair(stride, "stride")
    if stride_h > window_h or stride_w > window_w:
        raise ValueError(
            f"stride {(stride_h, stride_w)} must not exceed the window {(window_h, window_w)}: "
            "the windows would leave gaps."
        )

    height, width = images.shape[-2:]
    padded = F.pad(images, (0, max(window_w - width, 0), 0, max(window_h - height, 0)))
    padded_h, padded_w = padded.shape[-2:]

    total: Tensor | None = None
    count = padded.new_zeros(1, 1, padded_h, padded_w)
    for top in _window_starts(padded_h, window_h, stride_h):
        for left in _window_starts(padded_w, window_w, stride_w):
            crop = padded[:, :, top : top + window_h, left : left + window_w]
            logits = predict_logits(network, crop)
            if total is None:
                total = logits.new_zeros(logits.shape[0], logits.shape[1], padded_h, padded_w)
            total[:, :, top : top + window_h, left : left + window_w] += logits
            count[:, :, top : top + window_h, left : left + window_w] += 1
    return (total / count.to(total.dtype))[:, :, :height, :width]


def predict_multiscale(
    network: nn.Module,
    images: Tensor,
    scales: Sequence[float] = DEFAULT_SCALES,
    flip: bool = True,
    window: int | tuple[int, int] | None = None,
    stride: int | tuple[int, int] | None = None,
    combine: Literal["softmax", "logits"] = "softmax",
    align_corners: bool = False,
) -> Tensor:
    """Multi-scale (and horizontally flipped) prediction.

    For each scale ``s`` the images are resized bilinearly to ``(round(H * s), round(W * s))`` and predicted
    with :func:`predict_sliding` if ``window`` is given, else :func:`predict_logits`; with ``flip`` the
    flipped images ``images.flip(-1)`` are predicted too and their scores flipped back. Every pass's scores
    are resized bilinearly back to ``(H, W)`` and averaged over all passes: softmax probabilities with
    ``combine="softmax"`` (mmsegmentation's convention), raw logits with ``combine="logits"`` (DANet's
    official code sums logits, which gives the same argmax). Only one pass's full-resolution scores are held
    besides the running sum.

    Args:
        network: segmentation network returning a dict with key ``"out"``.
        images: ``(B, C, H, W)`` float images.
        scales: positive resize factors, default ``(0.5, 0.75, 1.0, 1.25, 1.5, 1.75)``.
        flip: also predict on horizontally flipped images.
        window: sliding-window size at each scale, or ``None`` for whole-image prediction.
        stride: sliding-window stride, see :func:`predict_sliding`; only used with ``window``.
        combine: ``"softmax"`` to average probabilities, ``"logits"`` to average logits.
        align_corners: ``align_corners`` of both bilinear resizes.

    Returns:
        ``(B, K, H, W)`` averaged probabilities (``"softmax"``) or logits (``"logits"``).
    """
    check_images(images)
    scales = tuple(scales)
    if not scales:
        raise ValueError("scales must not be empty.")
    if any(not math.isfinite(scale) or scale <= 0 for scale in scales):
        raise ValueError(f"scales must be finite and positive, got {scales}.")
    if combine not in COMBINES:
        raise ValueError(f"combine must be one of {COMBINES}, got {combine!r}.")
    if window is None and stride is not None:
        raise ValueError("stride is only used with a sliding window: pass window as well.")

    def predict_pass(inputs: Tensor) -> Tensor:
        if window is None:
            return predict_logits(network, inputs)
        return predict_sliding(network, inputs, window, stride)

    height, width = images.shape[-2:]
    total: Tensor | None = None
    passes = 0
    for scale in scales:
        size = (max(1, round(height * scale)), max(1, round(width * scale)))
        scaled = _resize(images, size, align_corners)
        for flipped in (False, True) if flip else (False,):
            scores = predict_pass(scaled.flip(-1) if flipped else scaled)
            if flipped:
                scores = scores.flip(-1)
            scores = _resize(scores, (height, width), align_corners)
            if combine == "softmax":
                scores = scores.softmax(dim=1)
            if total is None:
                total = torch.zeros_like(scores)
            total += scores
            passes += 1
    return total / passes


def predict(
    network: nn.Module,
    images: Tensor,
    mode: Literal["single", "multiscale", "sliding"] = "single",
    **kwargs: object,
) -> Tensor:
    """Dispatch to an evaluation protocol; used by the LightningModules.

    Args:
        network: segmentation network returning a dict with key ``"out"``.
        images: ``(B, C, H, W)`` float images.
        mode: ``"single"`` (:func:`predict_logits`), ``"sliding"`` (:func:`predict_sliding`) or
            ``"multiscale"`` (:func:`predict_multiscale`).
        **kwargs: keyword arguments of the chosen function (none for ``"single"``).

    Returns:
        ``(B, K, H, W)`` scores: logits, or probabilities for ``"multiscale"`` with ``combine="softmax"``.
    """
    protocols: dict[str, Callable[..., Tensor]] = {
        "single": predict_logits,
        "multiscale": predict_multiscale,
        "sliding": predict_sliding,
    }
    if mode not in protocols:
        raise ValueError(f"unknown inference mode {mode!r}; valid modes: {tuple(protocols)}.")
    if mode == "single" and kwargs:
        raise ValueError(f"mode 'single' takes no keyword arguments, got {sorted(kwargs)}.")
    return protocols[mode](network, images, **kwargs)
