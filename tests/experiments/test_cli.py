import json

import pytest

from experiments.__main__ import main
from experiments.base import REGISTRY, get_experiment


def test_quickstart_smoke_writes_metrics_and_prints_table(tmp_path, capsys):
    assert main(["run", "quickstart", "--profile", "smoke", "--runs-dir", str(tmp_path)]) == 0
    (path,) = tmp_path.glob("quickstart/fcn/*/metrics.json")
    record = json.loads(path.read_text())
    assert record["profile"] == "smoke"
    assert record["recipe"]["backbone"] == "test_resnet"
    assert 0.0 <= record["metrics"]["val/mIoU"] <= 1.0
    assert 0.0 <= record["metrics"]["val/pixel_acc"] <= 1.0
    assert len(record["per_class"]["val/IoU"]) == record["recipe"]["num_classes"]
    assert record["packages"]["torch"] and record["hardware"]["device"] == "cpu"
    assert (path.parent / "checkpoints" / "last.ckpt").is_file()
    assert not list(path.parent.glob(".metrics.json.*"))
    out = capsys.readouterr().out
    assert f"| quickstart | fcn | smoke | {record['metrics']['val/mIoU']:.4f} |" in out


@pytest.mark.parametrize("name", sorted(REGISTRY) or ["quickstart"])
def test_every_experiment_has_a_smoke_profile(name):
    experiment = get_experiment(name)
    assert "smoke" in experiment.recipes
    assert experiment.variants()


def test_unknown_experiment_suggests_a_name(capsys):
    assert main(["run", "quickstrat"]) == 2
    assert "Unknown experiment 'quickstrat' (did you mean 'quickstart'?)" in capsys.readouterr().err


def test_unknown_variant_and_recipe_key(capsys):
    assert main(["run", "quickstart", "--variant", "fnc"]) == 2
    assert "no variant 'fnc' (did you mean 'fcn'?)" in capsys.readouterr().err
    assert main(["run", "quickstart", "--set", "max_epoch=2"]) == 2
    assert "no key 'max_epoch' (did you mean 'max_epochs'" in capsys.readouterr().err


def test_quickstart_has_no_paper_profile(capsys):
    assert main(["run", "quickstart", "--profile", "paper"]) == 2
    assert "has no 'paper' profile" in capsys.readouterr().err


def test_list_shows_experiments(capsys):
    assert main(["list"]) == 0
    assert "quickstart" in capsys.readouterr().out
