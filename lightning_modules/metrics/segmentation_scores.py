"""Dataset-level mIoU, pixel accuracy and per-class IoU from one confusion matrix.

The benchmarks (and the official DANet / PyTorch-Encoding evaluation) accumulate intersections
and unions over the whole split before dividing: IoU_c = Σ TP_c / Σ (TP_c + FP_c + FN_c). This is
not the per-image average of ``torchmetrics.segmentation.MeanIoU``. One accumulated
``MulticlassConfusionMatrix`` gives every score at once, and its sum-reduced state is exact under
DDP.
"""

from __future__ import annotations

import torch
from torchmetrics.classification import MulticlassConfusionMatrix


def scores_from_confusion(confmat: torch.Tensor) -> dict[str, torch.Tensor]:
    """Scores of a ``(K, K)`` confusion matrix, rows = ground truth, columns = prediction.

    Returns ``mIoU`` (mean over classes whose union is non-empty: a class absent from both the
    labels and the predictions of the whole split is NaN in ``iou`` and left out of the mean, as
    mmsegmentation does), ``pixel_acc`` (correct / labelled pixels), ``mean_class_acc`` (mean
    recall over classes present in the labels), and the per-class ``iou`` and ``class_acc``
    vectors of shape ``(K,)``.
    """
    confmat = confmat.double()
    true_positive = confmat.diagonal()
    labelled = confmat.sum(dim=1)
    predicted = confmat.sum(dim=0)
    union = labelled + predicted - true_positive
    nan = torch.tensor(float("nan"), dtype=confmat.dtype, device=confmat.device)
    iou = torch.where(union > 0, true_positive / union.clamp(min=1), nan)
    class_acc = torch.where(labelled > 0, true_positive / labelled.clamp(min=1), nan)
    total = confmat.sum()
    pixel_acc = true_positive.sum() / total if total > 0 else nan
    return {
        "mIoU": iou.nanmean(),
        "pixel_acc": pixel_acc,
        "mean_class_acc": class_acc.nanmean(),
        "iou": iou,
        "class_acc": class_acc,
    }


class SegmentationScores(MulticlassConfusionMatrix):
    """``MulticlassConfusionMatrix`` whose ``compute`` returns :func:`scores_from_confusion`.

    ``update(preds, target)`` takes class indices of any matching shape, e.g. ``(B, H, W)``;
    pixels whose target equals ``ignore_index`` (255) are not counted.
    """

    def compute(self) -> dict[str, torch.Tensor]:  # type: ignore[override]
        return scores_from_confusion(self.confmat)
