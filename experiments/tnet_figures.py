"""Figures of TNet's traversal: where each level attended, the policies ``π``, and any image a user passes.

A traversal (:class:`~lightning_modules.tnet.network.TNetOutput`) lists, per level ``l``, the input-pixel boxes
``(y0, x0, y1, x1)`` of the level's inputs (end exclusive; a box may reach into the zero padding of the grid),
the policy ``π`` over the ``n × n`` cells of each input, and the selected cells. The cells attended at level
``l`` are the inputs of level ``l + 1``, so their boxes are ``output.boxes[l + 1]``. Per-level tensors hold
``B · m_l`` rows, image by image (``m_l = k_0 ⋯ k_{l−1}`` inputs per image).

- :func:`draw_traversal`: an image of the batch with the attended cells of every level, one colour per level;
- :func:`draw_policy`: ``π`` of a level as an ``n × n`` heat map (one per input of the level, side by side);
- :func:`policy_on_image`: ``π`` painted over the image, for an overlay;
- :func:`inside_any` and :func:`chance_inside`: which boxes (e.g. digits) lie inside an attended cell, and the
  probability that they would under cells picked at random;
- :func:`traverse_image`: load any image file (or array), prepare it as the network's input and traverse it;
- :func:`latest_run`: the newest finished run of a row in the results store.

Images are drawn with ``extent=(0, W, H, 0)``: pixel ``(r, c)`` covers ``[c, c + 1] × [r, r + 1]``, so a box's
coordinates are the rectangle's corners as they are.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.image import AxesImage
from matplotlib.patches import Rectangle
from PIL import Image

from experiments.results import load_records
from lightning_modules.tnet.grid import grid_geometry
from lightning_modules.tnet.module import TNetModule
from lightning_modules.tnet.network import TNet, TNetOutput

LEVEL_COLORS = ("tab:red", "tab:orange", "tab:cyan", "tab:pink", "tab:olive", "tab:purple")
ImageSource = str | os.PathLike | Image.Image | np.ndarray


def _check_index(output: TNetOutput, index: int) -> None:
    if not 0 <= index < output.batch_size:
        raise IndexError(f"image index {index} out of range for a batch of {output.batch_size}.")


def _check_level(level: int, available: int, what: str) -> None:
    if not 0 <= level < available:
        raise ValueError(f"level {level} has no {what}: this traversal has them at levels 0..{available - 1}.")


def image_rows(tensor: torch.Tensor, output: TNetOutput, index: int) -> torch.Tensor:
    """The rows of image ``index`` in a per-level tensor of ``B · m`` rows (image by image): ``(m, ...)``."""
    _check_index(output, index)
    per_image = tensor.shape[0] // output.batch_size
    return tensor[index * per_image : (index + 1) * per_image]


def attended_boxes(output: TNetOutput, index: int, level: int = 0) -> torch.Tensor:
    """``(m_{l+1}, 4)`` input-pixel boxes ``(y0, x0, y1, x1)`` of the cells attended at ``level`` in image
    ``index`` (the inputs of level ``l + 1``), unclipped."""
    _check_level(level, len(output.boxes) - 1, "attended cells")
    return image_rows(output.boxes[level + 1], output, index)


def image_shape(output: TNetOutput, index: int = 0) -> tuple[int, int]:
    """``(H, W)`` of the traversed images: the box of the whole image at level 0."""
    y0, x0, y1, x1 = (int(v) for v in output.boxes[0][index])
    return y1 - y0, x1 - x0


def _as_numpy(boxes: torch.Tensor | np.ndarray | Sequence[Sequence[int]]) -> np.ndarray:
    if isinstance(boxes, torch.Tensor):
        boxes = boxes.detach().cpu().numpy()
    return np.asarray(boxes).reshape(-1, 4)


def clip_boxes(boxes: torch.Tensor | np.ndarray, height: int, width: int) -> np.ndarray:
    """``(M, 4)`` boxes ``(y0, x0, y1, x1)`` clipped to an ``height × width`` image (the zero padding cut off)."""
    clipped = _as_numpy(boxes).copy()
    clipped[:, [0, 2]] = clipped[:, [0, 2]].clip(0, height)
    clipped[:, [1, 3]] = clipped[:, [1, 3]].clip(0, width)
    return clipped


def draw_boxes(
    axis: Axes,
    boxes: torch.Tensor | np.ndarray,
    height: int,
    width: int,
    color: str = "white",
    linestyle: str = "-",
    linewidth: float = 1.5,
    label: str | None = None,
) -> list[Rectangle]:
    """Outline ``(M, 4)`` boxes ``(y0, x0, y1, x1)`` (end exclusive), clipped to the image, on ``axis``.

    The axis must show the image with ``extent=(0, W, H, 0)`` (as :func:`draw_image` does). ``label`` goes on the
    first rectangle only, for one legend entry.
    """
    rectangles = []
    for number, (y0, x0, y1, x1) in enumerate(clip_boxes(boxes, height, width).tolist()):
        rectangle = Rectangle(
            (x0, y0),
            x1 - x0,
            y1 - y0,
            fill=False,
            edgecolor=color,
            linestyle=linestyle,
            linewidth=linewidth,
            label=label if number == 0 and label else None,
        )
        axis.add_patch(rectangle)
        rectangles.append(rectangle)
    return rectangles


def to_picture(image: torch.Tensor) -> np.ndarray:
    """An image ``(3, H, W)`` with values in [−1, 1] as ``(H, W, 3)`` float32 in [0, 1] for ``imshow``."""
    if image.ndim != 3 or image.shape[0] != 3:
        raise ValueError(f"expected one (3, H, W) image, got shape {tuple(image.shape)}.")
    return ((image.detach().float().cpu() + 1.0) / 2.0).clamp(0.0, 1.0).permute(1, 2, 0).numpy()


def draw_image(axis: Axes, image: torch.Tensor) -> AxesImage:
    """Show an image ``(3, H, W)`` in [−1, 1] with ``extent=(0, W, H, 0)`` (pixel edges on integer coordinates)."""
    height, width = image.shape[-2:]
    return axis.imshow(to_picture(image), extent=(0, width, height, 0), interpolation="nearest")


def draw_traversal(
    axis: Axes,
    images: torch.Tensor,
    output: TNetOutput,
    index: int,
    colors: Sequence[str] = LEVEL_COLORS,
    linewidth: float = 1.5,
    show_image: bool = True,
) -> list[list[Rectangle]]:
    """Draw image ``index`` of ``images`` with the cells attended at every level, one colour per level.

    Args:
        axis: where to draw.
        images: ``(B, 3, H, W)`` batch in [−1, 1], the one ``output`` traversed.
        output: the traversal.
        index: which image of the batch.
        colors: the colour of each level's cells (level ``l`` takes ``colors[l % len(colors)]``).
        linewidth: of the cell outlines.
        show_image: ``False`` draws only the cells, e.g. over an image already shown with ``extent=(0, W, H, 0)``.

    Returns:
        Per level with attended cells (``0 .. L − 2``), the rectangles drawn: ``m_{l+1}`` each, the boxes of
        ``output.boxes[l + 1]`` of the image clipped to it; each level's first one is labelled for a legend.
    """
    if images.ndim != 4 or images.shape[0] != output.batch_size:
        raise ValueError(
            f"images must be the (B, 3, H, W) batch of the traversal (B = {output.batch_size}), got shape "
            f"{tuple(images.shape)}."
        )
    _check_index(output, index)
    height, width = images.shape[-2:]
    if show_image:
        draw_image(axis, images[index])
    drawn = []
    for level in range(len(output.boxes) - 1):
        color = colors[level % len(colors)]
        boxes = attended_boxes(output, index, level)
        drawn.append(draw_boxes(axis, boxes, height, width, color, linewidth=linewidth, label=f"level {level} cells"))
    axis.set_xlim(0, width)
    axis.set_ylim(height, 0)
    return drawn


def policy_maps(output: TNetOutput, index: int, level: int = 0) -> torch.Tensor:
    """``(m_l, n, n)``: the policy ``π`` of each input of image ``index`` at ``level``, cell ``r · n + c`` at
    ``[r, c]`` (``m_0 = 1``: level 0 sees the whole image)."""
    _check_level(level, len(output.probs), "policy")
    probs = image_rows(output.probs[level], output, index).detach().cpu()
    side = math.isqrt(probs.shape[1])
    return probs.view(-1, side, side)


def draw_policy(
    axis: Axes,
    output: TNetOutput,
    index: int,
    level: int = 0,
    input_index: int | None = None,
    cmap: str = "viridis",
    vmax: float | None = None,
    mark_selected: bool = True,
    color: str = "white",
) -> AxesImage:
    """Draw the policy ``π`` of image ``index`` at ``level`` as a heat map of its ``n × n`` cells.

    Level 0 has one map. A deeper level has one per attended input (``m_l``): ``input_index`` picks one, otherwise
    they are drawn side by side, in the order of ``output.boxes[level]``, one NaN column (blank) between two.
    ``mark_selected`` outlines the cells the traversal chose. The colour scale starts at 0 and ends at ``vmax``
    (default: the largest probability shown).

    Returns:
        The ``imshow`` image: its array is ``(n, n)`` (one map) or ``(n, m_l · (n + 1) − 1)`` (side by side).
    """
    maps = policy_maps(output, index, level)
    chosen = image_rows(output.cells[level], output, index).detach().cpu()
    if input_index is not None:
        if not 0 <= input_index < maps.shape[0]:
            raise IndexError(f"input {input_index} out of range: level {level} has {maps.shape[0]} inputs per image.")
        maps, chosen = maps[input_index : input_index + 1], chosen[input_index : input_index + 1]
    side = maps.shape[-1]
    gap = torch.full((side, 1), float("nan"))
    tiles = [part for number, tile in enumerate(maps) for part in ((gap, tile) if number else (tile,))]
    array = torch.cat(tiles, dim=1).numpy()
    shown = axis.imshow(array, cmap=cmap, vmin=0.0, vmax=vmax if vmax is not None else float(maps.max()))
    if mark_selected:
        for number, cells in enumerate(chosen.tolist()):
            for cell in cells:
                row, col = divmod(cell, side)
                corner = (number * (side + 1) + col - 0.5, row - 0.5)
                axis.add_patch(Rectangle(corner, 1, 1, fill=False, edgecolor=color, linewidth=1.5))
    axis.set_xticks([])
    axis.set_yticks([])
    return shown


def cell_boxes(box: Sequence[int] | torch.Tensor, num_patches: int, overlap: float) -> torch.Tensor:
    """``(n², 4)`` input-pixel boxes ``(y0, x0, y1, x1)`` of all the cells of the grid TNet lays over an input at
    ``box`` (cell ``r · n + c`` in row ``r``), with :func:`~lightning_modules.tnet.grid.grid_geometry`'s
    patches, strides and padding; the boxes of the selected cells are the next level's ``output.boxes``."""
    y0, x0, y1, x1 = (int(v) for v in box)
    gy = grid_geometry(y1 - y0, num_patches, overlap)
    gx = grid_geometry(x1 - x0, num_patches, overlap)
    steps = torch.arange(num_patches)
    tops = (y0 + steps * gy.stride - gy.pad_before).repeat_interleave(num_patches)
    lefts = (x0 + steps * gx.stride - gx.pad_before).repeat(num_patches)
    return torch.stack([tops, lefts, tops + gy.patch, lefts + gx.patch], dim=1)


