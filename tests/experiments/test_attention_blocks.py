"""SE / ECA / CBAM experiments: smoke run end to end, recipes, paper numbers, complexity table."""

import runpy
from pathlib import Path

from experiments.attention_blocks import RECIPES, complexity_rows, complexity_table
from experiments.base import experiment_names, get_experiment
from experiments.runner import run_variant
from lightning_modules.blocks import ECA

BENCHMARK = Path(__file__).resolve().parents[2] / "benchmarks" / "attention_complexity.py"
NAMES = ("imagenet", "eca_kernel", "cbam_pooling", "cbam_spatial_kernel")


def test_experiments_are_registered_with_all_profiles():
    for name in NAMES:
        assert f"attention_blocks.{name}" in experiment_names()
        experiment = get_experiment(f"attention_blocks.{name}")
        assert set(experiment.recipes) == {"smoke", "small", "paper"}
    names = [v.name for v in get_experiment("attention_blocks.imagenet").variants()]
    assert names[:4] == ["ResNet-50", "SE-ResNet-50", "ECA-ResNet-50", "CBAM-ResNet-50"] and len(names) == 8


def test_smoke_run_records_top1_and_top5(tmp_path):
    experiment = get_experiment("attention_blocks.imagenet")
    status, record = run_variant(experiment, experiment.variant("CBAM-ResNet-50"), "smoke", tmp_path, wandb="disabled")
    assert status == "finished"
    assert set(record["metrics"]) == {"val/top1", "val/top5"}
    assert all(0.0 <= value <= 1.0 for value in record["metrics"].values())
    assert {"metric": "top1", "value": 77.34, "source": "CBAM paper, ImageNet-1K table [mem] (top-1 err 22.66)"} in (
        record["paper_numbers"]
    )
    assert (tmp_path / "attention_blocks.imagenet" / "CBAM-ResNet-50" / record["run_id"] / "metrics.json").is_file()


def test_paper_recipe_is_the_shared_imagenet_recipe():
    paper = RECIPES["paper"]
    assert (paper["base_lr"], paper["base_batch_size"], paper["batch_size"]) == (0.1, 256, 256)
    assert (paper["momentum"], paper["weight_decay"], paper["lr_step_epochs"], paper["lr_gamma"]) == (
        0.9,
        1e-4,
        30,
        0.1,
    )
    assert (paper["max_epochs"], paper["image_size"], paper["resize_size"], paper["data"]) == (
        100,
        224,
        256,
        "imagenet",
    )


def test_ablation_variants_build_the_right_blocks():
    recipe = get_experiment("attention_blocks.eca_kernel").recipe("smoke")
    experiment = get_experiment("attention_blocks.eca_kernel")
    datamodule = experiment.build_datamodule(recipe)
    kernels = {
        v.name: {m.kernel_size for m in experiment.build_module(v, recipe, datamodule).modules() if isinstance(m, ECA)}
        for v in experiment.variants()
    }
    assert kernels["k=9"] == {9} and kernels["adaptive k"] == {3, 5}  # tiny widths 32..256: k = 3 (32, 64), 5
    pooling = get_experiment("attention_blocks.cbam_pooling")
    module = pooling.build_module(pooling.variant("max"), recipe, datamodule)
    block = module.network.layer1[0].se
    assert block.channel_gate.pool_types == ("max",) and block.spatial_gate is None


def test_complexity_rows_match_the_official_counts():
    rows = {row["model"]: row for row in complexity_rows(depths=(50,))}
    assert rows["ResNet-50"]["params"] == 25_557_032
    assert rows["SE-ResNet-50"]["params"] == 28_088_024
    assert rows["ECA-ResNet-50"]["params"] == 25_557_112
    assert rows["CBAM-ResNet-50"]["params"] == 28_089_624
    assert round(rows["ResNet-50"]["macs"] / 1e9, 3) == 4.089
    assert [round(rows[m]["macs_v1"] / 1e9, 3) for m in ("ResNet-50", "SE-ResNet-50", "CBAM-ResNet-50")] == [
        3.858,
        3.860,
        3.864,
    ]
    table = complexity_table(depths=(50,))
    assert "| SE-ResNet-50 | 28,088,024 | 28.09 | 26.79 | 4.092 | 3.860 | 28.09 |" in table


