"""``table --summary`` on a results store written by hand, whose every number is known."""

import json
import statistics

import numpy as np
import pytest

from experiments.__main__ import main
from experiments.base import get_experiment
from experiments.compare import whole_split
from experiments.results import load_records
from experiments.summary import summary_table

CPU = {"device": "cpu", "cpu": "x86_64", "cpu_count": 2, "torch_threads": 1}
RNG = np.random.default_rng(0)
LABELLED = RNG.integers(50, 200, size=(30, 3))


def per_image(missed_share):
    """Per-image statistics of a network that misses ``missed_share`` of every class in every image."""
    missed = (LABELLED * missed_share).astype(np.int64)
    true_positive = LABELLED - missed
    return {
        "true_positive": true_positive,
        "labelled": LABELLED,
        "predicted": true_positive + np.roll(missed, 1, axis=1),
        "boundary_F": np.full((30, 1, 3), 1 - missed_share),
        "has_label": np.ones(30, dtype=bool),
        "thresholds": np.array([0.00088]),
    }


def write_run(runs_dir, variant, seed, val, missed_share, cost, hardware=CPU, world_size=1, overrides=None):
    """A finished, evaluated run of ``danet.ablation`` in the ``small`` profile; returns its test mIoU."""
    experiment = get_experiment("danet.ablation")
    recipe = experiment.recipe("small", overrides, experiment.variant(variant))
    run_id = f"small-seed{seed}-{'b' if overrides else 'a'}{variant.lower().replace('-', '')}"
    folder = runs_dir / "danet.ablation" / variant / run_id
    folder.mkdir(parents=True)
    record = {
        "experiment": "danet.ablation",
        "variant": variant,
        "profile": "small",
        "recipe": recipe,
        "metrics": {"val/mIoU": val, "val/pixel_acc": 0.8},
        "per_class": {},
        "hardware": hardware,
        "timings": {"fit_seconds": 600.0 * (seed + 1), "steps": 10},
        "run_id": run_id,
        "seed": seed,
        "world_size": world_size,
    }
    if cost is not None:
        record["run_cost"] = cost
    (folder / "metrics.json").write_text(json.dumps(record, default=list))
    arrays = per_image(missed_share)
    np.savez(folder / "eval-test.npz", **arrays)
    test = {
        "mIoU": whole_split(arrays, "mIoU"),
        "pixel_acc": whole_split(arrays, "pixel_acc"),
        "boundary_F": {"0.00088": whole_split(arrays, "boundary_F/0.00088")},
        "protocol": {"mode": "single"},
        "eval_short_side": None,
        "data": "camvid",
    }
    (folder / "eval-test.json").write_text(json.dumps(test))
    return test["mIoU"]


def cost(train, inference, memory):
    return {
        "params": 3_190_299,
        "macs_per_image": 1_112_169_600,
        "eval_size": [240, 320],
        "train_images_per_s": train,
        "inference_images_per_s": inference,
        "peak_memory_mib": memory,
        "memory_kind": "process peak RSS",
        "hardware": "cpu (x86_64)",
    }


def row(table, name):
    (line,) = [line for line in table.splitlines() if line.startswith(f"| {name} |")]
    return [cell.strip() for cell in line.split("|")[1:-1]]


def header(table):
    (line,) = [line for line in table.splitlines() if line.startswith("| row |")]
    return [cell.strip() for cell in line.split("|")[1:-1]]