def policy_on_image(
    output: TNetOutput, index: int, overlap: float, level: int = 0, input_index: int = 0
) -> torch.Tensor:
    """``(H, W)``: the policy ``π`` of one input of image ``index`` at ``level`` painted on the image, for an
    overlay (``imshow(..., extent=(0, W, H, 0))``).

    Each pixel of the input's box (clipped to the image) takes ``π`` of the cell whose centre is nearest along
    each axis: the cells overlap when ``overlap > 1 / n``, and this cuts the box into an ``n × n`` mosaic
    aligned with the grid. Pixels outside the box are NaN (level 0: none). ``overlap`` is the network's
    (``TNet.overlap``): a traversal does not record it.
    """
    maps = policy_maps(output, index, level)
    if not 0 <= input_index < maps.shape[0]:
        raise IndexError(f"input {input_index} out of range: level {level} has {maps.shape[0]} inputs per image.")
    height, width = image_shape(output, index)
    box = image_rows(output.boxes[level], output, index)[input_index].cpu()
    side = maps.shape[-1]
    cells = cell_boxes(box, side, overlap).view(side, side, 4)
    centre_y = (cells[:, 0, 0] + cells[:, 0, 2]).float() / 2  # (n,) of the rows
    centre_x = (cells[0, :, 1] + cells[0, :, 3]).float() / 2  # (n,) of the columns
    top, left, bottom, right = clip_boxes(box, height, width)[0].tolist()
    pixel_y = torch.arange(top, bottom, dtype=torch.float32) + 0.5
    pixel_x = torch.arange(left, right, dtype=torch.float32) + 0.5
    rows = (pixel_y[:, None] - centre_y[None]).abs().argmin(dim=1)
    cols = (pixel_x[:, None] - centre_x[None]).abs().argmin(dim=1)
    painted = torch.full((height, width), float("nan"))
    painted[top:bottom, left:right] = maps[input_index].float()[rows[:, None], cols[None, :]]
    return painted


