"""Ground-truth boundary maps for Gated-SCNN's edge loss, computed in torch on the labels' device.

The official code builds them on the CPU in the data loader, after the augmentations
(``datasets/edge_utils.py``: ``mask_to_onehot`` then ``onehot_to_binary_edges(radius=2)``): each class
channel is padded by one pixel of zeros, ``dist = EDT(mask) + EDT(1 - mask)`` is every pixel's distance
to the nearest pixel of the other value, and a pixel is a boundary pixel of the channel when
``0 < dist <= radius``; the map is the union over channels, cropped back to ``H × W``.

Here the same set is counted exactly instead of with a distance transform: a pixel is within ``radius``
of a pixel of the other value if a disk of that radius around it holds one. A 2D convolution with a
disk kernel counts the channel's pixels in the disk, and the same convolution of an all-ones map counts
the disk's positions inside the padded array, so a pixel of value 1 has a 0 in reach when the two counts
differ, and a pixel of value 0 has a 1 in reach when the first count is positive. The Euclidean distance
between pixel centres is ``sqrt(dy² + dx²)``, so ``dist <= radius`` is ``dy² + dx² <= radius²``, exact in
integers.

Consequences of the official definition that this keeps (official ``datasets/edge_utils.py``):

- the zero padding makes every class touching the image border produce a band along the border;
- ignored pixels belong to no channel, so the outline of a void region is a boundary;
- a class absent from the image gives no boundary. In the official code ``EDT(1 - mask)`` of an absent
  class is the transform of an array without a zero, which SciPy (1.17) fills with distances to a virtual
  background pixel one row above the top-left corner (``sqrt((i + 1)² + j²)`` at padded position
  ``(i, j)``). Inside the crop that is at least ``sqrt(5) > 2``, so with the official radius 2 absent
  classes add nothing there too; from radius ``sqrt(5)`` on the official maps gain spurious pixels near
  the top-left corner for each absent class, which this function does not reproduce.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from lightning_modules.segmentation import check_targets

ONEHOT_OFFSETS = (0, 1)


def disk_kernel(radius: float, device: torch.device | None = None) -> torch.Tensor:
    """``(1, 1, 2R + 1, 2R + 1)`` float32 kernel with ones at the integer offsets ``dy² + dx² <= radius²``.

    ``R = floor(radius)``. Built with device ops so that no host-to-device copy is needed.
    """
    half = math.floor(radius)
    offsets = torch.arange(-half, half + 1, device=device, dtype=torch.float32)
    disk = offsets[:, None] ** 2 + offsets[None, :] ** 2 <= radius**2
    return disk.to(torch.float32)[None, None]


def class_masks(
    labels: torch.Tensor, num_classes: int, ignore_index: int = 255, onehot_offset: int = 0
) -> torch.Tensor:
    """``(B, K, H, W)`` float32 one-hot channels: channel ``i`` is ``labels == i + onehot_offset``.

    Ignored pixels, and with ``onehot_offset = 1`` class 0, are in no channel (official ``mask_to_onehot``
    has ``onehot_offset = 1``; issue #19).
    """
    channel = (labels.long() - onehot_offset).unsqueeze(1)
    # Compared with each channel index rather than through F.one_hot, which on the CPU reads the label range
    # back on the host: this reads nothing on any device, so the no-sync test can refuse every host read.
    classes = torch.arange(num_classes, device=labels.device).view(1, -1, 1, 1)
    return ((channel == classes) & (labels != ignore_index).unsqueeze(1)).to(torch.float32)


def edge_targets(
    labels: torch.Tensor,
    num_classes: int,
    radius: float = 2,
    ignore_index: int = 255,
    onehot_offset: int = 0,
    validate: bool = True,
) -> torch.Tensor:
    """Binary boundary map of a batch of label maps (official ``onehot_to_binary_edges``).

    Args:
        labels: ``(B, H, W)`` integer class ids in ``[0, num_classes)`` or ``ignore_index``.
        num_classes: K, the number of one-hot channels.
        radius: half-width of the band, in pixels (2 in the official code); at least 1.
        ignore_index: label of void pixels, which belong to no class.
        onehot_offset: 0 (fixed): channel ``i`` is class ``i``. 1 (released, issue #19): channel ``i`` is
            class ``i + 1``, so class 0 (Cityscapes road) has no channel; its boundaries with other
            classes still appear from those classes' channels, but not its outline against void or the
            image border.
        validate: check the label values, which synchronises with the host; pass False in the training
            step when the labels were checked before they reached the device.

    Returns:
        ``(B, 1, H, W)`` float32 tensor of 0 / 1 on the labels' device.

    Raises:
        ValueError: ``labels`` is not a ``(B, H, W)`` integer tensor; with ``validate``, it holds a value
            outside ``[0, num_classes)`` other than ``ignore_index``; ``num_classes < 1``; ``radius < 1``;
            ``onehot_offset`` not 0 or 1.
    """
    if labels.ndim != 3 or labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool:
        raise ValueError(f"labels must be a (B, H, W) integer tensor, got shape {tuple(labels.shape)}, {labels.dtype}.")
    if num_classes < 1:
        raise ValueError(f"num_classes must be >= 1, got {num_classes}.")
    if not radius >= 1:
        raise ValueError(f"radius must be >= 1 (pixels), got {radius}.")
    if onehot_offset not in ONEHOT_OFFSETS:
        raise ValueError(f"onehot_offset must be 0 (fixed) or 1 (released), got {onehot_offset}.")
    if validate:
        check_targets(labels, num_classes, ignore_index)
    batch, height, width = labels.shape
    # Counts of 0 / 1 values are exact in float32, but a bf16 autocast or a Winograd / FFT convolution
    # could round them; autocast is off and every comparison below keeps a margin of 0.5.
    with torch.autocast(labels.device.type, enabled=False):
        masks = class_masks(labels, num_classes, ignore_index, onehot_offset)
        padded = F.pad(masks, (1, 1, 1, 1)).reshape(batch * num_classes, 1, height + 2, width + 2)
        kernel = disk_kernel(radius, labels.device)
        # Padding the padded map by R - 1 makes the output the H × W crop: its pixel (y, x) is the padded
        # map's (y + 1, x + 1). Disk positions beyond the padded array fall on this implicit zero padding,
        # and the all-ones map's count leaves them out, so they count as neither value.
        reach = kernel.shape[-1] // 2 - 1
        ones = F.conv2d(padded, kernel, padding=reach).reshape(batch, num_classes, height, width)
        inside = F.conv2d(torch.ones_like(padded[:1]), kernel, padding=reach)
        edge = torch.where(masks > 0.5, inside - ones > 0.5, ones > 0.5)
    return edge.any(dim=1, keepdim=True).to(torch.float32)
