"""Full evaluation of a segmentation network on a split: the papers' protocols in one pass.

- mIoU, pixel accuracy and per-class IoU over the whole split (:class:`SegmentationScores`);
- the boundary F-score at 3 / 5 / 9 / 12 px (Gated-SCNN, Sec. 4.2; :class:`BoundaryFScore`);
- Gated-SCNN's distance-based evaluation: mIoU on centre crops that zoom into the image;
- optionally, the per-image sufficient statistics of these scores (:func:`per_image_counts` and the per-image
  boundary F), from which any resample of the images gives its dataset-level scores (the paired bootstrap of
  ``python -m experiments compare``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from datamodules.transforms import resize_labels
from lightning_modules.inference import predict
from lightning_modules.metrics import BoundaryFScore, SegmentationScores
from lightning_modules.metrics.boundary import boundary_f_scores

CROP_FACTORS = (0, 100, 200, 300, 400)


def zoom_center(images: torch.Tensor, labels: torch.Tensor, crop: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Crop a centred window of the image's aspect ratio and resize it back to the full size.

    Gated-SCNN (Sec. 4.3, "distance-based evaluation") evaluates on such centre crops, which
    enlarge the far, small objects near the image centre. The paper's exact crop geometry is not
    in its released code; we read the crop factor as the pixels removed from the top and from the
    bottom (at the input's resolution), and remove ``round(crop · W / H)`` from the left and from the
    right, so that the window keeps the image's aspect ratio and the zoom is the same in both
    directions (on 1024×2048 Cityscapes, crop 400 keeps the central 224×448 and zooms by 4.6).
    Images are resized bilinearly, labels with :func:`~datamodules.transforms.resize_labels` (each
    pixel takes the label under its centre).

    Shapes: ``(B, C, H, W)`` float and ``(B, H, W)`` int → the same shapes.

    Raises:
        ValueError: when the window would be empty.
    """
    if crop == 0:
        return images, labels
    height, width = labels.shape[-2:]
    side = round(crop * width / height)
    if 2 * crop >= height or 2 * side >= width:
        raise ValueError(f"crop factor {crop} px leaves nothing of a {height}x{width} image.")
    window = (slice(crop, height - crop), slice(side, width - side))
    zoomed = F.interpolate(
        images[..., window[0], window[1]], size=(height, width), mode="bilinear", align_corners=False
    )
    return zoomed, resize_labels(labels[:, window[0], window[1]], (height, width))


