"""``python -m experiments compare EXPERIMENT ROW_A ROW_B``: is a difference between two rows real?

Each ``eval`` stores the per-image sufficient statistics of its scores (``eval-<split>.npz``: per image and class,
true positives, labelled and predicted pixels, boundary F per threshold). A **paired bootstrap** resamples the
images with replacement, the same images for both rows, recomputes each row's dataset-level score on the resample
(intersections and unions summed over the resampled images, as the benchmarks score a split), and reports the
difference A − B on all images with the 95 % percentile interval of the resampled differences
(``scipy.stats.bootstrap``) and the fraction of resamples in which A beats B (a tie counts half). With several
seeds per row it also reports the difference of the seed means with Welch's t-interval
(``scipy.stats.ttest_ind(equal_var=False)``).

The interval says how much the score moves with the choice of test images, for these trained networks; the
seeds' t-interval adds the spread of training runs, which the bootstrap of one pair of runs does not see.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats

Arrays = Mapping[str, np.ndarray]
RESAMPLE_BATCH = 100


class MissingStatisticsError(FileNotFoundError):
    """A run without the ``eval-<split>.npz`` that ``compare`` resamples (not evaluated, or evaluated before ``eval``
    wrote one)."""


def load_statistics(path: Path) -> dict[str, np.ndarray]:
    """The arrays of an ``eval-<split>.npz``; a :class:`MissingStatisticsError` naming the ``eval`` command that
    writes it."""
    if not path.is_file():
        checkpoint = path.parent / "checkpoints" / "last.ckpt"
        raise MissingStatisticsError(
            f"{path} does not exist: run `python -m experiments eval --ckpt {checkpoint} --split "
            f"{path.stem.removeprefix('eval-')}` first (it writes the per-image statistics)."
        )
    with np.load(path) as data:
        return {key: data[key] for key in data.files}


def metric_names(arrays: Arrays) -> list[str]:
    """The scores ``compare`` can resample: ``mIoU``, ``pixel_acc`` and ``boundary_F/<threshold>``."""
    return ["mIoU", "pixel_acc", *(f"boundary_F/{threshold:g}" for threshold in arrays["thresholds"])]


def score(arrays: Arrays, metric: str, images: np.ndarray) -> np.ndarray:
    """The dataset-level ``metric`` of the images ``images`` (indices, ``(..., N)``, repeats allowed): ``(...)``.

    mIoU: IoU_c = Σ TP_c / Σ (labelled_c + predicted_c − TP_c) over the images, averaged over the classes whose union
    is not empty (``scores_from_confusion``'s rule); pixel accuracy: Σ TP / Σ labelled; boundary F: the mean over
    the images with a labelled pixel of each class's F, averaged over the classes (``BoundaryFScore``'s rule).
    """
    if metric in ("mIoU", "pixel_acc"):
        true_positive = arrays["true_positive"][images].sum(axis=-2, dtype=np.float64)
        labelled = arrays["labelled"][images].sum(axis=-2, dtype=np.float64)
        if metric == "pixel_acc":
            return true_positive.sum(axis=-1) / labelled.sum(axis=-1)
        union = labelled + arrays["predicted"][images].sum(axis=-2, dtype=np.float64) - true_positive
        with np.errstate(invalid="ignore", divide="ignore"):
            iou = np.where(union > 0, true_positive / union, np.nan)
        return np.nanmean(iou, axis=-1)
    if not metric.startswith("boundary_F/"):
        raise ValueError(f"unknown metric {metric!r}; expected one of {', '.join(metric_names(arrays))}.")
    thresholds = [f"{threshold:g}" for threshold in arrays["thresholds"]]
    threshold = metric.removeprefix("boundary_F/")
    if threshold not in thresholds:
        raise ValueError(f"metric {metric!r}: the evaluation has boundary F at {', '.join(thresholds)} only.")
    weights = arrays["has_label"][images].astype(np.float64)  # (..., N)
    f_scores = arrays["boundary_F"][images][..., thresholds.index(threshold), :]  # (..., N, K)
    per_class = (f_scores * weights[..., None]).sum(axis=-2) / weights.sum(axis=-1)[..., None]
    return per_class.mean(axis=-1)


@dataclass(frozen=True)
class PairedBootstrap:
    """A − B on all images, its 95 % interval over resamples, and the fraction of resamples where A beats B."""

    metric: str
    a: float
    b: float
    difference: float
    low: float
    high: float
    win_fraction: float
    images: int
    resamples: int


def check_same_images(a: Arrays, b: Arrays) -> None:
    """Raise unless both evaluations cover the same images in the same order (their labelled pixels per class
    match) with the same classes and boundary thresholds."""
    if a["labelled"].shape != b["labelled"].shape or not np.array_equal(a["labelled"], b["labelled"]):
        raise ValueError(
            "the two evaluations are not of the same images (their labelled pixels per image and class differ): "
            "evaluate both runs on the same split with the same data settings."
        )
    if not np.array_equal(a["thresholds"], b["thresholds"]):
        raise ValueError("the two evaluations used different boundary thresholds.")


def paired_bootstrap(
    a: Arrays, b: Arrays, metric: str = "mIoU", resamples: int = 2000, seed: int = 0
) -> PairedBootstrap:
    """The paired bootstrap of ``metric`` between two evaluations of the same images (see the module docstring)."""
    check_same_images(a, b)
    count = a["labelled"].shape[0]
    if count < 2:
        raise ValueError(f"a bootstrap needs at least 2 images; the evaluations have {count}.")
    everything = np.arange(count)
    value_a, value_b = whole_split(a, metric), whole_split(b, metric)

    def difference(images: np.ndarray, axis: int = -1) -> np.ndarray:
        images = np.moveaxis(images, axis, -1)
        return score(a, metric, images) - score(b, metric, images)

    result = stats.bootstrap(
        (everything,),
        difference,
        n_resamples=resamples,
        batch=RESAMPLE_BATCH,
        vectorized=True,
        confidence_level=0.95,
        method="percentile",
        rng=np.random.default_rng(seed),
    )
    differences = result.bootstrap_distribution
    low, high = result.confidence_interval
    if np.ptp(differences) == 0:  # every resample gives the same difference: the interval is that point
        low = high = float(differences[0])
    wins = float(np.mean(differences > 0) + 0.5 * np.mean(differences == 0))
    return PairedBootstrap(metric, value_a, value_b, value_a - value_b, float(low), float(high), wins, count, resamples)


@dataclass(frozen=True)
class SeedInterval:
    """The difference of the seed means of A and B and its 95 % Welch t-interval."""

    difference: float
    low: float
    high: float
    seeds_a: int
    seeds_b: int


def seed_interval(values_a: Sequence[float], values_b: Sequence[float]) -> SeedInterval | None:
    """Welch's t-interval of mean(A) − mean(B) over seeds; None with fewer than 2 seeds on a side."""
    if len(values_a) < 2 or len(values_b) < 2:
        return None
    test = stats.ttest_ind(values_a, values_b, equal_var=False)
    interval = test.confidence_interval(0.95)
    return SeedInterval(
        float(np.mean(values_a) - np.mean(values_b)),
        float(interval.low),
        float(interval.high),
        len(values_a),
        len(values_b),
    )


