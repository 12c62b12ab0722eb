"""The paired bootstrap of ``python -m experiments compare`` on cases whose answer is known."""

import math

import numpy as np
import pytest
import torch
from torch import nn

from experiments.__main__ import main
from experiments.compare import check_same_images, paired_bootstrap, score, seed_interval, whole_split
from lightning_modules.evaluation import evaluate_segmentation, per_image_counts


def statistics(true_positive, labelled, predicted, boundary=None):
    """Per-image arrays as ``eval`` stores them; boundary F of one threshold (0.5 everywhere unless given)."""
    true_positive, labelled, predicted = (np.asarray(a, dtype=np.int64) for a in (true_positive, labelled, predicted))
    count, classes = labelled.shape
    f_scores = np.full((count, 1, classes), 0.5) if boundary is None else np.asarray(boundary, dtype=np.float64)
    return {
        "true_positive": true_positive,
        "labelled": labelled,
        "predicted": predicted,
        "boundary_F": f_scores,
        "has_label": labelled.sum(axis=1) > 0,
        "thresholds": np.array([0.00375]),
    }


def test_the_per_image_counts_are_those_of_each_image():
    labels = torch.tensor([[[0, 0, 1], [2, 255, 1]], [[1, 1, 1], [255, 255, 255]]])
    preds = torch.tensor([[[0, 1, 1], [2, 2, 0]], [[1, 0, 2], [0, 0, 0]]])
    true_positive, labelled, predicted = per_image_counts(preds, labels, num_classes=3)
    # Image 1: labels 0,0,1,2,1 (255 left out) vs 0,1,1,2,0; image 2: labels 1,1,1 vs 1,0,2.
    assert true_positive.tolist() == [[1, 1, 1], [0, 1, 0]]
    assert labelled.tolist() == [[2, 2, 1], [0, 3, 0]]
    assert predicted.tolist() == [[2, 2, 1], [1, 1, 1]]


def test_a_row_better_on_every_image_gives_an_interval_above_zero():
    rng = np.random.default_rng(0)
    labelled = rng.integers(50, 200, size=(40, 3))
    perfect = statistics(labelled, labelled, labelled, np.full((40, 1, 3), 0.9))
    # B misses 20 % of every class in every image (predicted as the next class).
    missed = labelled // 5
    predicted = labelled - missed + np.roll(missed, 1, axis=1)
    worse = statistics(labelled - missed, labelled, predicted, np.full((40, 1, 3), 0.6))
    result = paired_bootstrap(perfect, worse, "mIoU", resamples=500)
    union = labelled.sum(0) + predicted.sum(0) - (labelled - missed).sum(0)
    expected_b = np.mean((labelled - missed).sum(0) / union)
    assert result.a == 1.0 and result.b == pytest.approx(expected_b, rel=1e-12)
    assert 0 < result.low <= result.difference <= result.high
    assert result.win_fraction == 1.0 and (result.images, result.resamples) == (40, 500)
    boundary = paired_bootstrap(perfect, worse, "boundary_F/0.00375", resamples=200)
    assert boundary.difference == pytest.approx(0.3) and boundary.low == pytest.approx(0.3)
    pixel = paired_bootstrap(perfect, worse, "pixel_acc", resamples=200)
    assert pixel.difference == pytest.approx(missed.sum() / labelled.sum(), rel=1e-12) and pixel.low > 0


def test_the_same_network_gives_zero_inside_the_interval_and_half_the_wins():
    rng = np.random.default_rng(1)
    labelled = rng.integers(10, 100, size=(30, 4))
    true_positive = labelled - rng.integers(0, 10, size=(30, 4))
    predicted = true_positive + rng.integers(0, 10, size=(30, 4))
    arrays = statistics(true_positive, labelled, predicted)
    result = paired_bootstrap(arrays, dict(arrays), "mIoU", resamples=300)
    assert (result.difference, result.low, result.high) == (0.0, 0.0, 0.0)
    assert result.win_fraction == 0.5


def test_two_noisy_rows_with_no_real_difference_have_zero_inside_the_interval():
    rng = np.random.default_rng(2)
    labelled = rng.integers(100, 200, size=(200, 3))

    def noisy_row():
        true_positive = labelled - rng.integers(0, 60, size=labelled.shape)
        return statistics(true_positive, labelled, labelled)

    result = paired_bootstrap(noisy_row(), noisy_row(), "mIoU", resamples=1000, seed=3)
    assert result.low < 0 < result.high
    assert 0.05 < result.win_fraction < 0.95


class TinyNetwork(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"out": self.conv(images)}


def test_the_bootstrap_score_of_all_images_is_the_evaluations_dataset_level_score():
    torch.manual_seed(0)
    network = TinyNetwork()
    batches = []
    for _ in range(3):
        labels = torch.randint(0, 4, (2, 20, 24))
        labels[:, :3] = 255
        batches.append((torch.randn(2, 3, 20, 24), labels))
    result = evaluate_segmentation(network, batches, 4, per_image=True, progress=False)
    arrays = result["per_image"]
    assert arrays["true_positive"].shape == (6, 4) and arrays["boundary_F"].shape == (6, 4, 4)
    assert whole_split(arrays, "mIoU") == pytest.approx(result["mIoU"], abs=1e-15)
    assert whole_split(arrays, "pixel_acc") == pytest.approx(result["pixel_acc"], abs=1e-15)
    for threshold, value in result["boundary_F"].items():
        assert whole_split(arrays, f"boundary_F/{threshold}") == pytest.approx(value, abs=1e-15)
    plain = evaluate_segmentation(network, batches, 4, progress=False)
    assert "per_image" not in plain and plain["mIoU"] == result["mIoU"]


