import math

import torch

from lightning_modules.metrics import SegmentationScores, scores_from_confusion


def test_against_hand_computed_confusion_matrix():
    # 3 classes; 255 marks ignored pixels, whose predictions must not count.
    target = torch.tensor([[0, 0, 1, 1], [2, 2, 255, 255]])
    preds = torch.tensor([[0, 1, 1, 1], [2, 0, 2, 1]])
    metric = SegmentationScores(3, ignore_index=255)
    metric.update(preds, target)
    # counted pixels (t, p): (0,0) (0,1) (1,1) (1,1) (2,2) (2,0)
    expected_confmat = torch.tensor([[1, 1, 0], [0, 2, 0], [1, 0, 1]])
    torch.testing.assert_close(metric.confmat, expected_confmat)
    scores = metric.compute()
    # IoU_c = TP / (row + col - TP): class 0: 1/(2+2-1), class 1: 2/(2+3-2), class 2: 1/(2+1-1)
    iou = [1 / 3, 2 / 3, 1 / 2]
    torch.testing.assert_close(scores["iou"], torch.tensor(iou, dtype=torch.float64))
    assert math.isclose(float(scores["mIoU"]), sum(iou) / 3)
    assert math.isclose(float(scores["pixel_acc"]), 4 / 6)
    assert math.isclose(float(scores["mean_class_acc"]), (1 / 2 + 1 + 1 / 2) / 3)


def test_accumulates_over_batches_not_per_image_average():
    metric = SegmentationScores(2, ignore_index=255)
    metric.update(torch.tensor([[0, 0, 0, 0]]), torch.tensor([[0, 0, 0, 1]]))
    metric.update(torch.tensor([[1, 1]]), torch.tensor([[1, 1]]))
    scores = metric.compute()
    # class 0: TP 3, FN 0, FP 1 -> 3/4; class 1: TP 2, FN 1 -> 2/3 (per-image averaging would differ)
    assert math.isclose(float(scores["mIoU"]), (3 / 4 + 2 / 3) / 2)


def test_ignored_pixels_change_nothing():
    preds = torch.randint(0, 4, (2, 16, 16))
    target = torch.randint(0, 4, (2, 16, 16))
    with_ignored = target.clone()
    with_ignored[:, :4] = 255
    a = SegmentationScores(4, ignore_index=255)
    a.update(preds[:, 4:], target[:, 4:])
    b = SegmentationScores(4, ignore_index=255)
    b.update(preds, with_ignored)
    torch.testing.assert_close(a.compute()["iou"], b.compute()["iou"])


def test_absent_class_is_nan_and_left_out_of_the_mean():
    scores = scores_from_confusion(torch.tensor([[2, 0, 0], [0, 1, 0], [0, 0, 0]]))
    assert math.isnan(float(scores["iou"][2]))
    assert math.isclose(float(scores["mIoU"]), 1.0)
