"""Boundary F-score of Gated-SCNN: the DAVIS ``f_boundary`` per class, per image, at several tolerances.

The protocol (Takikawa et al., "Gated-SCNN", ICCV 2019, after Perazzi et al.'s DAVIS benchmark), for each
class ``c`` and each image of height ``H`` and width ``W``:

1. Binary masks ``pred == c`` and ``target == c``; pixels whose target is ``ignore_index`` are set to 0 in both.
2. One-pixel boundaries of each mask with DAVIS ``seg2bmap`` semantics (:func:`boundary_map`).
3. Tolerance ``d = ceil(threshold * sqrt(H² + W²))`` pixels (a fraction of the image diagonal,
   :func:`tolerance_pixels`); each boundary map is dilated by the disk ``{(i, j): i² + j² <= d²}``
   (skimage's ``disk(d)``).
4. Precision ``P = |B_pred ∩ dil(B_gt)| / |B_pred|``, recall ``R = |B_gt ∩ dil(B_pred)| / |B_gt|`` and
   ``F = 2PR / (P + R)`` (0 when ``P + R = 0``). Empty boundaries: both empty gives ``P = R = 1`` (``F = 1``),
   only the prediction's gives ``P = 1, R = 0``, only the ground truth's gives ``P = 0, R = 1`` (``F = 0``).

The score of a class is the mean of ``F`` over all images (an image where the class is absent from both the
prediction and the ground truth counts with ``F = 1``), and the reported score of a threshold is the mean over
classes. An image without a labelled pixel (all ``ignore_index``, e.g. an all-background PASCAL Context-59
image) is left out of the mean: every class would be absent from both masks and score a free ``F = 1``.
:data:`DEFAULT_THRESHOLDS` are the paper's 3 / 5 / 9 / 12 px at 1024×2048; the official code's default first
threshold, 0.0005, gives 2 px there.

Everything runs batched on the inputs' device: all classes of a batch at once, the disk dilation as an OR of
vertically shifted horizontal dilations (each horizontal dilation a difference of row prefix sums), and every
count a sum.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor
from torchmetrics import Metric

DEFAULT_THRESHOLDS = (0.00088, 0.001875, 0.00375, 0.005)

# Images are scored in chunks of at most this many (class, pixel) pairs to bound the memory of the prefix sums.
_MAX_CHUNK_ELEMENTS = 1 << 26


def boundary_map(masks: Tensor) -> Tensor:
    """One-pixel boundaries of binary masks with DAVIS ``seg2bmap`` semantics (same size, no resizing).

    A pixel is on the boundary when it differs from its right, lower or lower-right neighbour. On the last row
    only the right neighbour is compared, on the last column only the lower one, and the bottom-right pixel is
    never a boundary, so the image border itself is not a boundary and a mask and its complement have the same
    boundary.

    Args:
        masks: bool ``(..., H, W)``.

    Returns:
        bool ``(..., H, W)``.
    """
    masks = masks.bool()
    boundary = torch.zeros_like(masks)
    here = masks[..., :-1, :-1]
    boundary[..., :-1, :-1] = (here ^ masks[..., :-1, 1:]) | (here ^ masks[..., 1:, :-1]) | (here ^ masks[..., 1:, 1:])
    boundary[..., -1, :-1] = masks[..., -1, :-1] ^ masks[..., -1, 1:]
    boundary[..., :-1, -1] = masks[..., :-1, -1] ^ masks[..., 1:, -1]
    return boundary


def tolerance_pixels(threshold: float, height: int, width: int) -> int:
    """Tolerance ``ceil(threshold * sqrt(height² + width²))`` in pixels; ``threshold`` is a fraction in (0, 1)."""
    _check_thresholds((threshold,))
    return math.ceil(threshold * math.sqrt(height * height + width * width))


def boundary_f_scores(
    preds: Tensor,
    target: Tensor,
    num_classes: int,
    thresholds: Sequence[float] = DEFAULT_THRESHOLDS,
    ignore_index: int = 255,
    validate_args: bool = True,
) -> Tensor:
    """Per-image, per-threshold, per-class boundary F-scores (see the module docstring for the protocol).

    Args:
        preds: integer ``(B, H, W)`` predicted class ids in ``[0, num_classes)``.
        target: integer ``(B, H, W)`` ground-truth class ids in ``[0, num_classes)`` or ``ignore_index``.
        num_classes: number of classes ``K``.
        thresholds: ``T`` tolerances, each a fraction in (0, 1) of the image diagonal.
        ignore_index: target value of pixels that count in neither mask.
        validate_args: check dtypes, shapes and label ranges (the range check synchronises a GPU).

    Returns:
        float64 ``(B, T, K)`` on the inputs' device.
    """
    thresholds = _check_thresholds(thresholds)
    if num_classes < 1:
        raise ValueError(f"num_classes must be a positive integer, got {num_classes}")
    if validate_args:
        _check_labels(preds, target, num_classes, ignore_index)
    batch, height, width = target.shape
    radii = [tolerance_pixels(threshold, height, width) for threshold in thresholds]
    chunk = max(1, _MAX_CHUNK_ELEMENTS // (num_classes * height * width))
    scores = [
        _chunk_scores(preds[start : start + chunk], target[start : start + chunk], num_classes, radii, ignore_index)
        for start in range(0, batch, chunk)
    ]
    if not scores:
        return torch.zeros(0, len(radii), num_classes, dtype=torch.float64, device=target.device)
    return torch.cat(scores)


class BoundaryFScore(Metric):
    """Gated-SCNN's boundary F-score, accumulated over images (:func:`boundary_f_scores` per batch).

    ``update(preds, target)`` takes integer ``(B, H, W)`` class ids, or ``(B, K, H, W)`` scores / logits for
    ``preds`` (reduced with ``argmax`` over dim 1), and integer ``(B, H, W)`` targets where ``ignore_index`` marks
    unlabelled pixels. The states are the per-threshold, per-class sum of F over images, ``f_sum`` float64
    ``(T, K)``, and the image count ``num_images``; both are sum-reduced, so the result is exact under DDP.
    Images without a labelled pixel count in neither.

    ``compute()`` returns a dict:

    - ``"f_per_class"``: float64 ``(T, K)``, the mean of F over all images, per threshold and class;
    - ``"f_mean"``: float64 ``(T,)``, its mean over classes;
    - ``f"boundary_F/{threshold}"``: scalar, ``f_mean`` at that threshold (e.g. ``"boundary_F/0.00375"``);
    - with ``class_names``, also ``f"boundary_F/{threshold}/{name}"``: scalar, one class at one threshold.
    """

    is_differentiable = False
    higher_is_better = True
    full_state_update = False

    f_sum: Tensor
    num_images: Tensor

    def __init__(
        self,
        num_classes: int,
        thresholds: Sequence[float] = DEFAULT_THRESHOLDS,
        ignore_index: int = 255,
        class_names: Sequence[str] | None = None,
        validate_args: bool = True,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        if num_classes < 1:
            raise ValueError(f"num_classes must be a positive integer, got {num_classes}")
        if class_names is not None and len(class_names) != num_classes:
            raise ValueError(f"class_names has {len(class_names)} names for num_classes={num_classes}")
        self.num_classes = num_classes
        self.thresholds = _check_thresholds(thresholds)
        self.ignore_index = ignore_index
        self.class_names = None if class_names is None else tuple(class_names)
        self.validate_args = validate_args
        self.add_state(
            "f_sum", torch.zeros(len(self.thresholds), num_classes, dtype=torch.float64), dist_reduce_fx="sum"
        )
        self.add_state("num_images", torch.tensor(0, dtype=torch.int64), dist_reduce_fx="sum")

    def update(self, preds: Tensor, target: Tensor, scores: Tensor | None = None) -> None:
        """Add the F-scores of a batch of ``(B, H, W)`` ids or ``(B, K, H, W)`` scores and ``(B, H, W)`` targets.

        ``scores``: the batch's ``(B, T, K)`` :func:`boundary_f_scores`, when the caller computed them already (to
        keep them per image); images without a labelled pixel are left out either way.
        """
        if preds.ndim == 4:
            if preds.shape[1] != self.num_classes:
                raise ValueError(
                    f"preds of shape {tuple(preds.shape)} are read as (B, K, H, W) scores, "
                    f"but K={preds.shape[1]} differs from num_classes={self.num_classes}"
                )
            preds = preds.argmax(dim=1)
        if scores is None:
            scores = boundary_f_scores(
                preds, target, self.num_classes, self.thresholds, self.ignore_index, validate_args=self.validate_args
            )
        labelled = (target != self.ignore_index).flatten(1).any(dim=1)
        self.f_sum += scores[labelled].sum(dim=0)
        self.num_images += labelled.sum()

    def compute(self) -> dict[str, Tensor]:
        """Mean F over images per threshold and class, its mean over classes, and one scalar per threshold."""
        f_per_class = self.f_sum / self.num_images
        f_mean = f_per_class.mean(dim=-1)
        result = {"f_per_class": f_per_class, "f_mean": f_mean}
        for index, threshold in enumerate(self.thresholds):
            result[f"boundary_F/{threshold}"] = f_mean[index]
            if self.class_names is not None:
                for name, value in zip(self.class_names, f_per_class[index], strict=True):
                    result[f"boundary_F/{threshold}/{name}"] = value
        return result


def _check_thresholds(thresholds: Sequence[float]) -> tuple[float, ...]:
    thresholds = tuple(float(threshold) for threshold in thresholds)
    if not thresholds:
        raise ValueError("thresholds must hold at least one threshold")
    bad = [threshold for threshold in thresholds if not 0.0 < threshold < 1.0]
    if bad:
        raise ValueError(f"thresholds must be fractions of the image diagonal in (0, 1), got {bad}")
    return thresholds


def _check_labels(preds: Tensor, target: Tensor, num_classes: int, ignore_index: int) -> None:
    if preds.shape != target.shape or target.ndim != 3:
        raise ValueError(
            f"preds and target must both be (B, H, W), got preds of shape {tuple(preds.shape)} "
            f"and target of shape {tuple(target.shape)}"
        )
    for name, labels in (("preds", preds), ("target", target)):
        if labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool:
            raise ValueError(f"{name} must hold integer class ids, got dtype {labels.dtype}")
    if target.shape[-2] == 0 or target.shape[-1] == 0:
        raise ValueError(f"images must not be empty, got shape {tuple(target.shape)}")
    bad_preds = (preds < 0) | (preds >= num_classes)
    if bad_preds.any():
        raise ValueError(
            f"preds must be class ids in [0, {num_classes}), found {sorted(preds[bad_preds].unique().tolist())}"
        )
    bad_target = ((target < 0) | (target >= num_classes)) & (target != ignore_index)
    if bad_target.any():
        raise ValueError(
            f"target must be class ids in [0, {num_classes}) or ignore_index={ignore_index}, "
            f"found {sorted(target[bad_target].unique().tolist())}"
        )


def _chunk_scores(preds: Tensor, target: Tensor, num_classes: int, radii: list[int], ignore_index: int) -> Tensor:
    """float64 ``(B, T, K)`` F-scores of integer ``(B, H, W)`` preds and target, one tolerance radius per threshold."""
    classes = torch.arange(num_classes, device=target.device).view(-1, 1, 1)
    valid = (target != ignore_index).unsqueeze(1)
    pred_boundary = boundary_map((preds.unsqueeze(1) == classes) & valid)
    gt_boundary = boundary_map((target.unsqueeze(1) == classes) & valid)
    pred_count = pred_boundary.sum(dim=(-2, -1), dtype=torch.int32)
    gt_count = gt_boundary.sum(dim=(-2, -1), dtype=torch.int32)
    # Matches need a boundary on both sides; every other (image, class) pair is settled by the empty-boundary rules.
    both = (pred_count > 0) & (gt_count > 0)
    pred_active = pred_boundary[both]
    gt_active = gt_boundary[both]
    scores = []
    for radius in radii:
        pred_matched = torch.zeros_like(pred_count)
        gt_matched = torch.zeros_like(gt_count)
        pred_matched[both] = (pred_active & _dilate_disk(gt_active, radius)).sum(dim=(-2, -1), dtype=torch.int32)
        gt_matched[both] = (gt_active & _dilate_disk(pred_active, radius)).sum(dim=(-2, -1), dtype=torch.int32)
        scores.append(_f_measure(pred_matched, pred_count, gt_matched, gt_count))
    return torch.stack(scores, dim=1)


def _f_measure(pred_matched: Tensor, pred_count: Tensor, gt_matched: Tensor, gt_count: Tensor) -> Tensor:
    """F of integer match and boundary counts of any shape, with the DAVIS rules for empty boundaries.

    An empty prediction boundary has precision 1 and an empty ground-truth boundary recall 1; with only one of
    them empty, the other side has no matches, so its ratio is already the rule's 0.
    """
    precision = torch.where(pred_count > 0, pred_matched.double() / pred_count.clamp(min=1), 1.0)
    recall = torch.where(gt_count > 0, gt_matched.double() / gt_count.clamp(min=1), 1.0)
    total = precision + recall
    return torch.where(total > 0, 2 * precision * recall / total.clamp(min=torch.finfo(total.dtype).tiny), 0.0)


def _dilate_disk(maps: Tensor, radius: int) -> Tensor:
    """Dilation of bool ``(N, H, W)`` maps by the disk ``{(i, j): i² + j² <= radius²}``, zeros outside the image.

    The disk is the union over rows ``i`` of horizontal segments of half-width ``isqrt(radius² - i²)``: each
    horizontal dilation is a difference of row prefix sums, and the rows are OR-ed with vertical shifts.
    """
    height, width = maps.shape[-2:]
    # Row sums are at most width + 2 * radius + 1: int16 halves the memory traffic where they fit.
    dtype = torch.int16 if width + 2 * radius + 1 <= torch.iinfo(torch.int16).max else torch.int32
    prefix = F.pad(maps.to(dtype), (radius + 1, radius)).cumsum(dim=-1, dtype=dtype)
    dilated = torch.zeros_like(maps)
    row_half_width = -1
    for shift in range(min(radius, height - 1) + 1):
        half_width = math.isqrt(radius * radius - shift * shift)
        if half_width != row_half_width:
            right = prefix[..., radius + 1 + half_width : radius + 1 + half_width + width]
            left = prefix[..., radius - half_width : radius - half_width + width]
            row = right > left
            row_half_width = half_width
        dilated[..., shift:, :] |= row[..., : height - shift, :]
        if shift:
            dilated[..., : height - shift, :] |= row[..., shift:, :]
    return dilated