def test_a_resample_is_scored_with_its_repeated_images():
    arrays = statistics([[1, 0], [2, 2]], [[2, 1], [2, 2]], [[1, 1], [3, 2]])
    # Images (1, 1, 0): TP (4, 4) + (1, 0), labelled (4, 4) + (2, 1), predicted (6, 4) + (1, 1).
    expected = np.mean([5 / (6 + 7 - 5), 4 / (5 + 5 - 4)])
    assert score(arrays, "mIoU", np.array([1, 1, 0])) == pytest.approx(expected, rel=1e-15)
    with pytest.raises(ValueError, match="unknown metric 'IoU'"):
        score(arrays, "IoU", np.array([0]))
    with pytest.raises(ValueError, match=r"has boundary F at 0\.00375 only"):
        score(arrays, "boundary_F/0.005", np.array([0]))


def test_evaluations_of_other_images_are_refused():
    a = statistics([[1, 0]] * 3, [[2, 1]] * 3, [[1, 1]] * 3)
    b = statistics([[1, 0]] * 3, [[2, 2]] * 3, [[1, 1]] * 3)
    with pytest.raises(ValueError, match="not of the same images"):
        check_same_images(a, b)


def test_the_seed_interval_is_welchs():
    a, b = [0.40, 0.42, 0.41], [0.38, 0.37, 0.40, 0.36]
    interval = seed_interval(a, b)
    var_a, var_b = np.var(a, ddof=1) / 3, np.var(b, ddof=1) / 4
    dof = (var_a + var_b) ** 2 / (var_a**2 / 2 + var_b**2 / 3)
    from scipy.stats import t

    half = t.ppf(0.975, dof) * math.sqrt(var_a + var_b)
    difference = np.mean(a) - np.mean(b)
    assert interval.difference == pytest.approx(difference)
    assert (interval.low, interval.high) == (pytest.approx(difference - half), pytest.approx(difference + half))
    assert seed_interval([0.4], b) is None


def test_compare_command_after_eval_of_two_smoke_runs(tmp_path, capsys):
    argv = ["run", "danet.ablation", "--profile", "smoke", "--runs-dir", str(tmp_path), "--wandb", "disabled"]
    assert main([*argv, "--variant", "FCN-R50", "--variant", "DANet-R50"]) == 0
    capsys.readouterr()
    compare = ["compare", "danet.ablation", "DANet-R50", "FCN-R50", "--runs-dir", str(tmp_path), "--resamples", "50"]
    assert main(compare) == 2
    assert "eval-test.npz does not exist: run `python -m experiments eval --ckpt" in capsys.readouterr().err
    for row in ("FCN-R50", "DANet-R50"):
        (checkpoint,) = tmp_path.glob(f"danet.ablation/{row}/*/checkpoints/last.ckpt")
        assert main(["eval", "--ckpt", str(checkpoint), "--device", "cpu"]) == 0
        assert (checkpoint.parent.parent / "eval-test.npz").is_file()
    capsys.readouterr()
    assert main(compare) == 0
    out = capsys.readouterr().out
    assert out.startswith("danet.ablation: DANet-R50 (A) vs FCN-R50 (B), test split")
    (row,) = [line for line in out.splitlines() if line.startswith("| 0 | mIoU |")]
    cells = [cell.strip() for cell in row.split("|")[1:-1]]
    assert float(cells[4]) == pytest.approx(float(cells[2]) - float(cells[3]), abs=0.011)
    assert cells[-1] == "50"
    assert main([*compare[:2], "DANet-R50", "no-such-row", "--runs-dir", str(tmp_path)]) == 2
    assert "has no variant 'no-such-row'" in capsys.readouterr().err
    assert main(["table", "danet.ablation", "--runs-dir", str(tmp_path), "--baseline", "FCN-R50"]) == 0
    table = capsys.readouterr().out
    summary = table[table.index("\n| row |") :]  # the summary table, printed last
    column = [cell.strip() for cell in summary.splitlines()[1].split("|")].index("Δ test mIoU vs FCN-R50 [95 % CI]")
    (danet,) = [line for line in summary.splitlines() if line.startswith("| DANet-R50 | ")]
    difference = float(danet.split("|")[column].split("[")[0])
    assert difference == pytest.approx(float(cells[4]), abs=0.006)  # the compare command's A − B
    assert danet.split("|")[column].strip().endswith("(seed 0)")
    (checkpoint,) = tmp_path.glob("danet.ablation/FCN-R50/*/checkpoints/last.ckpt")
    assert main(["eval", "--ckpt", str(checkpoint), "--device", "cpu", "--flip"]) == 0
    capsys.readouterr()
    assert main(compare) == 2
    assert "evaluate both with the same protocol" in capsys.readouterr().err