def inside_any(boxes: torch.Tensor | np.ndarray, cells: torch.Tensor | np.ndarray) -> np.ndarray:
    """``(M,)`` bool: whether each of ``boxes`` ``(M, 4)`` lies wholly inside at least one of ``cells`` ``(K, 4)``
    (all ``(y0, x0, y1, x1)``, end exclusive), e.g. digits inside the attended cells of :func:`attended_boxes`."""
    inner, outer = _as_numpy(boxes)[:, None], _as_numpy(cells)[None]
    contained = (
        (inner[..., 0] >= outer[..., 0])
        & (inner[..., 1] >= outer[..., 1])
        & (inner[..., 2] <= outer[..., 2])
        & (inner[..., 3] <= outer[..., 3])
    )
    return contained.any(axis=1)


def chance_inside(
    boxes: torch.Tensor | np.ndarray, height: int, width: int, num_patches: int, overlap: float, count: int
) -> np.ndarray:
    """``(M,)``: the probability that each box lies wholly inside one of ``count`` distinct cells of the level-0
    grid of an ``height × width`` image drawn uniformly at random, ``1 − C(n² − c, k) / C(n², k)`` with ``c`` the
    cells that contain the box: what :func:`inside_any` would give without a policy."""
    grid = cell_boxes((0, 0, height, width), num_patches, overlap)
    containing = np.stack([inside_any(boxes, cell[None]) for cell in grid]).sum(axis=0)
    total = num_patches**2
    return np.array([1.0 - math.comb(total - int(c), count) / math.comb(total, count) for c in containing])


