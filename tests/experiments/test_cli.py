import json

import numpy as np
import pytest
from PIL import Image

from experiments.__main__ import main
from experiments.base import experiment_names, get_experiment


def test_quickstart_smoke_writes_metrics_and_prints_table(tmp_path, capsys):
    argv = ["run", "quickstart", "--profile", "smoke", "--runs-dir", str(tmp_path), "--wandb", "disabled"]
    assert main([*argv, "--set", "max_epochs=1", "lr=0.02", "--set", "aux_weight=0.3"]) == 0
    (path,) = tmp_path.glob("quickstart/fcn/*/metrics.json")
    record = json.loads(path.read_text())
    assert record["profile"] == "smoke"
    assert (record["recipe"]["max_epochs"], record["recipe"]["lr"], record["recipe"]["aux_weight"]) == (1, 0.02, 0.3)
    assert record["recipe"]["backbone"] == "test_resnet"
    assert 0.0 <= record["metrics"]["val/mIoU"] <= 1.0
    assert 0.0 <= record["metrics"]["val/pixel_acc"] <= 1.0
    assert len(record["per_class"]["val/IoU"]) == record["recipe"]["num_classes"]
    assert record["packages"]["torch"] and record["hardware"]["device"] == "cpu"
    assert (path.parent / "checkpoints" / "last.ckpt").is_file()
    assert not list(path.parent.glob(".metrics.json.*"))
    out = capsys.readouterr().out
    assert f"| quickstart | fcn | smoke | {100 * record['metrics']['val/mIoU']:.1f} |" in out


@pytest.mark.parametrize("name", experiment_names())
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
    out = capsys.readouterr().out
    assert "quickstart" in out
    assert "  - DANet-R101: mIoU 77.57 (Table 2 [mem]) (scale_range=(1.0, 1.0))\n" in out
    assert "(scores the network of DANet-R101+DA+MG)\n" in out


