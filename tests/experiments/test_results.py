"""``python -m experiments table``: the test protocol column, the chart, and where the notebooks find the runs."""

import json
import textwrap
from pathlib import Path

import pytest

from experiments import results
from experiments.__main__ import main
from experiments.base import get_experiment
from experiments.evaluate import predict_kwargs
from experiments.results import (
    RUNS_DIR_VARIABLE,
    describe_protocol,
    notebook_runs_dir,
    paper_chart,
    paper_table,
    plot_paper_table,
    write_json_atomic,
)


def make_record(experiment, variant: str, profile: str, miou: float, **recipe) -> dict:
    """A ``metrics.json`` record as ``run`` writes it, without training."""
    return {
        "experiment": experiment.name,
        "variant": variant,
        "run_id": f"{profile}-seed0-test",
        "profile": profile,
        "recipe": {**experiment.recipe(profile), **recipe},
        "metrics": {"val/mIoU": miou, "val/pixel_acc": 0.9},
        "per_class": {},
        "hardware": {"device": "cpu"},
        "timings": {"fit_seconds": 12.0},
    }


def write_run(runs_dir: Path, record: dict, protocol: dict | None = None, **evaluated) -> Path:
    """Write ``record`` into the store, and an ``eval-test.json`` with ``protocol`` (and ``evaluated`` fields such as
    ``eval_short_side``) when given."""
    folder = runs_dir / record["experiment"] / record["variant"] / record["run_id"]
    write_json_atomic(folder / "metrics.json", record)
    if protocol is not None:
        scores = {"mIoU": 0.5, "pixel_acc": 0.8, "boundary_F": {"0.00088": 0.3}}
        # Through JSON, as eval writes it: tuples become lists.
        write_json_atomic(folder / "eval-test.json", {"split": "test", "protocol": protocol, **evaluated, **scores})
    return folder


@pytest.mark.parametrize(
    ("flags", "eval_short_side", "expected"),
    [
        ((False, False, False, None), 240, "single scale, 240 px short side"),
        ((True, True, False, None), None, "flip + 6 scales (0.5–1.75), full resolution"),
        ((True, False, False, None), None, "6 scales (0.5–1.75), full resolution"),
        ((False, True, False, None), 120, "flip + single scale, 120 px short side"),
        ((False, False, True, (768, 768)), None, "sliding 768×768 window, full resolution"),
        (
            (True, True, True, (768, 768), "exp_sum"),
            None,
            "flip + 6 scales (0.5–1.75), sliding 768×768 window, exp_sum combine, full resolution",
        ),
    ],
)
def test_protocol_in_words(flags, eval_short_side, expected):
    stored = json.loads(json.dumps(predict_kwargs(*flags)))
    assert describe_protocol(stored, eval_short_side) == expected
    with pytest.raises(ValueError, match="protocol mode 'tiled' is unknown; expected 'single', 'sliding'"):
        describe_protocol({"mode": "tiled"}, None)