def load_image(source: ImageSource, image_size: int | tuple[int, int]) -> torch.Tensor:
    """Any image as TNet's input: ``(1, 3, H, W)`` float32 in [−1, 1] (0 → −1, 255 → +1).

    Args:
        source: a file Pillow reads (path), a PIL image, or a uint8 array ``(H, W)`` (grey) or ``(H, W, 3)``
            (RGB). Grey images are repeated on the three channels, an alpha channel is dropped.
        image_size: the network's input side ``S`` (or ``(H, W)``), e.g. the image size of its recipe; the image
            is resized to it (Pillow's bilinear filter, antialiased when shrinking), unless it has that size.
    """
    height, width = (image_size, image_size) if isinstance(image_size, int) else image_size
    if isinstance(source, np.ndarray):
        if source.dtype != np.uint8 or not (source.ndim == 2 or (source.ndim == 3 and source.shape[2] in (3, 4))):
            raise ValueError(
                f"an image array must be uint8 (H, W) or (H, W, 3), got {source.dtype} {tuple(source.shape)}."
            )
        picture = Image.fromarray(source)
    elif isinstance(source, Image.Image):
        picture = source
    else:
        with Image.open(source) as opened:
            picture = opened.convert("RGB")
    picture = picture.convert("RGB")
    if picture.size != (width, height):
        picture = picture.resize((width, height), Image.Resampling.BILINEAR)
    pixels = torch.from_numpy(np.asarray(picture, dtype=np.float32).copy())
    return pixels.div(127.5).sub(1.0).permute(2, 0, 1).unsqueeze(0).contiguous()