def test_eval_rebuilds_the_network_from_a_checkpoint(tmp_path, capsys):
    assert (
        main(
            [
                "run",
                "baselines.camvid",
                "--profile",
                "smoke",
                "--variant",
                "fcn",
                "--runs-dir",
                str(tmp_path),
                "--wandb",
                "disabled",
            ]
        )
        == 0
    )
    (ckpt,) = tmp_path.glob("baselines.camvid/fcn/*/checkpoints/last.ckpt")
    capsys.readouterr()
    argv = ["eval", "--ckpt", str(ckpt), "--split", "val", "--flip", "--crop-factors", "0", "4", "--device", "cpu"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    record = json.loads((ckpt.parent.parent / "eval-val.json").read_text())
    assert record["protocol"] == {"mode": "multiscale", "flip": True, "scales": [1.0]}
    assert record["crop_factor_mIoU"]["0"] == record["mIoU"]
    assert set(record["boundary_F"]) == {"0.00088", "0.001875", "0.00375", "0.005"}
    assert f"| {100 * record['mIoU']:.2f} | {100 * record['pixel_acc']:.2f} |" in out
    assert "| class | IoU |" in out
    argv = ["eval", "--ckpt", str(ckpt), "--split", "val", "--multi-scale", "--flip", "--combine", "exp_sum"]
    assert main([*argv, "--device", "cpu"]) == 0
    record = json.loads((ckpt.parent.parent / "eval-val.json").read_text())
    assert record["protocol"] == {"mode": "multiscale", "flip": True, "combine": "exp_sum"}


def test_eval_rejects_a_foreign_checkpoint(tmp_path, capsys):
    import torch

    path = tmp_path / "foreign.ckpt"
    torch.save({"state_dict": {}}, path)
    assert main(["eval", "--ckpt", str(path)]) == 2
    assert "has no 'run' entry" in capsys.readouterr().err


def test_table_settings_column_names_only_the_overrides():
    from experiments.results import recipe_changes

    experiment = get_experiment("baselines.camvid")
    recipe = json.loads(json.dumps(experiment.recipe("small", {"pretrained": False, "max_epochs": 6})))
    assert recipe["crop_size"] == [360, 480]  # stored as JSON: the tuple is a list now, and is not a change
    record = {"profile": "small", "recipe": recipe}
    assert recipe_changes(experiment, record) == "pretrained=False, max_epochs=6"
    assert recipe_changes(experiment, {"profile": "small", "recipe": experiment.recipe("small")}) == "—"


def test_table_settings_column_leaves_out_what_the_row_itself_sets():
    from experiments.results import recipe_changes

    experiment = get_experiment("danet.strategies")
    row = experiment.variant("DANet-R101")
    recipe = json.loads(json.dumps(experiment.recipe("paper", {"max_epochs": 2}, row)))
    assert recipe["scale_range"] == [1.0, 1.0]
    assert recipe_changes(experiment, {"profile": "paper", "variant": row.name, "recipe": recipe}) == "max_epochs=2"
    assert recipe_changes(experiment, {"profile": "paper", "variant": "DANet-R101+DA", "recipe": recipe}) == (
        "scale_range=(1.0, 1.0), max_epochs=2"
    )
    rescoring = {
        "profile": "paper",
        "variant": "DANet-R101+DA+MG+MS",
        "rescores": {"variant": "DANet-R101+DA+MG"},
        "recipe": experiment.recipe("paper"),
    }
    assert recipe_changes(experiment, rescoring) == "—"


def test_per_class_paper_numbers_get_their_own_table(capsys):
    from experiments.results import describe_paper_numbers, per_class_table

    experiment = get_experiment("danet.cityscapes_test")
    ms = experiment.variant("DANet-R101+DA+MG+MS")
    summary = describe_paper_numbers(ms.paper)
    assert "IoU of 19 classes (Table 3 [P-img]" in summary and "IoU/road" not in summary
    assert summary.startswith("mIoU 81.5 (")
    record = {"profile": "paper", "run_id": "paper-seed0-x", "per_class": {"val/IoU": {"road": 0.9812, "wall": 0.5}}}
    lines = per_class_table(ms, [record]).splitlines()
    assert lines[0].startswith("#### DANet-R101+DA+MG+MS: IoU per class")
    assert lines[2] == "| class | paper | measured val (paper, paper-seed0-x) |"
    assert "| road | 98.6 | 98.1 |" in lines and "| wall | 56.1 | 50.0 |" in lines
    assert "| bicycle | 78.2 | — |" in lines and len(lines) == 4 + 19
    assert per_class_table(experiment.variant("DANet-R101+DA+MG"), [record]) == ""
    assert main(["list"]) == 0
    listed = capsys.readouterr().out
    assert "IoU of 19 classes" in listed and "IoU/road" not in listed


def test_combine_needs_multi_scale_or_flip():
    from experiments.evaluate import predict_kwargs

    with pytest.raises(ValueError, match="--combine says how --multi-scale / --flip passes combine"):
        predict_kwargs(False, False, True, (8, 8), "exp_sum")
    assert predict_kwargs(False, True, False, None, "exp_sum") == {
        "mode": "multiscale",
        "flip": True,
        "scales": (1.0,),
        "combine": "exp_sum",
    }


def test_a_bad_override_is_an_error_naming_key_value_and_expectation(capsys):
    assert main(["run", "baselines.camvid", "--set", "max_epochs=abc"]) == 2
    assert capsys.readouterr().err == "error: --set max_epochs='abc': expected an integer like 60.\n"
    assert main(["run", "baselines.camvid", "--set", "crop_size=(1,2,3)"]) == 2
    expected = "--set crop_size=(1, 2, 3): expected a positive side or a pair (h, w) of them, like 768 or (360, 480)."
    assert capsys.readouterr().err == f"error: {expected}\n"


def write_camvid(root):
    """A CamVid tree in SegNet's layout: 2 images of 40x48 per split, labels 0..11 (11 void)."""
    rng = np.random.default_rng(0)
    for split in ("train", "val", "test"):
        lines = []
        for index in range(2):
            name = f"{split}{index}"
            (root / split).mkdir(parents=True, exist_ok=True)
            (root / f"{split}annot").mkdir(exist_ok=True)
            Image.fromarray(rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)).save(root / split / f"{name}.png")
            Image.fromarray(rng.integers(0, 12, (40, 48), dtype=np.uint8)).save(root / f"{split}annot" / f"{name}.png")
            lines.append(f"{split}/{name}.png {split}annot/{name}.png")
        (root / "splits").mkdir(exist_ok=True)
        (root / "splits" / f"{split}.txt").write_text("\n".join(lines) + "\n")
    return root


