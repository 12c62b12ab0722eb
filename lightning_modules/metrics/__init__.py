"""torchmetrics Metrics of the segmentation protocols."""

from lightning_modules.metrics.boundary import (
    DEFAULT_THRESHOLDS,
    BoundaryFScore,
    boundary_f_scores,
    boundary_map,
    tolerance_pixels,
)
from lightning_modules.metrics.segmentation_scores import SegmentationScores, scores_from_confusion

__all__ = [
    "DEFAULT_THRESHOLDS",
    "BoundaryFScore",
    "SegmentationScores",
    "boundary_f_scores",
    "boundary_map",
    "scores_from_confusion",
    "tolerance_pixels",
]
