"""The grid of candidate locations that TNet lays over an image at each level.

The official code (Tpap/TNet, ``ImageNet/models.py`` and ``fMoW/models_fMoW.py``, ``create_masked_batch``) cuts an
image of side ``S`` into an ``n × n`` grid of overlapping square patches: each patch covers the fraction ``ω``
(``overlap``) of the side, consecutive patches start ``t`` pixels apart, and the image is zero-padded so that the
last patch ends on its border. Per side:

- patch ``p = round(ω · S)``, rounded half to even as NumPy's ``np.round`` (and Python's ``round``) do;
- stride ``t = ceil((S − p) / (n − 1))``;
- padding ``(n − 1) · t + p − S``, ``ceil`` of half of it before the image and the rest after.

The paper's configurations: ImageNet 224 px, 5 × 5, ω = 0.34375 → p = 77, t = 37, 1 px of padding before;
fMoW 448 (and 896) px, 3 × 3, ω = 0.5 → p = 224 (448), t = 112 (224), no padding; CUB 448 px, 5 × 5, ω = 0.35
→ p = 157, t = 73, 1 px before.
"""

from __future__ import annotations

import math
from typing import NamedTuple


class GridGeometry(NamedTuple):
    """One side of a level's grid, in pixels: patch side, stride, padding before and after the image."""

    patch: int
    stride: int
    pad_before: int
    pad_after: int


def grid_geometry(side: int, num_patches: int, overlap: float) -> GridGeometry:
    """Patch side, stride and padding of an ``num_patches``-cell grid over an image side of ``side`` pixels.

    Args:
        side: the image side at this level (pixels).
        num_patches: cells along the side, ``n >= 2``.
        overlap: the fraction of the side one patch covers, in ``(0, 1]``.

    Returns:
        :class:`GridGeometry` ``(patch, stride, pad_before, pad_after)``; ``pad_before + side + pad_after =
        (num_patches − 1) · stride + patch``.

    Raises:
        ValueError: for a side below 1, fewer than 2 cells, an overlap outside ``(0, 1]``, or a patch of 0 pixels.
    """
    if isinstance(side, bool) or not isinstance(side, int) or side < 1:
        raise ValueError(f"side must be a positive number of pixels, got {side!r}.")
    if isinstance(num_patches, bool) or not isinstance(num_patches, int) or num_patches < 2:
        raise ValueError(f"num_patches must be an integer >= 2 (cells along a side), got {num_patches!r}.")
    if not 0.0 < overlap <= 1.0:
        raise ValueError(f"overlap must be the fraction of the side a patch covers, in (0, 1], got {overlap!r}.")
    patch = round(overlap * side)
    if patch < 1:
        raise ValueError(f"overlap {overlap} of a {side} px side rounds to an empty patch.")
    stride = math.ceil((side - patch) / (num_patches - 1))
    padding = (num_patches - 1) * stride + patch - side
    before = math.ceil(padding / 2)
    return GridGeometry(patch, stride, before, padding - before)