def test_benchmark_script_prints_the_table(capsys):
    runpy.run_path(str(BENCHMARK), run_name="not_main")["main"](["--depths", "18"])
    out = capsys.readouterr().out
    assert "| ResNet-18 | 11,689,512 | 11.69 | 11.15 |" in out and "| CBAM-ResNet-18 |" in out


# MobileNetV2 ± SE / ECA and the recipes' optional ``attention`` key.
MOBILENETV2_ROWS = ("MobileNetV2", "SE-MobileNetV2", "ECA-MobileNetV2")


def test_mobilenetv2_experiment_has_the_three_rows_and_the_eca_readme_numbers():
    experiment = get_experiment("attention_blocks.mobilenetv2")
    assert "attention_blocks.mobilenetv2" in experiment_names()
    assert set(experiment.recipes) == {"smoke", "small", "paper"}
    variants = experiment.variants()
    assert [v.name for v in variants] == list(MOBILENETV2_ROWS)
    assert [v.params["attention"] for v in variants] == [None, "se", "eca"]
    assert experiment.variant("MobileNetV2").paper == () and experiment.variant("SE-MobileNetV2").paper == ()
    eca = {number.metric: number.value for number in experiment.variant("ECA-MobileNetV2").paper}
    assert eca == {"top1": 72.56, "top5": 90.81, "params_M": 3.34, "GFLOPs": 0.3199}
    # The README's "3.34 M" is ECA-MobileNetV2's 3,504,903 parameters in units of 2^20.
    assert round(3_504_903 / 2**20, 2) == eca["params_M"]


def test_mobilenetv2_paper_recipe_is_mobilenetv2s_own():
    experiment = get_experiment("attention_blocks.mobilenetv2")
    paper = experiment.recipe("paper")
    assert (paper["base_lr"], paper["base_batch_size"], paper["batch_size"]) == (0.045, 96, 96)
    assert (paper["momentum"], paper["weight_decay"]) == (0.9, 4e-5)
    assert (paper["max_epochs"], paper["lr_step_epochs"], paper["lr_gamma"]) == (400, 1, 0.98)
    assert (paper["drop_rate"], paper["image_size"], paper["data"]) == (0.25, 224, "imagenet")
    assert "layers" not in paper and "planes" not in paper
    assert all(recipe["drop_rate"] == 0.25 for recipe in experiment.recipes.values())
    # The module built from it: SGD at 0.045 (96 images a batch), × 0.98 after every epoch, dropout 0.25.
    smoke = experiment.recipe("smoke")
    datamodule = experiment.build_datamodule(smoke)
    module = experiment.build_module(experiment.variant("ECA-MobileNetV2"), paper, datamodule)
    config = module.configure_optimizers()
    (group,) = config["optimizer"].param_groups
    assert (round(group["lr"], 12), group["momentum"], group["weight_decay"]) == (0.045, 0.9, 4e-5)
    scheduler = config["lr_scheduler"]
    assert scheduler["interval"] == "epoch"
    assert (scheduler["scheduler"].step_size, scheduler["scheduler"].gamma) == (1, 0.98)
    assert module.network.drop_rate == 0.25
    assert [m.kernel_size for m in module.network.modules() if isinstance(m, ECA)] == [1] * 10 + [3] * 7


def test_mobilenetv2_smoke_runs_record_top1(tmp_path):
    experiment = get_experiment("attention_blocks.mobilenetv2")
    for name in MOBILENETV2_ROWS:
        status, record = run_variant(experiment, experiment.variant(name), "smoke", tmp_path, wandb="disabled")
        assert status == "finished"
        assert set(record["metrics"]) == {"val/top1", "val/top5"}
        assert 0.0 <= record["metrics"]["val/top1"] <= record["metrics"]["val/top5"] <= 1.0
        run_dir = tmp_path / "attention_blocks.mobilenetv2" / name / record["run_id"]
        assert (run_dir / "metrics.json").is_file()
    assert {"metric": "top1", "value": 72.56, "source": "ECA README, released k13 weights"} in record["paper_numbers"]