def test_the_summary_gives_n_mean_sd_delta_and_cost_of_each_row(tmp_path):
    fcn = write_run(tmp_path, "FCN-R50", 0, 0.41, 0.3, cost(3.0, 16.0, 2600.0))
    danet = [
        write_run(tmp_path, "DANet-R50", 0, 0.40, 0.1, cost(3.0, 12.0, 2800.0)),
        write_run(tmp_path, "DANet-R50", 1, 0.43, 0.2, cost(5.0, 14.0, 2900.0)),
    ]
    experiment = get_experiment("danet.ablation")
    records, _ = load_records(tmp_path, "danet.ablation")
    table = summary_table(experiment, records, tmp_path, baseline="FCN-R50")
    titles = header(table)
    assert titles[:8] == ["row", "paper", "n", "seeds", "val mIoU", "test mIoU", "test pixel acc", "test boundary F"]
    assert titles[8] == "Δ test mIoU vs FCN-R50 [95 % CI]"
    assert all(f"| {name} |" not in table for name in ("PAM-R50", "CAM-R50"))  # not run: left out
    danet_row, fcn_row = row(table, "DANet-R50"), row(table, "FCN-R50")
    assert danet_row.pop(1) == "76.34"  # the paper's headline number of the row (Table 1)
    fcn_row.pop(1)
    assert danet_row[1:3] == ["2", "0, 1"] and fcn_row[1:3] == ["1", "0"]
    assert danet_row[3] == f"{100 * statistics.fmean([0.40, 0.43]):.1f} ± {100 * statistics.stdev([0.40, 0.43]):.1f}"
    assert fcn_row[3] == "41.0"  # one seed: its value, no ± 0
    assert danet_row[4] == f"{100 * np.mean(danet):.1f} ± {100 * np.std(danet, ddof=1):.1f}"
    assert danet_row[6] == "85.0 ± 7.1"  # boundary F 0.9 and 0.8
    # Δ on seed 0, the seed both rows ran: better on every image, so the interval is above 0.
    difference, interval = danet_row[7].split(" [")
    assert float(difference) == pytest.approx(100 * (danet[0] - fcn), abs=0.006)
    low, high = (float(value) for value in interval.split("]")[0].split(", "))
    assert 0 < low <= float(difference) <= high and danet_row[7].endswith("(seed 0)")
    assert fcn_row[7] == "baseline"
    costs = dict(zip(titles[9:], danet_row[8:], strict=True))
    assert costs == {
        "params (M)": "3.19",
        "GMACs / image": "1.11",
        "train img/s": "4.0",  # mean over the seeds
        "inference img/s": "13.0",
        "peak memory (MiB)": "2,900",  # the largest
        "fit (min)": "15",  # 10 and 20 min
    }
    # What every line shares is said once, above the table.
    assert "- hardware: 2-core x86_64 CPU, 1 thread" in table.splitlines()
    assert "- memory: process peak RSS" in table.splitlines()
    assert "- evaluation size: 240×320" in table.splitlines()
    assert "- test protocol: single scale, full resolution" in table.splitlines()
    assert "- settings: none: the profile's recipe" in table.splitlines()
    next(tmp_path.glob("danet.ablation/FCN-R50/*/eval-test.npz")).unlink()  # evaluated before eval kept them
    table = summary_table(experiment, records, tmp_path, baseline="FCN-R50")
    assert row(table, "DANet-R50")[8] == "— (no per-image test statistics: `eval` the runs)"


def test_settings_that_differ_between_lines_become_columns(tmp_path):
    write_run(tmp_path, "FCN-R50", 0, 0.41, 0.3, cost(3.0, 16.0, 2600.0))
    gpu = {"device": "NVIDIA H200", "cpu": "x86_64", "cpu_count": 16, "torch_threads": 16}
    write_run(tmp_path, "DANet-R50", 0, 0.44, 0.2, None, hardware=gpu, world_size=4, overrides={"max_epochs": 2})
    records, _ = load_records(tmp_path, "danet.ablation")
    table = summary_table(get_experiment("danet.ablation"), records, tmp_path)
    titles = header(table)
    assert titles[:7] == ["row", "paper", "settings", "evaluation size", "hardware", "memory", "n"]
    assert "Δ" not in " ".join(titles)  # no baseline asked for
    danet_row = dict(zip(titles, row(table, "DANet-R50"), strict=True))
    assert danet_row["hardware"] == "4 × NVIDIA H200" and danet_row["settings"] == "max_epochs=2"
    assert row(table, "FCN-R50")[4] == "2-core x86_64 CPU, 1 thread"
    # A run made before costs were recorded: no number made up.
    assert [danet_row[key] for key in ("params (M)", "train img/s", "peak memory (MiB)")] == ["—"] * 3
    assert danet_row["fit (min)"] == "10"
    assert "- profile: small" in table.splitlines()


def test_the_command_prints_the_summary_and_refuses_an_empty_store(tmp_path, capsys):
    write_run(tmp_path, "FCN-R50", 0, 0.41, 0.3, cost(3.0, 16.0, 2600.0))
    write_run(tmp_path, "DANet-R50", 0, 0.44, 0.2, cost(3.0, 12.0, 2800.0))
    assert main(["table", "danet.ablation", "--runs-dir", str(tmp_path), "--summary", "--baseline", "FCN-R50"]) == 0
    out = capsys.readouterr().out
    records, _ = load_records(tmp_path, "danet.ablation")
    expected = summary_table(get_experiment("danet.ablation"), records, tmp_path, "FCN-R50")
    assert out == expected + "\n"
    assert main(["table", "danet.ablation", "--runs-dir", str(tmp_path / "none"), "--summary"]) == 2
    assert "no finished run of danet.ablation" in capsys.readouterr().err
    assert main(["table", "danet.ablation", "--runs-dir", str(tmp_path), "--summary", "--baseline", "FCN"]) == 2
    assert "has no variant 'FCN'" in capsys.readouterr().err


def test_a_setting_no_line_has_is_neither_captioned_nor_a_column(tmp_path):
    write_run(tmp_path, "FCN-R50", 0, 0.41, 0.3, None)
    records, _ = load_records(tmp_path, "danet.ablation")
    table = summary_table(get_experiment("danet.ablation"), records, tmp_path)
    assert not [line for line in table.splitlines() if line.startswith(("- memory", "- evaluation size"))]
    assert header(table)[:4] == ["row", "paper", "n", "seeds"]


def lines_by_row_and_settings(table):
    titles = header(table)
    lines = [line for line in table.splitlines() if line.startswith("| ") and not line.startswith("| row |")]
    cells = [dict(zip(titles, [cell.strip() for cell in line.split("|")[1:-1]], strict=True)) for line in lines]
    return {(line["row"], line["settings"]): line for line in cells}