def _network_and_counts(model: TNetModule | TNet) -> tuple[TNet, Sequence[int] | None]:
    if isinstance(model, TNetModule):
        return model.network, model.hparams.eval_locations_per_level
    if isinstance(model, TNet):
        return model, None
    raise TypeError(f"expected a TNetModule or a TNet, got {type(model).__name__}.")


def traverse(
    model: TNetModule | TNet, images: torch.Tensor, locations_per_level: Sequence[int] | None = None
) -> TNetOutput:
    """Traverse ``images`` ``(B, 3, H, W)`` in [−1, 1] in evaluation mode, without gradients.

    A :class:`TNetModule` traverses with its evaluation cells per level (``eval_locations_per_level``), a
    :class:`TNet` with its own; ``locations_per_level`` overrides either. The images go to the network's device;
    its training mode is restored afterwards.
    """
    network, counts = _network_and_counts(model)
    if locations_per_level is not None:
        counts = locations_per_level
    device = next(network.parameters()).device
    training = network.training
    network.eval()
    try:
        with torch.no_grad():
            return network(images.to(device), locations_per_level=counts)
    finally:
        network.train(training)


def traverse_image(
    model: TNetModule | TNet,
    source: ImageSource,
    image_size: int | tuple[int, int],
    locations_per_level: Sequence[int] | None = None,
) -> tuple[torch.Tensor, TNetOutput]:
    """Load any image (:func:`load_image`: a path, a PIL image or a uint8 array), resize it to ``image_size``,
    scale it to [−1, 1] and :func:`traverse` it.

    Returns:
        The batch ``(1, 3, H, W)`` the network saw (on its device) and the traversal.
    """
    network, _ = _network_and_counts(model)
    images = load_image(source, image_size).to(next(network.parameters()).device)
    return images, traverse(model, images, locations_per_level)


def latest_run(
    runs_dir: str | os.PathLike, experiment: str, variant: str, profile: str | None = None
) -> tuple[Path, dict[str, Any]] | None:
    """The newest finished run of ``variant`` of ``experiment`` in the results store (of ``profile``, or any):
    its folder and record, or ``None``.

    Finished: a valid ``metrics.json`` beside ``checkpoints/last.ckpt``; the newest ``metrics.json`` wins.
    Corrupt records are passed over (``python -m experiments table`` names them).
    """
    records, _ = load_records(runs_dir, experiment)
    found = []
    for record in records:
        if record["variant"] != variant or (profile is not None and record["profile"] != profile):
            continue
        folder = Path(runs_dir, experiment, variant, record["run_id"])
        if (folder / "checkpoints" / "last.ckpt").is_file():
            found.append(((folder / "metrics.json").stat().st_mtime, str(folder), folder, record))
    if not found:
        return None
    _, _, folder, record = max(found, key=lambda item: item[:2])
    return folder, record