def test_attention_override_builds_eca_backbones_and_keeps_other_run_ids(tmp_path):
    import json

    import torch

    from experiments.__main__ import main
    from experiments.runner import run_id

    experiment = get_experiment("danet.ablation")
    plain = experiment.recipe("smoke")
    assert "attention" not in plain  # an optional key: absent unless set, so earlier run ids stay
    assert run_id("smoke", plain, 0) == run_id("smoke", {**experiment.recipes["smoke"], "profile": "smoke"}, 0)
    recipe = experiment.recipe("smoke", {"attention": "eca"})
    assert recipe == {**plain, "attention": "eca"}
    assert run_id("smoke", recipe, 0) != run_id("smoke", plain, 0)
    variant = experiment.variant("DANet-R50")
    datamodule = experiment.build_datamodule(recipe)
    module = experiment.build_module(variant, recipe, datamodule)
    body = module.network.backbone.body
    blocks = [body.layer1[0], body.layer2[0], body.layer3[0], body.layer4[0]]  # test_resnet: one block a stage
    assert all(isinstance(block.se, ECA) for block in blocks)
    assert sum(isinstance(m, ECA) for m in module.network.backbone.modules()) == 4
    without = experiment.build_module(variant, plain, datamodule)
    assert not any(isinstance(m, ECA) for m in without.network.modules())

    argv = ["run", "danet.ablation", "--variant", "DANet-R50", "--profile", "smoke", "--runs-dir", str(tmp_path)]
    assert main([*argv, "--wandb", "disabled", "--set", "attention=eca"]) == 0
    (path,) = tmp_path.glob("danet.ablation/DANet-R50/*/metrics.json")
    assert path.parent.name == run_id("smoke", recipe, 0)
    record = json.loads(path.read_text())
    assert record["recipe"]["attention"] == "eca" and 0.0 <= record["metrics"]["val/mIoU"] <= 1.0
    state = torch.load(path.parent / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)["state_dict"]
    assert "network.backbone.body.layer4.0.se.conv.weight" in state


def test_unknown_attention_override_is_refused(capsys):
    from experiments.__main__ import main

    assert main(["run", "danet.ablation", "--profile", "smoke", "--set", "attention=foo"]) == 2
    expected = "--set attention='foo': expected None, 'se', 'eca' or 'cbam' (an attention block in every residual block"
    assert capsys.readouterr().err.startswith(f"error: {expected}")


def test_attention_key_is_only_for_experiments_whose_backbones_take_it(tmp_path, capsys):
    import pytest

    from experiments.__main__ import main

    for name in ("attention_blocks.mobilenetv2", "attention_blocks.imagenet", "tnet.fmow", "quickstart"):
        experiment = get_experiment(name)
        for value in ("se", None):
            with pytest.raises(ValueError, match="has no key 'attention'"):
                experiment.recipe("smoke", {"attention": value})
        assert "attention" not in experiment.recipe("smoke")
    assert get_experiment("sanet.ablation").recipe("smoke", {"attention": "se"})["attention"] == "se"
    argv = ["run", "attention_blocks.mobilenetv2", "--profile", "smoke", "--runs-dir", str(tmp_path)]
    assert main([*argv, "--wandb", "disabled", "--set", "attention=se"]) == 2
    assert "has no key 'attention'" in capsys.readouterr().err
    assert not list(tmp_path.glob("attention_blocks.mobilenetv2/*/*/metrics.json"))


def test_an_optional_key_set_to_its_default_leaves_the_recipe_and_run_id_as_they_were():
    from experiments.runner import run_id

    experiment = get_experiment("danet.ablation")
    plain = experiment.recipe("smoke")
    for overrides in ({"attention": None}, {"deterministic": False}):
        assert experiment.recipe("smoke", overrides) == plain
    assert run_id("smoke", experiment.recipe("smoke", {"attention": None}), 0) == run_id("smoke", plain, 0)
    assert experiment.recipe("smoke", {"attention": "cbam"})["attention"] == "cbam"
