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
Results keep the dtype and device the network produces for the input (``combine="exp_sum"``: at least
float32).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from datamodules.transforms import normalized_pad_value
from lightning_modules.network import check_images, check_outputs

DEFAULT_SCALES = (0.5, 0.75, 1.0, 1.25, 1.5, 1.75)
Combine = Literal["softmax", "logits", "exp_sum"]
COMBINES: tuple[Combine, ...] = ("softmax", "logits", "exp_sum")
LastWindow = Literal["shifted", "padded"]
LAST_WINDOWS: tuple[LastWindow, ...] = ("shifted", "padded")
# What evaluation pads a normalised image with: a black pixel, as the training crops pad (datamodules.transforms).
IMAGE_PAD_VALUE = normalized_pad_value()


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


def _window_starts(size: int, window: int, stride: int, last_window: LastWindow) -> list[int]:
    """Start offsets of windows of length ``window`` (``<= size``) covering ``[0, size)`` every ``stride``.

    ``"shifted"``: the last window is moved back to end at ``size``; ``"padded"``: windows keep the stride and
    the last one may run past ``size`` (PyTorch-Encoding: ``ceil((size - window) / stride) + 1`` windows).
    """
    if last_window == "padded":
        return [i * stride for i in range(math.ceil((size - window) / stride) + 1)]
    starts = list(range(0, size - window + 1, stride))
    if starts[-1] != size - window:
        starts.append(size - window)
    return starts


def _resize(tensor: Tensor, size: tuple[int, int], align_corners: bool) -> Tensor:
    if tuple(tensor.shape[-2:]) == size:
        return tensor
    return F.interpolate(tensor, size=size, mode="bilinear", align_corners=align_corners)


def _pad_bottom_right(images: Tensor, height: int, width: int, pad_value: Sequence[float] | None) -> Tensor:
    """``images`` padded at the bottom / right to at least ``(height, width)`` with a per-channel value."""
    batch, channels, image_h, image_w = images.shape
    if image_h >= height and image_w >= width:
        return images
    if pad_value is None:
        if channels != len(IMAGE_PAD_VALUE):
            raise ValueError(
                f"the default pad_value is a black pixel under ImageNet normalisation (3 channels); the images have "
                f"{channels} channels: pass pad_value, one normalised value per channel."
            )
        pad_value = IMAGE_PAD_VALUE
    if len(pad_value) != channels:
        raise ValueError(f"pad_value needs one value per image channel ({channels}), got {tuple(pad_value)}.")
    fill = torch.tensor(pad_value, dtype=images.dtype, device=images.device).view(1, channels, 1, 1)
    padded = fill.expand(batch, channels, max(height, image_h), max(width, image_w)).clone()
    padded[:, :, :image_h, :image_w] = images
    return padded