def test_table_names_the_protocol_of_each_test_column(tmp_path, capsys):
    experiment = get_experiment("baselines.camvid")
    reduced = make_record(experiment, "fcn", "small", 0.41, eval_short_side=240)
    write_run(tmp_path, reduced, predict_kwargs(False, False, False, None))
    # Evaluated at full resolution although the run validated at 240 px: the size eval-test.json records wins.
    full = make_record(experiment, "deeplabv3plus", "small", 0.45, eval_short_side=240)
    write_run(tmp_path, full, predict_kwargs(True, True, False, None), eval_short_side=None)
    untested = make_record(experiment, "fcn", "smoke", 0.1)
    write_run(tmp_path, untested)

    assert main(["table", experiment.name, "--runs-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    header = next(line for line in out.splitlines() if line.startswith("| variant"))
    assert "| test boundary F | test protocol | profile |" in header
    cells = {line: [cell.strip() for cell in line.split("|")[1:-1]] for line in out.splitlines() if "| small" in line}
    rows = {(row[0], row[8]): line for line, row in cells.items()}  # (variant, profile)
    assert "| 30.0 | single scale, 240 px short side | small |" in rows[("fcn", "small")]
    assert "| flip + 6 scales (0.5–1.75), full resolution | small |" in rows[("deeplabv3plus", "small")]
    assert "| 10.0 | 90.0 | — | — | — | — | smoke |" in out, "no eval-test.json: no protocol"
    assert results.TEST_PROTOCOL_NOTE in out
    assert f"chart: {tmp_path / experiment.name / 'table.png'}" in out


def test_table_without_eval_has_no_protocol_note():
    experiment = get_experiment("quickstart")
    table = paper_table(experiment, [make_record(experiment, "fcn", "smoke", 0.2)], "/nonexistent")
    assert "| — | smoke |" in table and results.TEST_PROTOCOL_NOTE not in table


def test_table_names_an_eval_file_with_a_foreign_protocol(tmp_path, capsys):
    experiment = get_experiment("quickstart")
    folder = write_run(tmp_path, make_record(experiment, "fcn", "smoke", 0.2), {"mode": "tiled"})
    assert main(["table", experiment.name, "--runs-dir", str(tmp_path)]) == 2
    assert capsys.readouterr().err == (
        f"error: {folder / 'eval-test.json'}: protocol mode 'tiled' is unknown; "
        "expected 'single', 'sliding' or 'multiscale'.\n"
    )


def test_no_chart_without_paper_numbers_or_runs(tmp_path, capsys):
    experiment = get_experiment("quickstart")  # no paper number
    assert paper_chart(experiment, []) is None
    assert plot_paper_table(experiment, [], tmp_path / "table.png") is None
    assert main(["table", experiment.name, "--runs-dir", str(tmp_path)]) == 0
    assert capsys.readouterr().out.endswith("\nno chart: quickstart has no run and no paper number to plot yet.\n")
    assert not list(tmp_path.rglob("*.png"))


def bars(figure) -> dict[str, list[float]]:
    """Bar heights per legend entry."""
    axes = figure.axes[0]
    return {container.get_label(): [bar.get_height() for bar in container] for container in axes.containers}


def assert_readable(figure, split: str, metric: str) -> None:
    """Axis from 0, title and y label naming split and metric, legend beside the axes, nothing off the figure."""
    figure.draw_without_rendering()  # lays the figure out, as savefig does
    axes = figure.axes[0]
    assert axes.get_ylim() == (0.0, 100.0)
    assert split in axes.get_title() and f"{metric} (%)" in axes.get_title()
    assert split in axes.get_ylabel() and f"{metric} (%)" in axes.get_ylabel()
    legend, frame, canvas = axes.get_legend().get_window_extent(), axes.get_window_extent(), figure.bbox
    assert legend.x0 >= frame.x1, "the legend is right of the axes, off the bars"
    for artist in (axes.title, axes.get_legend(), axes.yaxis.label, *axes.get_xticklabels()):
        box = artist.get_window_extent()
        assert canvas.x0 <= box.x0 and box.x1 <= canvas.x1 and canvas.y0 <= box.y0 and box.y1 <= canvas.y1, artist


def test_chart_of_paper_numbers_only():
    experiment = get_experiment("danet.strategies")  # long title, long variant names, no run
    figure = paper_chart(experiment, [])
    assert_readable(figure, "val", "mIoU")
    assert bars(figure) == {"paper": [77.57, 78.83, 79.94, 81.5]}
    title_lines = figure.axes[0].get_title().splitlines()
    assert len(title_lines) > 2, "the long title is wrapped"
    assert title_lines[:-1] == textwrap.wrap(f"{experiment.paper}: {experiment.table}", len(max(title_lines, key=len)))


def test_chart_of_runs_beside_paper_numbers(tmp_path):
    experiment = get_experiment("danet.strategies")
    records = [
        make_record(experiment, "DANet-R101", "smoke", 0.1),
        make_record(experiment, "DANet-R101+DA", "paper", 0.45),
    ]
    figure = paper_chart(experiment, records)
    assert_readable(figure, "val", "mIoU")
    assert bars(figure) == {
        "paper": [77.57, 78.83, 79.94, 81.5],
        "measured val (smoke profile)": [10.0],
        "measured val (paper profile)": [45.0],
    }
    path = plot_paper_table(experiment, records, tmp_path / "charts" / "table.png")
    assert path == tmp_path / "charts" / "table.png"
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and [p.name for p in path.parent.iterdir()] == ["table.png"]


def test_chart_of_a_run_without_paper_numbers():
    experiment = get_experiment("quickstart")
    figure = paper_chart(experiment, [make_record(experiment, "fcn", "smoke", 0.0)])
    assert_readable(figure, "val", "mIoU")  # a 0 % run: the axis still starts at 0, not below
    assert bars(figure) == {"measured val (smoke profile)": [0.0]}
    assert figure.axes[0].get_title().endswith("\nmIoU (%): measured on the val split")  # no paper number to name


def test_classification_chart_takes_top1_from_the_paper_without_runs():
    figure = paper_chart(get_experiment("attention_blocks.imagenet"), [])
    assert_readable(figure, "val", "top-1")
    assert bars(figure)["paper"][:2] == [75.44, 76.71]
    assert figure.axes[0].get_title().endswith("top-1 (%): the paper's number vs measured on the val split")


def test_notebooks_find_the_runs_at_the_repository_root(monkeypatch, tmp_path):
    root = Path(__file__).resolve().parents[2]
    monkeypatch.delenv(RUNS_DIR_VARIABLE, raising=False)
    monkeypatch.chdir(tmp_path)
    assert notebook_runs_dir() == root / "runs"
    monkeypatch.setenv(RUNS_DIR_VARIABLE, str(tmp_path / "store"))
    assert notebook_runs_dir() == tmp_path / "store"
    monkeypatch.delenv(RUNS_DIR_VARIABLE)
    installed = tmp_path / "site-packages" / "experiments" / "results.py"
    monkeypatch.setattr(results, "__file__", str(installed))
    with pytest.raises(FileNotFoundError, match=f"imported from {tmp_path / 'site-packages'}, not from a checkout"):
        notebook_runs_dir()


def test_per_class_families_and_other_published_metrics_get_their_own_tables():
    from experiments.base import PaperNumber, Variant

    assert results.per_class_family("IoU/road") == ("IoU", "road")
    assert results.per_class_family("boundary_F/0.00088/traffic light") == ("boundary_F/0.00088", "traffic light")
    assert results.per_class_family("boundary_F/0.00088") is None
    assert results.per_class_family("crop_mIoU/200") is None
    variant = Variant(
        "GSCNN",
        paper=(
            PaperNumber("mIoU", 80.8, "T1"),
            PaperNumber("boundary_F/0.00088", 73.6, "T2"),
            PaperNumber("boundary_F/0.00088/road", 85.0, "T2"),
            PaperNumber("boundary_F/0.00088/sky", 83.5, "T2"),
            PaperNumber("crop_mIoU/200", 78.1, "crop plot"),
        ),
    )
    assert results.describe_paper_numbers(variant.paper) == (
        "mIoU 80.8 (T1); boundary_F/0.00088 73.6 (T2); crop_mIoU/200 78.1 (crop plot); "
        "boundary_F/0.00088 of 2 classes (T2)"
    )
    record = {
        "profile": "small",
        "run_id": "small-seed0-x",
        "metrics": {"val/mIoU": 0.5, "val/boundary_F/0.00088": 0.61234},
        "per_class": {"val/boundary_F/0.00088": {"road": 0.9}},
    }
    other = results.metric_table(variant, [record], ("mIoU", "pixel_acc")).splitlines()
    assert other[2] == "| metric | paper | source | measured val (small, small-seed0-x) |"
    assert other[4:] == ["| boundary_F/0.00088 | 73.6 | T2 | 61.2 |", "| crop_mIoU/200 | 78.1 | crop plot | — |"]
    per_class = results.per_class_table(variant, [record]).splitlines()
    assert per_class[0] == "#### GSCNN: boundary_F/0.00088 per class (paper: T2)"
    assert per_class[4:] == ["| road | 85.0 | 90.0 |", "| sky | 83.5 | — |"]
    assert results.metric_table(Variant("x", paper=(PaperNumber("mIoU", 1.0, "s"),)), [], ("mIoU",)) == ""


def test_the_main_tables_paper_cell_keeps_the_headline_numbers():
    from experiments.base import PaperNumber

    numbers = (
        PaperNumber("mIoU", 80.8, "T1"),
        PaperNumber("IoU/road", 98.3, "T1"),
        PaperNumber("crop_mIoU/200", 78.1, "p"),
    )
    assert results.paper_cell(numbers, ("mIoU", "pixel_acc")) == "mIoU 80.8 (T1); 2 more below"
    assert results.paper_cell(numbers[1:], ("mIoU", "pixel_acc")) == "2 numbers below"
    assert results.paper_cell(numbers[:1], ("mIoU", "pixel_acc")) == "mIoU 80.8 (T1)"
    assert results.paper_cell((), ("mIoU", "pixel_acc")) == "—"


def test_runs_over_seeds_get_a_mean_and_sd_row_and_one_seed_gets_none(tmp_path, capsys):
    from experiments.__main__ import main
    from experiments.results import load_records

    argv = ["run", "quickstart", "--profile", "smoke", "--runs-dir", str(tmp_path), "--wandb", "disabled"]
    assert main([*argv, "--seeds", "0", "1"]) == 0
    folders = sorted(path.name for path in tmp_path.glob("quickstart/fcn/*") if path.is_dir())
    assert [name.split("-")[1] for name in folders] == ["seed0", "seed1"]
    records, _ = load_records(tmp_path, "quickstart")
    values = [record["metrics"]["val/mIoU"] for record in sorted(records, key=lambda record: record["seed"])]
    capsys.readouterr()
    assert main(["table", "quickstart", "--runs-dir", str(tmp_path)]) == 0
    (summary,) = [line for line in capsys.readouterr().out.splitlines() if "mean ± sd of n = 2 seeds (0, 1)" in line]
    cells = [cell.strip() for cell in summary.split("|")[1:-1]]
    mean = 100 * (values[0] + values[1]) / 2
    sd = 100 * abs(values[0] - values[1]) / 2**0.5
    assert cells[2] == f"{mean:.1f} ± {sd:.1f}"
    assert main(["table", "quickstart", "--runs-dir", str(tmp_path), "--summary"]) == 0
    (line,) = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| fcn |")]
    assert [cell.strip() for cell in line.split("|")[3:6]] == ["2", "0, 1", f"{mean:.1f} ± {sd:.1f}"]
    assert main([*argv, "--seeds", "0"]) == 0  # finished before: skipped
    single = tmp_path / "single"
    assert main(["run", "quickstart", "--profile", "smoke", "--runs-dir", str(single), "--wandb", "disabled"]) == 0
    capsys.readouterr()
    assert main(["table", "quickstart", "--runs-dir", str(single)]) == 0
    assert "mean ± sd" not in capsys.readouterr().out  # one seed: its value alone, never a ± 0
    assert main(["table", "quickstart", "--runs-dir", str(single), "--summary"]) == 0
    (line,) = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| fcn |")]
    (record,), _ = load_records(single, "quickstart")
    assert [cell.strip() for cell in line.split("|")[3:6]] == ["1", "0", f"{100 * record['metrics']['val/mIoU']:.1f}"]


def test_seed_and_seeds_are_exclusive():
    import pytest

    from experiments.__main__ import build_parser

    with pytest.raises(SystemExit):
        build_parser().parse_args(["run", "quickstart", "--seed", "1", "--seeds", "0", "1"])