def test_eval_on_named_data_keeps_the_runs_evaluation_size_and_prints_the_protocol(tmp_path, capsys):
    root = write_camvid(tmp_path / "camvid")
    tiny = ["backbone=test_resnet", "pretrained=False", "max_epochs=1", "base_size=40", "crop_size=(32,32)"]
    recipe = ["--set", f"root={root}", *tiny, "eval_short_side=20", "batch_size=2", "num_workers=0"]
    argv = ["run", "baselines.camvid", "--variant", "fcn", "--runs-dir", str(tmp_path / "runs"), "--wandb", "disabled"]
    assert main([*argv, *recipe]) == 0
    (ckpt,) = (tmp_path / "runs").glob("baselines.camvid/fcn/*/checkpoints/last.ckpt")
    result = ckpt.parent.parent / "eval-test.json"
    capsys.readouterr()
    argv = ["eval", "--ckpt", str(ckpt), "--data", "camvid", "--root", str(root), "--device", "cpu"]
    assert main(argv) == 0
    protocol = f"on camvid in {root}, split test: single scale, 20 px short side\n"
    assert capsys.readouterr().out.startswith(f"evaluating baselines.camvid / fcn (small profile) {protocol}")
    record = json.loads(result.read_text())
    assert (record["data"], record["root"], record["eval_short_side"]) == ("camvid", str(root), 20)
    assert main([*argv, "--set", "eval_short_side=None"]) == 0
    assert "split test: single scale, full resolution\n" in capsys.readouterr().out
    assert json.loads(result.read_text())["eval_short_side"] is None
    assert main([*argv[:-2], "--set", "eval_short_side=None", "num_workers=0"]) == 0  # --root alone: the run's data
    assert json.loads(result.read_text())["root"] == str(root)


def test_eval_names_what_it_cannot_take(tmp_path, capsys, monkeypatch):
    argv = ["run", "quickstart", "--profile", "smoke", "--runs-dir", str(tmp_path), "--wandb", "disabled"]
    assert main(argv) == 0
    (ckpt,) = tmp_path.glob("quickstart/fcn/*/checkpoints/last.ckpt")
    capsys.readouterr()
    empty = tmp_path / "data"
    monkeypatch.setenv("ATTN_DATA_ROOT", "unset")  # restored after main sets it from --data-root
    assert main(["eval", "--ckpt", str(ckpt), "--data", "camvid", "--data-root", str(empty)]) == 2
    error = capsys.readouterr().err
    assert error.startswith(f"error: CamVid (SegNet's 11-class split, 360×480) not found: no folder {empty}/camvid ")
    assert error.endswith(f"python -m experiments data download camvid --data-root {empty}\n")
    assert main(["eval", "--ckpt", str(ckpt), "--set", "backbone=resnet18"]) == 2
    expected = "error: --set backbone=...: eval changes only the data settings of the run's recipe (num_workers); "
    assert capsys.readouterr().err == expected + "the network is the run's.\n"
    assert main(["eval", "--ckpt", str(ckpt), "--set", "num_workers=-2"]) == 2
    expected = (
        "error: --set num_workers=-2: expected None (the CPUs available, at most 8) or an integer >= 0, like 4.\n"
    )
    assert capsys.readouterr().err == expected


@pytest.mark.parametrize("command", [[], ["run"], ["table"], ["eval"], ["list"], ["data"], ["data", "download"]])
def test_help_answers_without_importing_torch(command):
    import subprocess
    import sys

    script = (
        "import sys\n"
        "from experiments.__main__ import main\n"
        "try:\n"
        f"    main({[*command, '--help']!r})\n"
        "except SystemExit as exit:\n"
        "    assert exit.code == 0, exit.code\n"
        "print('torch imported' if 'torch' in sys.modules else 'no torch')\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert "usage: python -m experiments" in done.stdout
    assert done.stdout.rstrip().endswith("no torch")


def test_cli_choices_are_the_ones_the_code_accepts():
    from datamodules.store import root
    from experiments import choices
    from lightning_modules.inference import COMBINES

    assert choices.COMBINES == COMBINES
    assert (choices.DATA_ROOT_ENV, choices.DOWNLOAD_DIR_ENV) == (root.DATA_ROOT_ENV, root.DOWNLOAD_DIR_ENV)


def test_set_before_the_experiment_name_says_where_the_name_goes(capsys):
    with pytest.raises(SystemExit) as exit:
        main(["run", "--set", "max_epochs=2", "quickstart"])
    assert exit.value.code == 2
    err = capsys.readouterr().err
    assert "--set expects key=value, got 'quickstart'" in err and "put the experiment's name first" in err


def test_weights_that_cannot_be_fetched_are_an_error_message_not_a_traceback(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    argv = ["run", "gscnn.cityscapes", "--profile", "smoke", "--variant", "GSCNN", "--runs-dir", str(tmp_path)]
    assert main([*argv, "--set", "pretrained=True", "--wandb", "disabled"]) == 2
    error = capsys.readouterr().err
    assert error.startswith(
        "error: The ImageNet weights of 'test_resnet' could not be fetched from the Hugging Face hub"
    )
