"""torchmetrics Metrics of the segmentation protocols."""

from lightning_modules.metrics.segmentation_scores import SegmentationScores, scores_from_confusion

__all__ = ["SegmentationScores", "scores_from_confusion"]