class ProtocolMismatchError(ValueError):
    """Two rows evaluated with other test protocols (multi-scale, flip, sliding windows, size or data)."""


def runs_of(runs_dir: Path, experiment: str, variant: str, split: str, profile: str | None) -> dict[int, Path]:
    """The ``eval-<split>.npz`` of each finished run of ``variant`` in ``profile``, by seed.

    Raises:
        FileNotFoundError: no finished run of the row (in that profile).
        ValueError: runs in several profiles and no ``profile`` given, or runs with other settings (``--set``
            overrides; their seeds would be compared as if they were one recipe), naming their run ids.
    """
    from experiments.results import load_records, recipe_digest

    records, _ = load_records(runs_dir, experiment)
    records = [record for record in records if record["variant"] == variant]
    profiles = sorted({record["profile"] for record in records})
    if profile is None and len(profiles) > 1:
        raise ValueError(f"{variant!r} has runs in the profiles {', '.join(profiles)}: pass --profile.")
    records = [record for record in records if profile is None or record["profile"] == profile]
    if not records:
        where = f" in profile {profile}" if profile else ""
        raise FileNotFoundError(f"no finished run of {experiment} / {variant}{where} under {runs_dir}.")
    recipes = sorted({recipe_digest(record) for record in records})
    if len(recipes) > 1:
        raise ValueError(
            f"{variant!r} has runs with other settings ({', '.join(sorted(r['run_id'] for r in records))}): compare "
            "needs one recipe per row; move the others to another --runs-dir (`table --summary` pairs them by "
            "settings)."
        )
    return {int(record["seed"]): evaluation_path(runs_dir, record, split) for record in records}


def evaluation_path(runs_dir: Path, record: Mapping[str, Any], split: str) -> Path:
    """The ``eval-<split>.npz`` of the run ``record`` in ``runs_dir``."""
    from experiments.results import evaluation_file

    return evaluation_file(runs_dir, record, f"eval-{split}.npz")


def evaluated_protocol(path: Path) -> dict[str, Any]:
    """What the evaluation that wrote ``path`` scored: its protocol, dataset and evaluation size."""
    import json

    json_path = path.with_suffix(".json")
    if not json_path.is_file():
        raise MissingStatisticsError(f"{json_path} does not exist beside {path.name}: run `eval` again.")
    record = json.loads(json_path.read_text())
    return {key: record.get(key) for key in ("protocol", "data", "eval_short_side")}