def per_image_counts(
    preds: torch.Tensor, labels: torch.Tensor, num_classes: int, ignore_index: int = 255
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per image and class: true positives, labelled pixels and predicted pixels, each int64 ``(B, K)``.

    Pixels labelled ``ignore_index`` count in none of them. Summed over images they give the split's confusion
    totals: IoU_c = Σ TP_c / Σ (labelled_c + predicted_c − TP_c), pixel accuracy = Σ TP / Σ labelled.

    Shapes: ``preds``, ``labels`` integer ``(B, H, W)``.
    """
    batch = labels.shape[0]
    valid = labels != ignore_index
    # One bincount of (image, label, prediction) triples: each image's confusion matrix, rows = labels.
    offsets = (torch.arange(batch, device=labels.device) * num_classes**2).view(batch, 1, 1)
    cells = (offsets + labels.long() * num_classes + preds.long())[valid]
    confusion = torch.bincount(cells, minlength=batch * num_classes**2).view(batch, num_classes, num_classes)
    return confusion.diagonal(dim1=1, dim2=2), confusion.sum(dim=2), confusion.sum(dim=1)


@torch.inference_mode()
def evaluate_segmentation(
    network: nn.Module,
    batches: Iterable[Sequence[torch.Tensor]],
    num_classes: int,
    class_names: Sequence[str] | None = None,
    predict_kwargs: dict[str, Any] | None = None,
    boundary_thresholds: Sequence[float] | None = None,
    crop_factors: Sequence[int] = (),
    ignore_index: int = 255,
    device: str | torch.device = "cpu",
    progress: bool = True,
    per_image: bool = False,
) -> dict[str, Any]:
    """Scores of ``network`` over ``batches`` of ``(images (B, 3, H, W), labels (B, H, W))``.

    ``predict_kwargs`` go to :func:`lightning_modules.inference.predict` (``mode``, ``scales``,
    ``flip``, ``window``...). Returns plain Python numbers: ``mIoU``, ``pixel_acc``,
    ``mean_class_acc``, ``iou_per_class``, ``boundary_F`` (threshold → mean F over classes),
    ``boundary_F_per_class`` and ``crop_factor_mIoU`` (crop → mIoU).

    With ``per_image``, also ``"per_image"``: NumPy arrays over the ``N`` images in loader order,
    ``true_positive`` / ``labelled`` / ``predicted`` int64 ``(N, K)`` (:func:`per_image_counts`), ``boundary_F``
    float64 ``(N, T, K)`` and ``has_label`` bool ``(N,)`` (images with a labelled pixel, the ones the boundary F
    averages over), and ``thresholds`` ``(T,)``.
    """
    predict_kwargs = dict(predict_kwargs or {"mode": "single"})
    names = list(class_names) if class_names is not None else [str(i) for i in range(num_classes)]
    network = network.to(device).eval()
    scores = SegmentationScores(num_classes, ignore_index=ignore_index, validate_args=False).to(device)
    boundary_kwargs = {} if boundary_thresholds is None else {"thresholds": tuple(boundary_thresholds)}
    boundary = BoundaryFScore(num_classes, ignore_index=ignore_index, **boundary_kwargs).to(device)
    crops = {
        crop: SegmentationScores(num_classes, ignore_index=ignore_index, validate_args=False).to(device)
        for crop in crop_factors
    }
    kept: dict[str, list[torch.Tensor]] = {"true_positive": [], "labelled": [], "predicted": [], "boundary_F": []}
    for images, labels in tqdm(batches, desc="evaluate", disable=not progress):
        images, labels = images.to(device), labels.to(device)
        preds = predict(network, images, **predict_kwargs).argmax(dim=1)
        scores.update(preds, labels)
        f_scores = boundary_f_scores(preds, labels, num_classes, boundary.thresholds, ignore_index, validate_args=False)
        boundary.update(preds, labels, scores=f_scores)
        if per_image:
            counts = (*per_image_counts(preds, labels, num_classes, ignore_index), f_scores)
            for key, value in zip(kept, counts, strict=True):
                kept[key].append(value.cpu())
        for crop, crop_scores in crops.items():
            if crop == 0:
                crop_scores.update(preds, labels)
                continue
            zoomed, zoomed_labels = zoom_center(images, labels, crop)
            crop_scores.update(predict(network, zoomed, **predict_kwargs).argmax(dim=1), zoomed_labels)
    result = scores.compute()
    boundary_result = boundary.compute()
    per_image_fields = {}
    if per_image:
        arrays = {key: torch.cat(values).numpy() if values else None for key, values in kept.items()}
        arrays["has_label"] = arrays["labelled"].sum(axis=1) > 0 if arrays["labelled"] is not None else None
        arrays["thresholds"] = torch.tensor(boundary.thresholds, dtype=torch.float64).numpy()
        per_image_fields["per_image"] = arrays
    return {
        **per_image_fields,
        "mIoU": float(result["mIoU"]),
        "pixel_acc": float(result["pixel_acc"]),
        "mean_class_acc": float(result["mean_class_acc"]),
        "iou_per_class": dict(zip(names, result["iou"].tolist(), strict=True)),
        "boundary_F": {
            f"{threshold:g}": float(value)
            for threshold, value in zip(boundary.thresholds, boundary_result["f_mean"].tolist(), strict=True)
        },
        "boundary_F_per_class": {
            f"{threshold:g}": dict(zip(names, row, strict=True))
            for threshold, row in zip(boundary.thresholds, boundary_result["f_per_class"].tolist(), strict=True)
        },
        "crop_factor_mIoU": {str(crop): float(metric.compute()["mIoU"]) for crop, metric in crops.items()},
    }
