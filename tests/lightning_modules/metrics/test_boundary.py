import math

import numpy as np
import pytest
import torch
from scipy import ndimage

from lightning_modules.metrics import (
    DEFAULT_THRESHOLDS,
    BoundaryFScore,
    boundary_f_scores,
    boundary_map,
    tolerance_pixels,
)

IGNORE = 255
# On the 30×40 images below (diagonal exactly 50 px) these thresholds give tolerances of 1, 2 and 3 px.
SMALL_THRESHOLDS = (0.019, 0.039, 0.059)


# ---------------------------------------------------------------- independent numpy / scipy reference (per image)


def reference_boundary(mask: np.ndarray) -> np.ndarray:
    """DAVIS seg2bmap: compare with the right, lower and lower-right neighbours, zeros outside the image."""
    padded = np.pad(mask.astype(bool), ((0, 1), (0, 1)))
    east = padded[:-1, 1:]
    south = padded[1:, :-1]
    south_east = padded[1:, 1:]
    boundary = (mask ^ east) | (mask ^ south) | (mask ^ south_east)
    boundary[-1, :] = mask[-1, :] ^ east[-1, :]
    boundary[:, -1] = mask[:, -1] ^ south[:, -1]
    boundary[-1, -1] = False
    return boundary


def reference_f(pred_mask: np.ndarray, gt_mask: np.ndarray, threshold: float) -> float:
    radius = math.ceil(threshold * np.linalg.norm(gt_mask.shape))
    y, x = np.ogrid[-radius : radius + 1, -radius : radius + 1]
    disk = x**2 + y**2 <= radius**2
    pred_boundary = reference_boundary(pred_mask)
    gt_boundary = reference_boundary(gt_mask)
    n_pred, n_gt = int(pred_boundary.sum()), int(gt_boundary.sum())
    if n_pred == 0 and n_gt == 0:
        precision, recall = 1.0, 1.0
    elif n_pred == 0:
        precision, recall = 1.0, 0.0
    elif n_gt == 0:
        precision, recall = 0.0, 1.0
    else:
        gt_dilated = ndimage.binary_dilation(gt_boundary, structure=disk)
        pred_dilated = ndimage.binary_dilation(pred_boundary, structure=disk)
        precision = (pred_boundary & gt_dilated).sum() / n_pred
        recall = (gt_boundary & pred_dilated).sum() / n_gt
    if precision + recall == 0:
        return 0.0
    return 2 * precision * recall / (precision + recall)


def reference_scores(preds: np.ndarray, target: np.ndarray, num_classes: int, thresholds) -> np.ndarray:
    """(B, T, K) F per image, threshold and class."""
    out = np.zeros((len(preds), len(thresholds), num_classes))
    for b in range(len(preds)):
        ignored = target[b] == IGNORE
        for c in range(num_classes):
            pred_mask = (preds[b] == c) & ~ignored
            gt_mask = (target[b] == c) & ~ignored
            for t, threshold in enumerate(thresholds):
                out[b, t, c] = reference_f(pred_mask, gt_mask, threshold)
    return out


# ---------------------------------------------------------------- random blocky cases