def compare_rows(
    runs_dir: Path,
    experiment: str,
    row_a: str,
    row_b: str,
    split: str,
    metric: str,
    resamples: int,
    seed: int,
    profile: str | None = None,
    max_pairs: int | None = None,
) -> dict[str, Any]:
    """:func:`compare_runs` of the runs of two rows in ``runs_dir`` (:func:`runs_of`)."""
    seeds_a, seeds_b = (runs_of(runs_dir, experiment, row, split, profile) for row in (row_a, row_b))
    return compare_runs(seeds_a, seeds_b, (row_a, row_b), metric, resamples, seed, max_pairs)


def compare_runs(
    seeds_a: Mapping[int, Path],
    seeds_b: Mapping[int, Path],
    names: tuple[str, str],
    metric: str,
    resamples: int,
    seed: int,
    max_pairs: int | None = None,
) -> dict[str, Any]:
    """The paired bootstrap for each seed both sides ran with and evaluated (the first ``max_pairs`` of them, all by
    default), and the t-interval of the evaluated seeds (see the module docstring).

    Args:
        seeds_a, seeds_b: each side's ``eval-<split>.npz`` by seed (some may not exist yet).
        names: the two rows' names, for messages.

    Returns:
        ``{"pairs": {seed: PairedBootstrap}, "seeds": SeedInterval | None}``.

    Raises:
        ValueError: no seed shared by the two sides.
        MissingStatisticsError: a shared seed, but no side has both evaluations of one; naming the ``eval`` command.
        ProtocolMismatchError: the two sides of a seed were evaluated with other protocols.
    """
    evaluated_a, evaluated_b = (
        {key: path for key, path in runs.items() if path.is_file()} for runs in (seeds_a, seeds_b)
    )
    common = sorted(set(evaluated_a) & set(evaluated_b))
    if not common:
        shared = sorted(set(seeds_a) & set(seeds_b))
        if not shared:
            raise ValueError(
                f"{names[0]!r} ran with seeds {sorted(seeds_a)} and {names[1]!r} with {sorted(seeds_b)}: none shared."
            )
        for path in (seeds_a[shared[0]], seeds_b[shared[0]]):
            load_statistics(path)  # the missing one: a MissingStatisticsError naming the eval command
    for key in common:
        protocols = [evaluated_protocol(runs[key]) for runs in (evaluated_a, evaluated_b)]
        if protocols[0] != protocols[1]:
            raise ProtocolMismatchError(
                f"seed {key}: {names[0]!r} was evaluated with {protocols[0]} and {names[1]!r} with {protocols[1]}: "
                "evaluate both with the same protocol."
            )
    loaded_a, loaded_b = (
        {key: load_statistics(path) for key, path in runs.items()} for runs in (evaluated_a, evaluated_b)
    )
    pairs = {
        run_seed: paired_bootstrap(loaded_a[run_seed], loaded_b[run_seed], metric, resamples, seed)
        for run_seed in common[:max_pairs]
    }
    values_a, values_b = (
        [whole_split(arrays, metric) for arrays in loaded.values()] for loaded in (loaded_a, loaded_b)
    )
    return {"pairs": pairs, "seeds": seed_interval(values_a, values_b)}


def whole_split(arrays: Arrays, metric: str) -> float:
    """``metric`` over every image once: the evaluation's own dataset-level score."""
    return float(score(arrays, metric, np.arange(arrays["labelled"].shape[0])))


def format_comparison(experiment: str, row_a: str, row_b: str, split: str, result: Mapping[str, Any]) -> str:
    """Markdown, in percentage points."""
    lines = [
        f"{experiment}: {row_a} (A) vs {row_b} (B), {split} split; percentage points, 95 % intervals",
        "",
        "| seed | metric | A | B | A − B | 95 % CI (paired bootstrap) | A beats B | images | resamples |",
        "|---:|---|---:|---:|---:|---|---:|---:|---:|",
    ]
    for run_seed, pair in result["pairs"].items():
        lines.append(
            f"| {run_seed} | {pair.metric} | {100 * pair.a:.2f} | {100 * pair.b:.2f} | {100 * pair.difference:+.2f} "
            f"| [{100 * pair.low:+.2f}, {100 * pair.high:+.2f}] | {100 * pair.win_fraction:.1f} % | {pair.images} "
            f"| {pair.resamples} |"
        )
    seeds = result["seeds"]
    if seeds is not None:
        lines += [
            "",
            f"Seed means ({seeds.seeds_a} and {seeds.seeds_b} runs): A − B = {100 * seeds.difference:+.2f}, 95 % "
            f"Welch t-interval [{100 * seeds.low:+.2f}, {100 * seeds.high:+.2f}].",
        ]
    return "\n".join(lines)
