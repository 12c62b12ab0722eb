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
    # Column j holds class j; 2 px cropped from each side of 12 leave columns 2..9, stretched back to 12: each
    # output pixel takes the column under its centre (torch's legacy "nearest" gives [2, 2, 3, 4, 4, 5, ...]).
    labels = torch.arange(12).expand(1, 12, 12)
    images = labels[:, None].float()
    zoomed, zoomed_labels = zoom_center(images, labels, 2)
    assert zoomed.shape == images.shape and zoomed_labels.shape == labels.shape
    assert zoomed_labels[0, 5].tolist() == [2, 3, 3, 4, 5, 5, 6, 7, 7, 8, 9, 9]
    torch.testing.assert_close(zoomed_labels[0].T, zoomed_labels[0][5].expand(12, 12).T)
    assert zoom_center(images, labels, 0)[1] is labels
    with pytest.raises(ValueError, match="leaves nothing"):
        zoom_center(images, labels, 6)


def test_zoom_center_keeps_the_aspect_ratio():
    # A 6×12 image (Cityscapes' 1:2): crop 1 removes 1 row at the top and bottom and 2 columns left and right,
    # leaving the central 4×8 window, zoomed by 1.5 in both directions.
    labels = (10 * torch.arange(6)[:, None] + torch.arange(12)[None, :])[None]
    images = labels[:, None].float()
    _, zoomed = zoom_center(images, labels, 1)
    rows = [10 * (1 + (2 * i + 1) * 4 // 12) for i in range(6)]
    cols = [2 + (2 * j + 1) * 8 // 24 for j in range(12)]
    assert zoomed[0].tolist() == [[row + col for col in cols] for row in rows]
    with pytest.raises(ValueError, match="leaves nothing of a 6x12 image"):
        zoom_center(images, labels, 3)


def test_zoom_center_keeps_image_and_label_aligned():
    # Grey level 10 j in column j (and 10 i in row i of a second channel): the bilinearly zoomed image stays
    # within 5 of 10 × the label under each pixel centre, in both directions, away from the clamped border.
    columns = torch.arange(24).expand(24, 24)
    for labels, channel in ((columns, 0), (columns.T, 1)):
        images = torch.stack([10.0 * columns, 10.0 * columns.T])[None]
        for crop in (2, 3, 5, 7):
            zoomed, zoomed_labels = zoom_center(images, labels[None], crop)
            inside = zoomed_labels[0] != zoomed_labels[0].min()
            inside &= zoomed_labels[0] != zoomed_labels[0].max()
            error = (zoomed[0, channel][inside] - 10 * zoomed_labels[0][inside]).abs().max()
            assert float(error) <= 5.0 + 1e-4, crop


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