def random_case(rng: np.random.Generator, batch: int, height: int, width: int, num_classes: int):
    """Blocky targets (upsampled low-res labels, noise pixels, ignore boxes) and perturbed predictions."""
    targets, preds = [], []
    for _ in range(batch):
        cell = int(rng.integers(4, 10))
        low = rng.integers(0, num_classes, (height // cell + 1, width // cell + 1))
        target = np.kron(low, np.ones((cell, cell), dtype=np.int64))[:height, :width]
        noise = rng.random((height, width)) < 0.01
        target[noise] = rng.integers(0, num_classes, int(noise.sum()))
        pred = np.roll(target, (int(rng.integers(-3, 4)), int(rng.integers(-3, 4))), axis=(0, 1))
        changed = rng.random((height, width)) < 0.02
        pred[changed] = rng.integers(0, num_classes, int(changed.sum()))
        y0, x0 = int(rng.integers(0, height)), int(rng.integers(0, width))
        target[y0 : y0 + int(rng.integers(1, 12)), x0 : x0 + int(rng.integers(1, 12))] = IGNORE
        targets.append(target)
        preds.append(pred)
    return np.stack(preds), np.stack(targets)


CASES = [(37, 53, 3), (64, 64, 5), (20, 100, 2), (30, 40, 4), (1, 17, 2), (9, 1, 3)]
THRESHOLDS = (0.005, 0.02, 0.04, 0.07)


@pytest.mark.parametrize(("height", "width", "num_classes"), CASES)
def test_random_cases_match_reference(height, width, num_classes):
    rng = np.random.default_rng(height * 1000 + width)
    preds, target = random_case(rng, 4, height, width, num_classes)
    expected = reference_scores(preds, target, num_classes, THRESHOLDS)
    scores = boundary_f_scores(torch.from_numpy(preds), torch.from_numpy(target), num_classes, THRESHOLDS, IGNORE)
    assert scores.shape == (4, len(THRESHOLDS), num_classes)
    assert scores.dtype == torch.float64
    np.testing.assert_allclose(scores.numpy(), expected, rtol=0, atol=1e-6)


def test_chunks_of_images_give_the_same_scores(monkeypatch):
    rng = np.random.default_rng(4)
    preds, target = (torch.from_numpy(a) for a in random_case(rng, 3, 20, 30, 3))
    whole = boundary_f_scores(preds, target, 3, THRESHOLDS)
    monkeypatch.setattr("lightning_modules.metrics.boundary._MAX_CHUNK_ELEMENTS", 1)
    torch.testing.assert_close(boundary_f_scores(preds, target, 3, THRESHOLDS), whole)


def test_random_cases_are_not_trivial():
    # 24 images per threshold above; the perturbations must give scores strictly between 0 and 1 in many of them.
    rng = np.random.default_rng(0)
    preds, target = random_case(rng, 4, 37, 53, 3)
    scores = boundary_f_scores(torch.from_numpy(preds), torch.from_numpy(target), 3, THRESHOLDS)
    strictly_inside = ((scores > 0) & (scores < 1)).double().mean()
    assert strictly_inside > 0.5


def test_metric_accumulates_mean_over_images_then_classes():
    rng = np.random.default_rng(1)
    num_classes = 4
    preds, target = random_case(rng, 6, 37, 53, num_classes)
    expected = reference_scores(preds, target, num_classes, THRESHOLDS).mean(axis=0)
    metric = BoundaryFScore(num_classes, THRESHOLDS, class_names=["a", "b", "c", "d"])
    for start, stop in ((0, 1), (1, 4), (4, 6)):
        metric.update(torch.from_numpy(preds[start:stop]), torch.from_numpy(target[start:stop]))
    result = metric.compute()
    np.testing.assert_allclose(result["f_per_class"].numpy(), expected, rtol=0, atol=1e-6)
    np.testing.assert_allclose(result["f_mean"].numpy(), expected.mean(axis=1), rtol=0, atol=1e-6)
    for t, threshold in enumerate(THRESHOLDS):
        assert math.isclose(float(result[f"boundary_F/{threshold}"]), expected[t].mean(), abs_tol=1e-6)
        assert math.isclose(float(result[f"boundary_F/{threshold}/c"]), expected[t, 2], abs_tol=1e-6)


def test_images_without_labelled_pixels_are_left_out_of_the_mean():
    # An all-ignored image would score F = 1 for every class (absent from both masks) and lift the mean.
    rng = np.random.default_rng(2)
    preds, target = random_case(rng, 3, 21, 30, 4)
    expected = reference_scores(preds, target, 4, THRESHOLDS).mean(axis=0)
    metric = BoundaryFScore(4, THRESHOLDS)
    metric.update(torch.from_numpy(preds), torch.from_numpy(target))
    unlabelled = np.full((2, 21, 30), 255, dtype=target.dtype)
    metric.update(torch.from_numpy(preds[:2]), torch.from_numpy(unlabelled))
    result = metric.compute()
    assert int(metric.num_images) == 3
    np.testing.assert_allclose(result["f_per_class"].numpy(), expected, rtol=0, atol=1e-6)
    assert (expected < 1).any()  # the free 1s of the unlabelled images would have changed the result


def test_metric_takes_logits():
    rng = np.random.default_rng(2)
    preds, target = random_case(rng, 2, 20, 30, 3)
    logits = torch.nn.functional.one_hot(torch.from_numpy(preds), 3).permute(0, 3, 1, 2).float()
    from_ids = BoundaryFScore(3, THRESHOLDS)
    from_ids.update(torch.from_numpy(preds), torch.from_numpy(target))
    from_logits = BoundaryFScore(3, THRESHOLDS)
    from_logits.update(logits, torch.from_numpy(target))
    torch.testing.assert_close(from_logits.compute()["f_per_class"], from_ids.compute()["f_per_class"])


def test_merged_states_equal_one_metric_on_all_data():
    rng = np.random.default_rng(3)
    preds, target = (torch.from_numpy(a) for a in random_case(rng, 5, 37, 53, 3))
    whole = BoundaryFScore(3, THRESHOLDS)
    whole.update(preds, target)
    first, second = BoundaryFScore(3, THRESHOLDS), BoundaryFScore(3, THRESHOLDS)
    first.update(preds[:2], target[:2])
    second.update(preds[2:], target[2:])
    first.merge_state(second)
    assert int(first.num_images) == 5
    torch.testing.assert_close(first.compute()["f_per_class"], whole.compute()["f_per_class"])


# ---------------------------------------------------------------- hand-made cases


def square_labels(left: int, height: int = 30, width: int = 40) -> torch.Tensor:
    """Class 1 on rows 6..24 and columns left..left+18 (a 19×19 square), class 0 elsewhere, shape (1, H, W).

    Its DAVIS boundary (and that of class 0, the complement) is the outline of the 20×20 square of rows 5..24 and
    columns left-1..left+18: the square's own last row and column, and the row and column just before it.
    """
    labels = torch.zeros(1, height, width, dtype=torch.long)
    labels[:, 6:25, left : left + 19] = 1
    return labels


def test_boundary_map_of_a_square_is_the_outline_shifted_towards_the_origin():
    boundary = boundary_map(square_labels(6)[0] == 1)
    outline = torch.zeros(30, 40, dtype=torch.bool)
    outline[5:25, 5:25] = True
    outline[6:24, 6:24] = False
    assert torch.equal(boundary, outline)
    assert torch.equal(boundary_map(square_labels(6)[0] == 0), outline)


def test_boundary_map_is_batched():
    masks = torch.rand(2, 3, 11, 13) < 0.5
    boundaries = boundary_map(masks)
    for index in np.ndindex(2, 3):
        assert np.array_equal(boundaries[index].numpy(), reference_boundary(masks[index].numpy()))


@pytest.mark.parametrize("threshold", SMALL_THRESHOLDS)
def test_identical_masks_score_one(threshold):
    labels = torch.randint(0, 3, (2, 30, 40))
    assert torch.equal(boundary_f_scores(labels, labels, 4, [threshold]), torch.ones(2, 1, 4, dtype=torch.float64))


@pytest.mark.parametrize(("threshold", "expected"), zip(SMALL_THRESHOLDS, (38 / 76, 42 / 76, 1.0), strict=True))
def test_square_shifted_by_three_pixels(threshold, expected):
    # Outlines of side n = 20 (4n - 4 = 76 px each), the prediction's shifted right by k = 3, tolerance d px.
    # With d >= k every pixel is within d of the other outline: F = 1. With d < k, for the prediction's outline:
    # top and bottom rows match where they overlap the ground truth's rows or overhang them by <= d: 2 (n - k + d);
    # the left column (18 px between the corners, k px right of the ground truth's left column) matches only its
    # d pixels nearest to the ground truth's top row and d nearest its bottom row: 2d; the right column (k px beyond
    # the ground truth) matches nothing. P = (2n - 2k + 4d) / 76, and by symmetry R = P, so F = P:
    # d = 1: 38 / 76, d = 2: 42 / 76. Class 0's outline is the same (complement), so both classes score the same.
    assert tolerance_pixels(threshold, 30, 40) == SMALL_THRESHOLDS.index(threshold) + 1
    scores = boundary_f_scores(square_labels(9), square_labels(6), 2, [threshold])
    torch.testing.assert_close(scores, torch.full((1, 1, 2), expected, dtype=torch.float64))


@pytest.mark.parametrize("shift", [1, 2, 3])
def test_square_shifted_within_tolerance_scores_one(shift):
    scores = boundary_f_scores(square_labels(6 + shift), square_labels(6), 2, SMALL_THRESHOLDS)
    assert torch.equal(scores[0, shift - 1 :], torch.ones(3 - shift + 1, 2, dtype=torch.float64))
    assert (scores[0, : shift - 1] < 1).all()


@pytest.mark.parametrize("threshold", SMALL_THRESHOLDS)
def test_empty_and_absent_classes(threshold):
    target = square_labels(6)
    # Class 1 missing from the prediction: P = 1, R = 0 -> F = 0; class 0 then fills the image and has no boundary
    # either: F = 0 too. Class 2 is absent from both: F = 1.
    scores = boundary_f_scores(torch.zeros_like(target), target, 3, [threshold])
    torch.testing.assert_close(scores[0, 0], torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64))
    # Class 2 predicted where the ground truth has none: P = 0, R = 1 -> F = 0; class 1 is untouched: F = 1.
    preds = target.clone()
    preds[:, 0:3, 0:3] = 2
    scores = boundary_f_scores(preds, target, 3, [threshold])
    assert float(scores[0, 0, 2]) == 0.0
    assert float(scores[0, 0, 1]) == 1.0


@pytest.mark.parametrize("threshold", SMALL_THRESHOLDS)
def test_ignored_pixels_change_nothing(threshold):
    target = square_labels(6)
    target[:, 10:20, 0:15] = IGNORE
    preds = square_labels(6)
    preds[:, 10:20, 0:15] = torch.randint(0, 3, (1, 10, 15))
    scores = boundary_f_scores(preds, target, 3, [threshold])
    assert torch.equal(scores, torch.ones(1, 1, 3, dtype=torch.float64))


def test_tolerance_pixels_at_cityscapes_resolution():
    assert [tolerance_pixels(t, 1024, 2048) for t in DEFAULT_THRESHOLDS] == [3, 5, 9, 12]
    assert tolerance_pixels(0.0005, 1024, 2048) == 2


def test_empty_batch():
    empty = torch.zeros(0, 8, 8, dtype=torch.long)
    assert boundary_f_scores(empty, empty, 3).shape == (0, len(DEFAULT_THRESHOLDS), 3)


# ---------------------------------------------------------------- errors


def test_shape_mismatch_names_both_shapes():
    with pytest.raises(ValueError, match=r"preds of shape \(2, 8, 8\) and target of shape \(2, 8, 9\)"):
        boundary_f_scores(torch.zeros(2, 8, 8, dtype=torch.long), torch.zeros(2, 8, 9, dtype=torch.long), 3)
    with pytest.raises(ValueError, match="num_classes=3"):
        BoundaryFScore(3).update(torch.zeros(1, 4, 8, 8), torch.zeros(1, 8, 8, dtype=torch.long))


def test_out_of_range_labels():
    good = torch.zeros(1, 8, 8, dtype=torch.long)
    bad = good.clone()
    bad[0, 0, 0] = 7
    with pytest.raises(ValueError, match=r"target must be class ids in \[0, 3\) or ignore_index=255, found \[7\]"):
        boundary_f_scores(good, bad, 3)
    with pytest.raises(ValueError, match=r"preds must be class ids in \[0, 3\), found \[7\]"):
        boundary_f_scores(bad, good, 3)
    with pytest.raises(ValueError, match=r"preds must be class ids in \[0, 3\), found \[255\]"):
        boundary_f_scores(torch.full_like(good, IGNORE), good, 3)
    with pytest.raises(ValueError, match="integer class ids"):
        boundary_f_scores(good.float(), good, 3)


@pytest.mark.parametrize("thresholds", [(0.0,), (0.001, 1.0), (-0.1,), ()])
def test_bad_thresholds(thresholds):
    match = "at least one" if not thresholds else r"in \(0, 1\)"
    with pytest.raises(ValueError, match=match):
        BoundaryFScore(3, thresholds)
    with pytest.raises(ValueError, match=match):
        boundary_f_scores(torch.zeros(1, 4, 4, dtype=torch.long), torch.zeros(1, 4, 4, dtype=torch.long), 3, thresholds)
