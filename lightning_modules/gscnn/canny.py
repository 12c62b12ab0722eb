"""Image gradients for GSCNN's fusion: OpenCV's Canny computed on the device (official ``network/gscnn.py``).

The released GSCNN (``network/gscnn.py``) moves every batch to the host, casts the *normalised* tensor to uint8
and runs ``cv2.Canny(image, 10, 100)`` per 3-channel image, then feeds the 0/255 map to a 1×1 convolution. That
stalls each iteration and, because of the cast, shows Canny a wrapped image (issue #22). :func:`image_gradients`
computes the same edges batched in torch on the device, in two modes:

- ``"device"`` (what the paper means): the image un-normalised to its 0-255 grey levels, clamped and rounded as a
  uint8 image would be, edges as 0/1;
- ``"released"`` (checkpoint-faithful): the normalised tensor cast to uint8 the way NumPy's ``astype(np.uint8)``
  does on x86, edges as 0/255, as the released model was trained with.

:func:`canny_edges` follows OpenCV's ``cv::Canny`` (``imgproc/src/canny.cpp``) with the official call's defaults
``apertureSize=3``, ``L2gradient=False``:

1. per channel, the unnormalised 3×3 Sobel ``gx``, ``gy`` (OpenCV's ``CV_16S`` derivatives) with the image border
   replicated (``BORDER_REPLICATE``), and the L1 magnitude ``|gx| + |gy|``;
2. per pixel, the gradient of the channel with the largest magnitude (the first channel on ties);
3. non-maximum suppression against the two neighbours across the gradient's sector, with OpenCV's integer sector
   test (``tan 22.5° ≈ 13573 / 2¹⁵``) and its asymmetric comparisons: horizontal gradients need ``m > left`` and
   ``m >= right``, vertical ones ``m > up`` and ``m >= down``, diagonal ones ``>`` both; magnitudes outside the
   image count as 0;
4. double threshold, both strict: weak if ``m > 10``, strong if ``m > 100``;
5. hysteresis: weak pixels 8-connected to a strong pixel through weak ones become edges.

Steps 1-4 are exact (integer values in float32 and int32), and with the hysteresis run to convergence
(``hysteresis_rounds=None``) the edges equal ``cv2.Canny``'s pixel for pixel (tested against OpenCV on CamVid
frames at 240×320 and 720×960 in both modes, and on synthetic steps, ramps, corners, borders and tiny images).
Bounded to :data:`HYSTERESIS_ROUNDS` rounds, as in training, the hysteresis can only miss the far end of weak
chains longer than that. Measured against OpenCV 5.0 on the 233 CamVid test frames as the DataModules load them:
identical edges in both modes at 240×320, and in ``"released"`` mode at 720×960; in ``"device"`` mode at 720×960,
0.6 differing pixels per frame on average (of about 32,000 edge pixels), 134 at worst (IoU ≥ 0.9934), some chains
needing 316 rounds. With 64 rounds, ``"device"`` mode at 720×960 missed about 1.2 % of the edge pixels on average
and 10 % at worst.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
import torch.nn.functional as F

from datamodules.transforms import IMAGENET_MEAN, IMAGENET_STD

CannyMode = Literal["device", "released"]
RangeCheck = Literal["raise", "async", "off"]
CANNY_MODES: tuple[str, ...] = ("device", "released")
RANGE_CHECKS: tuple[str, ...] = ("raise", "async", "off")
# cv2.Canny(image, 10, 100) in the official code, on the 0-255 scale; OpenCV floors both to integers.
LOW_THRESHOLD = 10
HIGH_THRESHOLD = 100
# OpenCV's sector test: tan(22.5°) in Q15 fixed point (canny.cpp's TG22).
TAN_22_5_Q15 = 13573
# Un-normalised images may leave [0, 255] by rounding and resampling; more than a grey level means a wrong mean/std.
RANGE_TOLERANCE = 1.0
# Hysteresis rounds without a host synchronisation: a weak chain is followed this many pixels from a strong pixel
# (two small kernels per round; the agreement with OpenCV it buys is in the module docstring).
HYSTERESIS_ROUNDS = 256


def unnormalize(images: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """Grey levels of ImageNet-normalised images: ``(x · std + mean) · 255``, ``(B, 3, H, W)`` float32."""
    mean_t = torch.tensor(mean, dtype=torch.float32, device=images.device).view(1, -1, 1, 1)
    std_t = torch.tensor(std, dtype=torch.float32, device=images.device).view(1, -1, 1, 1)
    return (images.float() * std_t + mean_t) * 255.0


def check_grey_range(grey: torch.Tensor, check: RangeCheck) -> None:
    """Fail if ``grey`` lies more than :data:`RANGE_TOLERANCE` outside [0, 255].

    ``check="raise"`` raises ``ValueError`` (one host synchronisation); ``"async"`` uses ``torch._assert_async``,
    which does not synchronise on CUDA (a failure surfaces at a later kernel launch as a device-side assert, which
    ends the process's CUDA context; on the CPU it raises ``RuntimeError`` at once); ``"off"`` checks nothing.
    """
    if check == "off":
        return
    message = (
        "images, un-normalised with the given mean / std, leave the grey-level range [0, 255] by more than "
        f"{RANGE_TOLERANCE}: pass images normalised with the ImageNet mean / std (as the DataModules give them), or "
        "build GSCNN with canny_mode='released' (any values) or image_gradients=False (no Canny input)."
    )
    inside = (grey.amin() >= -RANGE_TOLERANCE) & (grey.amax() <= 255.0 + RANGE_TOLERANCE)
    if check == "async":
        torch._assert_async(inside, message)
    elif not bool(inside):
        raise ValueError(message)


def wrap_to_uint8(values: torch.Tensor) -> torch.Tensor:
    """NumPy's ``values.astype(np.uint8)`` for float32 on x86, as float: truncate toward zero, wrap modulo 256.

    E.g. ``-1.2 → 255``, ``-0.5 → 0``, ``2.7 → 2``, ``257.9 → 1``. Shapes are kept.
    """
    return torch.remainder(torch.trunc(values.float()), 256.0)


def sobel(image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """OpenCV's ``Sobel(·, CV_16S, 1, 0, 3)`` and ``(0, 1)`` with ``BORDER_REPLICATE``, as float32.

    ``gx`` is the right column minus the left one, rows weighted 1-2-1; ``gy`` the bottom row minus the top one.
    Written as shifted differences rather than a convolution, so that no backend (TF32, cuDNN algorithms) can
    round them: on integer grey levels every value is an integer of magnitude ≤ 1020, exact in float32.
    Shapes: ``(B, C, H, W)`` → two ``(B, C, H, W)``.
    """
    height, width = image.shape[-2:]
    padded = F.pad(image, (1, 1, 1, 1), mode="replicate")
    # gx: 1-2-1 down the columns, then the difference across them; gy: the transpose.
    smoothed_down = padded[..., :-2, :] + 2 * padded[..., 1:-1, :] + padded[..., 2:, :]
    smoothed_across = padded[..., :-2] + 2 * padded[..., 1:-1] + padded[..., 2:]
    gx = smoothed_down[..., 2:] - smoothed_down[..., :width]
    gy = smoothed_across[..., 2:, :] - smoothed_across[..., :height, :]
    return gx, gy


def strongest_channel(gx: torch.Tensor, gy: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """OpenCV's multi-channel rule: per pixel, the channel with the largest L1 magnitude, the first one on ties.

    Shapes: ``(B, C, H, W)`` float32 derivatives → ``(B, 1, H, W)`` int32 ``gx``, ``gy`` and magnitude.
    """
    magnitude = gx.abs() + gy.abs()
    # argmax returns the first maximal index, as OpenCV's strict ">" scan over the channels keeps the first.
    index = magnitude.argmax(dim=1, keepdim=True)
    gx, gy, magnitude = (values.gather(1, index).to(torch.int32) for values in (gx, gy, magnitude))
    return gx, gy, magnitude


def edge_candidates(gx: torch.Tensor, gy: torch.Tensor, magnitude: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Non-maximum suppression and the double threshold of ``cv::Canny``: ``(weak, strong)`` maps.

    A pixel is a candidate if its magnitude ``m > 10`` and it is a maximum across its gradient's sector
    (module docstring, step 3); ``weak`` holds all candidates, ``strong`` those with ``m > 100``. The sector test
    is OpenCV's in integers: with ``x = |gx|`` and ``y = |gy| · 2¹⁵``, horizontal if ``y < 13573 x``, vertical if
    ``y > 13573 x + 2¹⁶ x``, diagonal otherwise, towards the up-left / down-right neighbours when ``gx`` and ``gy``
    have the same sign (zero counting as positive) and the up-right / down-left ones otherwise. The products reach
    about 8 · 10⁷, beyond float32's exact integers, hence int32.

    Shapes: three ``(B, 1, H, W)`` int32 → two ``(B, 1, H, W)`` float32 maps of 0 / 1.
    """
    height, width = magnitude.shape[-2:]
    # OpenCV pads its magnitude rows with zeros: a border pixel is compared with 0 outside the image.
    padded = F.pad(magnitude, (1, 1, 1, 1))

    def neighbour(dy: int, dx: int) -> torch.Tensor:
        return padded[..., 1 + dy : 1 + dy + height, 1 + dx : 1 + dx + width]

    x = gx.abs()
    y = gy.abs() * (1 << 15)
    tg22x = x * TAN_22_5_Q15
    horizontal = y < tg22x
    vertical = ~horizontal & (y > tg22x + x * (1 << 16))
    same_sign = (gx < 0) == (gy < 0)
    m = magnitude
    keep_horizontal = (m > neighbour(0, -1)) & (m >= neighbour(0, 1))
    keep_vertical = (m > neighbour(-1, 0)) & (m >= neighbour(1, 0))
    keep_diagonal = torch.where(
        same_sign,
        (m > neighbour(-1, -1)) & (m > neighbour(1, 1)),
        (m > neighbour(-1, 1)) & (m > neighbour(1, -1)),
    )
    maximum = torch.where(horizontal, keep_horizontal, torch.where(vertical, keep_vertical, keep_diagonal))
    weak = maximum & (m > LOW_THRESHOLD)
    strong = weak & (m > HIGH_THRESHOLD)
    return weak.float(), strong.float()


def hysteresis(weak: torch.Tensor, strong: torch.Tensor, rounds: int | None) -> torch.Tensor:
    """Canny's edge tracking: the ``weak`` pixels 8-connected to a ``strong`` pixel through weak ones.

    Each round turns the weak pixels that touch an edge (3×3 max-pool) into edges, so a chain grows by one pixel
    per round; since the edges stay inside ``weak``, a round is ``weak · maxpool(edges)``. ``rounds=None`` repeats
    until nothing changes, which is OpenCV's result but costs a host synchronisation per round; an integer runs that
    many rounds without synchronising (training) and agrees with OpenCV whenever every weak pixel that OpenCV keeps
    is within ``rounds`` steps, along weak pixels, of a strong one (otherwise it keeps a subset of OpenCV's edges).

    Shapes: ``(B, 1, H, W)`` float32 maps of 0 / 1 (``strong ⊆ weak``) → ``(B, 1, H, W)`` of 0 / 1.
    """
    edges = strong
    step = 0
    while rounds is None or step < rounds:
        grown = weak * F.max_pool2d(edges, 3, stride=1, padding=1)
        if rounds is None and torch.equal(grown, edges):
            break
        edges, step = grown, step + 1
    return edges


def canny_edges(grey: torch.Tensor, rounds: int | None = HYSTERESIS_ROUNDS) -> torch.Tensor:
    """``cv2.Canny(image, 10, 100) / 255`` of 8-bit images, batched on their device (module docstring).

    Runs in float32 / int32 with autocast disabled: under bf16 autocast a Sobel convolution would round the
    derivatives (and they are not convolutions here either, see :func:`sobel`).

    Args:
        grey: ``(B, C, H, W)`` grey levels, integers in [0, 255] (any float dtype); RGB in the official call.
        rounds: hysteresis rounds, see :func:`hysteresis`.

    Returns:
        ``(B, 1, H, W)`` float32 edges of 0 / 1.
    """
    with torch.autocast(grey.device.type, enabled=False):
        weak, strong = edge_candidates(*strongest_channel(*sobel(grey.float())))
        return hysteresis(weak, strong, rounds)


def image_gradients(
    images: torch.Tensor,
    mode: CannyMode = "device",
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
    check: RangeCheck = "raise",
    hysteresis_rounds: int | None = HYSTERESIS_ROUNDS,
) -> torch.Tensor:
    """The Canny map GSCNN fuses with the shape stream's edges (``canny`` of ``network/gscnn.py``), on the device.

    Args:
        images: ``(B, 3, H, W)`` images normalised with ``mean`` / ``std``.
        mode: ``"device"``: Canny of the un-normalised image clamped to [0, 255] and rounded, output 0 / 1;
            ``"released"``: Canny of :func:`wrap_to_uint8` of the normalised tensor, output 0 / 255, as the released
            code computes it.
        mean, std: the normalisation of ``images`` (the DataModules' ImageNet statistics).
        check: the grey-range check of ``"device"`` mode, see :func:`check_grey_range`. GSCNN uses ``"async"``
            in training (no host synchronisation) and ``"raise"`` otherwise, so that Lightning's sanity check
            and any evaluation report a wrong normalisation as a ``ValueError``.
        hysteresis_rounds: see :func:`hysteresis`; the default :data:`HYSTERESIS_ROUNDS` never synchronises with
            the host, ``None`` gives OpenCV's edges exactly.

    Returns:
        ``(B, 1, H, W)`` float32 edges, without autograd history.

    Raises:
        ValueError: for a shape other than ``(B, 3, H, W)``, an unknown ``mode`` or ``check``, a ``mean`` / ``std``
            without three values, a negative ``hysteresis_rounds``, or (``check="raise"``) images outside the grey
            range.
    """
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"images must be RGB images of shape (B, 3, H, W), got {tuple(images.shape)}.")
    if mode not in CANNY_MODES:
        raise ValueError(f"mode must be one of {CANNY_MODES}, got {mode!r}.")
    if check not in RANGE_CHECKS:
        raise ValueError(f"check must be one of {RANGE_CHECKS}, got {check!r}.")
    if len(mean) != 3 or len(std) != 3:
        raise ValueError(f"mean and std must have 3 values (RGB), got {tuple(mean)} and {tuple(std)}.")
    if hysteresis_rounds is not None and hysteresis_rounds < 0:
        raise ValueError(f"hysteresis_rounds must be None or >= 0, got {hysteresis_rounds}.")
    with torch.no_grad(), torch.autocast(images.device.type, enabled=False):
        if mode == "released":
            return canny_edges(wrap_to_uint8(images), hysteresis_rounds) * 255.0
        grey = unnormalize(images, mean, std)
        check_grey_range(grey, check)
        # The uint8 image OpenCV would be given: saturated to [0, 255] and rounded.
        return canny_edges(grey.clamp(0.0, 255.0).round(), hysteresis_rounds)
