"""Image gradients for GSCNN's fusion: Canny edges computed on the device (spec Part 1, Sec. 1.1.2 and 1.8).

The released GSCNN (``network/gscnn.py``) moves every batch to the host, casts the *normalised* tensor to uint8
and runs ``cv2.Canny(image, 10, 100)`` per image, then feeds the 0/255 map to a 1×1 convolution. That stalls each
iteration and, because of the cast, shows Canny a wrapped image (issue #22). :func:`image_gradients` computes the
edges with ``kornia.filters.canny`` on the device instead, in two modes:

- ``"device"`` (what the paper means): the image un-normalised to its 0-255 grey levels, edges as 0/1;
- ``"released"`` (checkpoint-faithful): the normalised tensor cast to uint8 the way NumPy's ``astype(np.uint8)``
  does on x86, edges as 0/255, as the released model was trained with.

How close this is to ``cv2.Canny(img, 10, 100)`` (default ``apertureSize=3``, ``L2gradient=False``): both use the
unnormalised 3×3 Sobel with replicated borders, no blur (``kernel_size=1`` skips kornia's Gaussian), the same
45-degree non-maximum suppression and strict thresholds, which on the [0, 1] image are 10/255 and 100/255.
Differences: kornia converts RGB to grey (0.299, 0.587, 0.114) where OpenCV keeps, per pixel, the gradient of
the channel with the largest magnitude; kornia's magnitude is the L2 norm ``√(gx² + gy² + ε)`` where OpenCV's
default is ``|gx| + |gy|`` (so kornia finds fewer weak / strong pixels on diagonal edges); and the hysteresis is
bounded, see :func:`hysteresis`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import kornia
import torch
import torch.nn.functional as F

from datamodules.transforms import IMAGENET_MEAN, IMAGENET_STD

CannyMode = Literal["device", "released"]
RangeCheck = Literal["raise", "async", "off"]
CANNY_MODES: tuple[str, ...] = ("device", "released")
RANGE_CHECKS: tuple[str, ...] = ("raise", "async", "off")
# cv2.Canny(image, 10, 100) in the official code, on the 0-255 scale.
LOW_THRESHOLD = 10.0
HIGH_THRESHOLD = 100.0
# Un-normalised images may leave [0, 255] by rounding and resampling; more than a grey level means a wrong mean/std.
RANGE_TOLERANCE = 1.0
# Hysteresis rounds without a host synchronisation: a weak chain is followed this many pixels from a strong pixel.
HYSTERESIS_ROUNDS = 64


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
        f"{RANGE_TOLERANCE}: images not normalised with the ImageNet mean/std?"
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


def hysteresis(edges: torch.Tensor, rounds: int) -> torch.Tensor:
    """Canny's edge tracking on kornia's un-tracked map (0, 0.5 = weak, 1 = strong), in ``rounds`` fixed steps.

    Each step turns the weak pixels that touch a strong one (8-neighbourhood) strong, as one round of kornia's
    loop; kornia repeats until nothing changes, which needs a host synchronisation per round. A fixed count keeps
    the training step asynchronous and agrees with the loop whenever no weak chain is longer than ``rounds``
    pixels beyond its strong end. Shapes: ``(B, 1, H, W)`` → ``(B, 1, H, W)`` of 0 / 1.
    """
    weak = (edges == 0.5).to(edges.dtype)
    strong = (edges == 1.0).to(edges.dtype)
    for _ in range(rounds):
        strong = torch.maximum(strong, weak * F.max_pool2d(strong, 3, stride=1, padding=1))
    return strong


def canny_edges(image: torch.Tensor, rounds: int | None = HYSTERESIS_ROUNDS) -> torch.Tensor:
    """Canny edges (0 / 1) of an RGB image in [0, 1] with ``cv2.Canny(·, 10, 100)``'s thresholds (module docstring).

    ``rounds=None`` runs kornia's hysteresis until convergence (one host synchronisation per round), an integer
    the bounded :func:`hysteresis`. Shapes: ``(B, 3, H, W)`` → ``(B, 1, H, W)``.
    """
    low, high = LOW_THRESHOLD / 255.0, HIGH_THRESHOLD / 255.0
    _, edges = kornia.filters.canny(image, low, high, kernel_size=1, hysteresis=rounds is None)
    return edges if rounds is None else hysteresis(edges, rounds)


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
        mode: ``"device"``: Canny of the un-normalised image, output 0 / 1; ``"released"``: Canny of
            :func:`wrap_to_uint8` of the normalised tensor, output 0 / 255, as the released code computes it.
        mean, std: the normalisation of ``images`` (the DataModules' ImageNet statistics).
        check: the grey-range check of ``"device"`` mode, see :func:`check_grey_range`. GSCNN uses ``"async"``
            in training (no host synchronisation) and ``"raise"`` otherwise, so that Lightning's sanity check
            and any evaluation report a wrong normalisation as a ``ValueError``.
        hysteresis_rounds: see :func:`canny_edges`.

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
    with torch.no_grad():
        if mode == "released":
            return canny_edges(wrap_to_uint8(images) / 255.0, hysteresis_rounds) * 255.0
        grey = unnormalize(images, mean, std)
        check_grey_range(grey, check)
        # Clamped like the uint8 image OpenCV would see.
        return canny_edges(grey.clamp(0.0, 255.0) / 255.0, hysteresis_rounds)
