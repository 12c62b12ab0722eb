"""Full evaluation of a segmentation network on a split: the papers' protocols in one pass.

- mIoU, pixel accuracy and per-class IoU over the whole split (:class:`SegmentationScores`);
- the boundary F-score at 3 / 5 / 9 / 12 px (Gated-SCNN, Sec. 4.2; :class:`BoundaryFScore`);
- Gated-SCNN's distance-based evaluation: mIoU on centre crops that zoom into the image.
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
) -> dict[str, Any]:
    """Scores of ``network`` over ``batches`` of ``(images (B, 3, H, W), labels (B, H, W))``.

    ``predict_kwargs`` go to :func:`lightning_modules.inference.predict` (``mode``, ``scales``,
    ``flip``, ``window``...). Returns plain Python numbers: ``mIoU``, ``pixel_acc``,
    ``mean_class_acc``, ``iou_per_class``, ``boundary_F`` (threshold → mean F over classes),
    ``boundary_F_per_class`` and ``crop_factor_mIoU`` (crop → mIoU).
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
    for images, labels in tqdm(batches, desc="evaluate", disable=not progress):
        images, labels = images.to(device), labels.to(device)
        preds = predict(network, images, **predict_kwargs).argmax(dim=1)
        scores.update(preds, labels)
        boundary.update(preds, labels)
        for crop, crop_scores in crops.items():
            if crop == 0:
                crop_scores.update(preds, labels)
                continue
            zoomed, zoomed_labels = zoom_center(images, labels, crop)
            crop_scores.update(predict(network, zoomed, **predict_kwargs).argmax(dim=1), zoomed_labels)
    result = scores.compute()
    boundary_result = boundary.compute()
    return {
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
