import pytest
import torch

from lightning_modules.evaluation import evaluate_segmentation, zoom_center
from lightning_modules.metrics import SegmentationScores


class Oracle(torch.nn.Module):
    """Predicts the class encoded in the first image channel: perfect on unzoomed data."""

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.num_classes = num_classes

    def forward(self, images):
        ids = images[:, 0].round().long().clamp(0, self.num_classes - 1)
        return {"out": torch.nn.functional.one_hot(ids, self.num_classes).permute(0, 3, 1, 2).float()}


def labelled_batch(seed=0):
    generator = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 3, (2, 5, 6), generator=generator)
    labels = labels.repeat_interleave(4, 1).repeat_interleave(4, 2)
    images = labels[:, None].float().repeat(1, 3, 1, 1)
    return images, labels


def test_zoom_center_crops_each_side_and_resizes_back():
    labels = torch.arange(20 * 24).reshape(1, 20, 24)
    images = labels[:, None].float()
    zoomed, zoomed_labels = zoom_center(images, labels, 4)
    assert zoomed.shape == images.shape and zoomed_labels.shape == labels.shape
    # nearest-neighbour upsampling of the 12x16 centre by 20/12 and 24/16
    rows = (torch.arange(20) * 12 // 20) + 4
    cols = (torch.arange(24) * 16 // 24) + 4
    torch.testing.assert_close(zoomed_labels[0], labels[0][rows][:, cols])
    assert zoom_center(images, labels, 0)[1] is labels
    with pytest.raises(ValueError, match="leaves nothing"):
        zoom_center(images, labels, 10)


def test_evaluate_segmentation_scores_match_the_metrics():
    batches = [labelled_batch(0), labelled_batch(1)]
    noisy = [(images + 0.6 * (torch.rand_like(images) > 0.8), labels) for images, labels in batches]
    result = evaluate_segmentation(Oracle(3), noisy, 3, ["a", "b", "c"], crop_factors=(0, 4), progress=False)
    reference = SegmentationScores(3)
    for images, labels in noisy:
        reference.update(Oracle(3)(images)["out"].argmax(1), labels)
    expected = reference.compute()
    assert result["mIoU"] == pytest.approx(float(expected["mIoU"]))
    assert result["pixel_acc"] == pytest.approx(float(expected["pixel_acc"]))
    assert list(result["iou_per_class"]) == ["a", "b", "c"]
    assert result["crop_factor_mIoU"]["0"] == pytest.approx(result["mIoU"])
    assert set(result["boundary_F"]) == {"0.00088", "0.001875", "0.00375", "0.005"}


def test_perfect_prediction_scores_one_everywhere():
    result = evaluate_segmentation(Oracle(3), [labelled_batch(0)], 3, crop_factors=(0,), progress=False)
    assert result["mIoU"] == 1.0 and result["pixel_acc"] == 1.0
    assert all(value == 1.0 for value in result["boundary_F"].values())
    assert result["crop_factor_mIoU"] == {"0": 1.0}
