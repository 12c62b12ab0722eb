"""One step of TNet's top-down traversal: choose cells, crop them, place them in the grid of the next level.

Official ``TNet.create_boolean_mask``, ``TNet.create_masked_batch`` and ``create_positional_vectors_components``
(Tpap/TNet ``ImageNet/models.py``, ``fMoW/models_fMoW.py``):

- :func:`select_cells`: the ``k`` most probable cells of each grid, **deterministically** (top-k, in training
  too), listed in increasing cell order (row by row), as the official boolean mask gathers them; a tie at the
  k-th place goes to the lower cell index, as ``tf.math.top_k`` breaks it;
- :func:`crop_cells`: the selected patches of every image in one gather over a strided view of the zero-padded
  batch (the grid of :func:`~lightning_modules.tnet.grid.grid_geometry`), with no loop over images;
- :func:`child_positions`: the ``(y, x, s)`` triplet of each crop in the grid of its level
  (``y · n + row``, ``x · n + col``, ``s = level``);
- :func:`resize_to_base`: the bilinear resize of a level's batch to the extractor's base resolution, without
  antialiasing as the official ``tf.image.resize(..., antialias=False)``, or with it on request.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from lightning_modules.tnet.grid import grid_geometry


def select_cells(probs: torch.Tensor, k: int) -> torch.Tensor:
    """Indices ``(M, k)`` of the ``k`` most probable of the ``n²`` cells of each row of ``probs`` ``(M, n²)``.

    Each row's indices are sorted increasingly (the order the official mask keeps the crops in); among equal
    probabilities the lower index wins. Raises ``ValueError`` unless ``1 <= k <= n²``.
    """
    if not 1 <= k <= probs.shape[1]:
        raise ValueError(
            f"cannot attend to {k} of the {probs.shape[1]} cells of a grid: need 1 <= k <= {probs.shape[1]}."
        )
    order = torch.sort(probs, dim=1, descending=True, stable=True).indices
    return order[:, :k].sort(dim=1).values


def crop_cells(images: torch.Tensor, cells: torch.Tensor, num_patches: int, overlap: float) -> torch.Tensor:
    """The selected grid patches of each image, stacked image by image.

    Args:
        images: ``(M, C, H, W)`` batch of one level.
        cells: ``(M, k)`` cell indices ``row · num_patches + col`` (from :func:`select_cells`).
        num_patches: cells per side of the grid.
        overlap: the fraction of each side a patch covers.

    Returns:
        ``(M · k, C, p_y, p_x)``: patch ``j`` of image ``i`` at row ``i · k + j``; the patch sides follow
        :func:`~lightning_modules.tnet.grid.grid_geometry` of ``H`` and ``W``, and the image is zero-padded as
        the official code pads it.
    """
    height, width = images.shape[-2:]
    gy = grid_geometry(height, num_patches, overlap)
    gx = grid_geometry(width, num_patches, overlap)
    padded = F.pad(images, (gx.pad_before, gx.pad_after, gy.pad_before, gy.pad_after))
    # (M, C, n, n, p_y, p_x) strided view of every patch; the gather below copies only the selected ones.
    patches = padded.unfold(2, gy.patch, gy.stride).unfold(3, gx.patch, gx.stride)
    image_index = torch.arange(images.shape[0], device=images.device)[:, None].expand_as(cells)
    rows, cols = cells // num_patches, cells % num_patches
    return patches.permute(0, 2, 3, 1, 4, 5)[image_index, rows, cols].flatten(0, 1)


def child_positions(
    y: torch.Tensor, x: torch.Tensor, cells: torch.Tensor, num_patches: int, level: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(y, x, s)`` of the crops of :func:`crop_cells`, each ``(M · k,)``.

    ``y``, ``x`` ``(M,)`` are the parents' cell coordinates in the grid of their own level (0 at the first
    level); a child in row ``r``, column ``c`` of its parent's grid gets ``(y · n + r, x · n + c, level)``.
    """
    rows, cols = cells // num_patches, cells % num_patches
    child_y = (y[:, None] * num_patches + rows).flatten()
    child_x = (x[:, None] * num_patches + cols).flatten()
    return child_y, child_x, torch.full_like(child_y, level)


def resize_to_base(images: torch.Tensor, size: tuple[int, int], antialias: bool = False) -> torch.Tensor:
    """Bilinear resize (half-pixel centres, as TF 2's ``tf.image.resize``) of ``(M, C, H, W)`` to ``size``.

    ``antialias=False`` is the official choice: a 896 → 224 resize then samples 2 of every 4 pixels per side
    and aliases. A batch already at ``size`` is returned as it is.
    """
    if tuple(images.shape[-2:]) == tuple(size):
        return images
    return F.interpolate(images, size=size, mode="bilinear", align_corners=False, antialias=antialias)