def _slide(
    predict_window: Callable[[Tensor], Tensor],
    images: Tensor,
    window: int | tuple[int, int],
    stride: int | tuple[int, int] | None,
    pad_value: Sequence[float] | None,
    last_window: LastWindow,
) -> Tensor:
    """``predict_window``'s scores of every window, averaged where windows overlap; see :func:`predict_sliding`."""
    window_h, window_w = _pair(window, "window")
    if stride is None:
        stride_h, stride_w = (max(1, 2 * size // 3) for size in (window_h, window_w))
    else:
        stride_h, stride_w = _pair(stride, "stride")
    if stride_h > window_h or stride_w > window_w:
        raise ValueError(
            f"stride {(stride_h, stride_w)} must not exceed the window {(window_h, window_w)}: "
            "the windows would leave gaps."
        )

    if last_window not in LAST_WINDOWS:
        raise ValueError(f"last_window must be one of {LAST_WINDOWS}, got {last_window!r}.")

    height, width = images.shape[-2:]
    tops = _window_starts(max(height, window_h), window_h, stride_h, last_window)
    lefts = _window_starts(max(width, window_w), window_w, stride_w, last_window)
    # One padding up to where the last windows end: the same pixels as padding each window that runs past the image.
    padded = _pad_bottom_right(images, tops[-1] + window_h, lefts[-1] + window_w, pad_value)
    padded_h, padded_w = padded.shape[-2:]

    total: Tensor | None = None
    count = padded.new_zeros(1, 1, padded_h, padded_w)
    for top in tops:
        for left in lefts:
            scores = predict_window(padded[:, :, top : top + window_h, left : left + window_w])
            if total is None:
                total = scores.new_zeros(scores.shape[0], scores.shape[1], padded_h, padded_w)
            total[:, :, top : top + window_h, left : left + window_w] += scores
            count[:, :, top : top + window_h, left : left + window_w] += 1
    return (total / count.to(total.dtype))[:, :, :height, :width]


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
    pad_value: Sequence[float] | None = None,
    last_window: LastWindow = "shifted",
) -> Tensor:
    """Sliding-window prediction, for images larger than the training crop.

    Windows of size ``window = (h, w)`` move by ``stride``. With ``last_window="shifted"`` (mmsegmentation's
    placement) the last window of each row/column is moved back to end at the bottom/right edge; with
    ``"padded"`` (PyTorch-Encoding's, DANet's official test) it keeps the stride and runs past the edge. Where
    a window reaches past the image (and in a dimension where the image is smaller than the window), the
    image is padded at the bottom/right with what a training crop pads with (a black pixel, normalised);
    the logits are cropped back. The logits of overlapping windows are averaged (sum / count).

    Args:
        network: segmentation network returning a dict with key ``"out"``.
        images: ``(B, C, H, W)`` float images.
        window: window size, an int or ``(h, w)``.
        stride: step between windows, an int or ``(h, w)``, at most the window; defaults to 2/3 of the window
            rounded down, at least 1 (DANet's protocol, PyTorch-Encoding's ``int(2/3 · crop)``).
        pad_value: the normalised value of a padded pixel, one per channel; default :data:`IMAGE_PAD_VALUE`,
            a black pixel under ImageNet normalisation (``datamodules.transforms.normalized_pad_value``).
        last_window: ``"shifted"`` or ``"padded"``, see above.

    Returns:
        ``(B, K, H, W)`` logits.

    Raises:
        ValueError: for a bad window, stride or ``last_window``, or a ``pad_value`` whose length is not the
            channel count.
    """
    check_images(images)
    return _slide(lambda crop: predict_logits(network, crop), images, window, stride, pad_value, last_window)


def predict_multiscale(
    network: nn.Module,
    images: Tensor,
    scales: Sequence[float] = DEFAULT_SCALES,
    flip: bool = True,
    window: int | tuple[int, int] | None = None,
    stride: int | tuple[int, int] | None = None,
    combine: Combine = "softmax",
    align_corners: bool = False,
    pad_value: Sequence[float] | None = None,
    last_window: LastWindow = "shifted",
) -> Tensor:
    """Multi-scale (and horizontally flipped) prediction.

    For each scale ``s`` the images are resized bilinearly to ``(round(H * s), round(W * s))`` and predicted
    with :func:`predict_sliding` if ``window`` is given, else :func:`predict_logits`; with ``flip`` the
    flipped images are predicted too and their scores flipped back. How the passes combine:

    * ``"softmax"`` (mmsegmentation's rule): each pass's logits (the sliding window's averaged logits) are
      resized bilinearly to ``(H, W)``, turned into probabilities and averaged over all passes;
    * ``"logits"``: the same with raw logits averaged;
    * ``"exp_sum"`` (PyTorch-Encoding's ``MultiEvalModule``, DANet's official test): for each window (or the
      whole scaled image) ``exp(logits + flipped logits)``, averaged over overlapping windows, resized to
      ``(H, W)`` and **summed** over scales. It weighs a confident scale more than the other rules do, so it
      can pick another class. Computed in at least float32: fp16 overflows above ``exp(11)`` and bf16 keeps
      only 8 bits of each exponential.

    Only one pass's full-resolution scores are held besides the running sum.

    Args:
        network: segmentation network returning a dict with key ``"out"``.
        images: ``(B, C, H, W)`` float images.
        scales: positive resize factors, default ``(0.5, 0.75, 1.0, 1.25, 1.5, 1.75)``.
        flip: also predict on horizontally flipped images.
        window: sliding-window size at each scale, or ``None`` for whole-image prediction.
        stride: sliding-window stride, see :func:`predict_sliding`; only used with ``window``.
        combine: ``"softmax"``, ``"logits"`` or ``"exp_sum"``, see above.
        align_corners: ``align_corners`` of both bilinear resizes (PyTorch-Encoding: True).
        pad_value, last_window: padding and placement of the sliding windows, see :func:`predict_sliding`.

    Returns:
        ``(B, K, H, W)``: averaged probabilities (``"softmax"``) or logits (``"logits"``), or the sum over
        scales of the exponentiated scores (``"exp_sum"``).

    Raises:
        ValueError: for empty or non-positive scales, an unknown ``combine``, or a stride without a window.
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

    def predict_pass(inputs: Tensor, predict_window: Callable[[Tensor], Tensor]) -> Tensor:
        if window is None:
            return predict_window(inputs)
        return _slide(predict_window, inputs, window, stride, pad_value, last_window)

    def exp_of_flip_sum(inputs: Tensor) -> Tensor:
        logits = predict_logits(network, inputs)
        dtype = torch.promote_types(logits.dtype, torch.float32)
        logits = logits.to(dtype)
        if flip:
            logits = logits + predict_logits(network, inputs.flip(-1)).flip(-1).to(dtype)
        return logits.exp()

    height, width = images.shape[-2:]
    total: Tensor | None = None
    passes = 0
    for scale in scales:
        size = (max(1, round(height * scale)), max(1, round(width * scale)))
        scaled = _resize(images, size, align_corners)
        if combine == "exp_sum":
            passes_at_scale = [predict_pass(scaled, exp_of_flip_sum)]
        else:
            passes_at_scale = [predict_pass(scaled, lambda crop: predict_logits(network, crop))]
            if flip:
                flipped = predict_pass(scaled.flip(-1), lambda crop: predict_logits(network, crop))
                passes_at_scale.append(flipped.flip(-1))
        for scores in passes_at_scale:
            scores = _resize(scores, (height, width), align_corners)
            if combine == "softmax":
                scores = scores.softmax(dim=1)
            if total is None:
                total = torch.zeros_like(scores)
            total += scores
            passes += 1
    return total if combine == "exp_sum" else total / passes


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
        ``(B, K, H, W)`` scores: logits, or for ``"multiscale"`` what its ``combine`` gives (probabilities by
        default); their argmax is the prediction.
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