DELTA = "Δ test mIoU vs FCN-R50 [95 % CI]"


def test_each_line_is_compared_with_the_baseline_line_of_its_own_settings(tmp_path):
    from experiments.compare import runs_of

    fcn = write_run(tmp_path, "FCN-R50", 0, 0.41, 0.3, None)
    write_run(tmp_path, "FCN-R50", 1, 0.42, 0.3, None)
    danet = write_run(tmp_path, "DANet-R50", 0, 0.44, 0.1, None)
    # The same seed with --set max_epochs=2: its own line, compared with FCN-R50's line of that setting only.
    short = {"max_epochs": 2}
    write_run(tmp_path, "DANet-R50", 0, 0.30, 0.2, None, overrides=short)
    write_run(tmp_path, "FCN-R50", 0, 0.30, 0.2, None, overrides=short)
    records, _ = load_records(tmp_path, "danet.ablation")
    lines = lines_by_row_and_settings(summary_table(get_experiment("danet.ablation"), records, tmp_path, "FCN-R50"))
    default = lines[("DANet-R50", "none: the profile's recipe")][DELTA]
    assert float(default.split(" [")[0]) == pytest.approx(100 * (danet - fcn), abs=0.006)
    assert "seed means" not in default  # one DANet seed: no seed interval
    assert lines[("DANet-R50", "max_epochs=2")][DELTA] == "+0.00 [+0.00, +0.00] (seed 0)"  # the same statistics
    assert lines[("FCN-R50", "max_epochs=2")][DELTA] == "baseline"
    assert lines[("FCN-R50", "none: the profile's recipe")]["n"] == "2"
    with pytest.raises(ValueError, match="has runs with other settings"):
        runs_of(tmp_path, "danet.ablation", "DANet-R50", "test", "small")


def test_a_delta_that_cannot_be_computed_says_why(tmp_path):
    write_run(tmp_path, "FCN-R50", 0, 0.41, 0.3, None)
    write_run(tmp_path, "DANet-R50", 0, 0.44, 0.1, None)
    write_run(tmp_path, "DANet-R50", 1, 0.44, 0.1, None, overrides={"max_epochs": 2})
    write_run(tmp_path, "FCN-R50", 0, 0.30, 0.2, None, overrides={"max_epochs": 2})
    (flipped,) = tmp_path.glob("danet.ablation/FCN-R50/small-seed0-afcnr50/eval-test.json")
    flipped.write_text(
        json.dumps({**json.loads(flipped.read_text()), "protocol": {"mode": "multiscale", "flip": True}})
    )
    records, _ = load_records(tmp_path, "danet.ablation")
    lines = lines_by_row_and_settings(summary_table(get_experiment("danet.ablation"), records, tmp_path, "FCN-R50"))
    assert lines[("DANet-R50", "none: the profile's recipe")][DELTA] == (
        "— (evaluated with another protocol than the baseline)"
    )
    assert lines[("DANet-R50", "max_epochs=2")][DELTA] == "— (no seed in common with the baseline)"
    write_run(tmp_path, "CAM-R50", 0, 0.44, 0.1, None, overrides={"lr": 0.02})
    records, _ = load_records(tmp_path, "danet.ablation")
    lines = lines_by_row_and_settings(summary_table(get_experiment("danet.ablation"), records, tmp_path, "FCN-R50"))
    assert lines[("CAM-R50", "lr=0.02")][DELTA] == "— (no baseline run with these settings)"


def test_a_baseline_is_refused_for_an_experiment_scored_by_top1(tmp_path):
    record = {"experiment": "tnet.megapixel_digits", "variant": "TNet", "metrics": {"val/top1": 0.4}}
    with pytest.raises(ValueError, match="--baseline compares the test mIoU of segmentation runs"):
        summary_table(get_experiment("tnet.megapixel_digits"), [record], tmp_path, baseline="TNet")


def test_crop_factor_scores_get_a_column_each(tmp_path):
    write_run(tmp_path, "FCN-R50", 0, 0.41, 0.3, None)
    write_run(tmp_path, "DANet-R50", 0, 0.44, 0.1, None)
    (tested,) = tmp_path.glob("danet.ablation/DANet-R50/*/eval-test.json")
    crops = {"0": 0.5, "47": 0.4, "94": 0.25}  # eval --crop-factors 0 47 94
    tested.write_text(json.dumps({**json.loads(tested.read_text()), "crop_factor_mIoU": crops}))
    records, _ = load_records(tmp_path, "danet.ablation")
    table = summary_table(get_experiment("danet.ablation"), records, tmp_path)
    titles = header(table)
    assert [title for title in titles if "crop" in title] == ["test mIoU, crop 47 px", "test mIoU, crop 94 px"]
    danet = dict(zip(titles, row(table, "DANet-R50"), strict=True))
    assert (danet["test mIoU, crop 47 px"], danet["test mIoU, crop 94 px"]) == ("40.0", "25.0")
    assert dict(zip(titles, row(table, "FCN-R50"), strict=True))["test mIoU, crop 47 px"] == "—"
