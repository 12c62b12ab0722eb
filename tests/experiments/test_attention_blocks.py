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
