"""TNet experiments: the smoke runs record test scores and cost, the fine-tune row starts from the other row's
final weights, the location sweep rescores one network, and the paper recipes are the official commands'."""

import lightning as L
import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from experiments.base import Variant, experiment_names, get_experiment
from experiments.runner import run_variant
from experiments.tnet import FMOW_RECIPES, IMAGENET_RECIPES, cost_table, locations_table, target_table

NAMES = ("imagenet", "fmow", "locations", "megapixel_digits")


def test_experiments_are_registered_with_all_profiles():
    for name in NAMES:
        assert f"tnet.{name}" in experiment_names()
        assert set(get_experiment(f"tnet.{name}").recipes) == {"smoke", "small", "paper"}


def test_megapixel_digits_smoke_records_test_scores_cost_and_the_target_line(tmp_path):
    experiment = get_experiment("tnet.megapixel_digits")
    records = []
    for variant in experiment.variants():
        status, record = run_variant(experiment, variant, "smoke", tmp_path, wandb="disabled")
        assert status == "finished"
        records.append(record)
    tnet, small, full = records
    assert tnet["test"]["locations"] == 2 and small["test"]["locations"] == 0
    assert all(0.0 <= r["test"]["top1"] <= 1.0 for r in records)
    # A downsampled pass costs about (32 / 128)² of a full one; TNet three passes at 32 px plus its heads.
    assert small["cost"]["gflops"] == pytest.approx(full["cost"]["gflops"] / 16, rel=0.1)
    recipe = experiment.recipe("smoke")
    network = experiment.tnet_network(recipe, 10).eval()
    heads = {}
    for name, module, args in (
        ("location", network.location, (torch.zeros(1, network.extractor.location_channels, 5, 5), None)),
        ("fusion", network.fusion, (torch.zeros(1, 96), torch.zeros(1, 24))),
        ("classifier", network.classifier, (torch.zeros(1, 96),)),
    ):
        counter = FlopCounterMode(display=False)
        with counter, torch.no_grad():
            module(*args)
        heads[name] = counter.get_total_flops() / 1e9
    expected = 3 * small["cost"]["gflops"] + heads["location"] + 3 * heads["fusion"] - 2 * heads["classifier"]
    assert tnet["cost"]["gflops"] == pytest.approx(expected, rel=1e-6)
    table = target_table(records)
    gain = 100 * (tnet["test"]["top1"] - small["test"]["top1"])
    ratio = tnet["cost"]["gflops"] / full["cost"]["gflops"]
    assert f"| smoke | 8 | {gain:+.1f} | {ratio:.3f} | n/a (smoke: too few images to judge) |" in table
    assert "| TNet | smoke |" in cost_table(experiment, records)


class _StartWeights(L.Callback):
    def __init__(self) -> None:
        self.starts, self.ends = [], []

    def on_train_start(self, trainer, pl_module):
        self.starts.append({k: v.detach().clone() for k, v in pl_module.network.state_dict().items()})

    def on_train_end(self, trainer, pl_module):
        self.ends.append({k: v.detach().clone() for k, v in pl_module.network.state_dict().items()})


def test_the_896_row_fine_tunes_the_final_weights_of_the_448_row(tmp_path):
    experiment = get_experiment("tnet.fmow")
    weights = _StartWeights()
    status, record = run_variant(
        experiment, experiment.variant("TNet 896"), "smoke", tmp_path, wandb="disabled", callbacks=[weights]
    )
    assert status == "finished"
    (stage_1,) = tmp_path.glob("tnet.fmow/TNet 448/*/checkpoints/last.ckpt")
    assert record["starts_from"] == {"variant": "TNet 448", "checkpoint": str(stage_1)}
    assert len(weights.starts) == 2, "TNet 448 trains first, then TNet 896"
    for key, value in weights.ends[0].items():
        torch.testing.assert_close(weights.starts[1][key], value, msg=key)
    assert record["test"]["locations"] == 4


def test_a_row_cannot_both_rescore_and_start_from_weights():
    with pytest.raises(ValueError, match="trains nothing"):
        Variant("a", rescores="b", starts_from="c")
    with pytest.raises(ValueError, match="cannot start from its own weights"):
        Variant("a", starts_from="a")


def test_location_sweep_rescores_one_network_with_more_locations(tmp_path):
    experiment = get_experiment("tnet.locations")
    records = [run_variant(experiment, v, "smoke", tmp_path, wandb="disabled")[1] for v in experiment.variants()[:3]]
    assert [r["test"]["locations"] for r in records] == [2, 1, 2]
    assert records[1]["rescores"]["variant"] == "TNet"
    assert records[1]["cost"]["gflops"] < records[2]["cost"]["gflops"]
    table = locations_table(records)
    assert "| smoke | 1 |" in table and "| smoke | 2 |" in table


def test_measured_flops_are_the_flop_counters_on_one_image(tmp_path):
    experiment = get_experiment("tnet.megapixel_digits")
    _, record = run_variant(experiment, experiment.variant("full resolution"), "smoke", tmp_path, wandb="disabled")
    recipe = experiment.recipe("smoke")
    module = experiment.build_module(experiment.variant("full resolution"), recipe, experiment.build_datamodule(recipe))
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        module.eval()(torch.zeros(1, 3, 128, 128))
    assert record["cost"]["gflops"] == pytest.approx(counter.get_total_flops() / 1e9)
    assert record["cost"]["params"] == sum(p.numel() for p in module.parameters())


def test_paper_recipes_are_the_official_commands():
    # fMoW/results_replication.txt and ImageNet/results_replication.txt of Tpap/TNet.
    fmow = get_experiment("tnet.fmow")
    stage_1 = fmow.recipe("paper", variant=fmow.variant("TNet 448"))
    assert (stage_1["image_size"], stage_1["locations"], stage_1["max_epochs"], stage_1["lr"]) == (448, (2,), 40, 1e-3)
    assert (stage_1["ce_weight"], stage_1["reinforce_weight"], stage_1["reinforce_scale"]) == (0.2, 0.2, 0.1)
    assert (stage_1["dropout"], stage_1["drop_path_rate"], stage_1["batch_size"]) == (0.5, 0.3, 64)
    stage_2 = fmow.recipe("paper", variant=fmow.variant("TNet 896"))
    assert (stage_2["image_size"], stage_2["locations"], stage_2["max_epochs"], stage_2["feature_levels"]) == (
        896,
        (2, 1),
        10,
        2,
    )
    assert (stage_2["ce_weight"], stage_2["reinforce_weight"], stage_2["drop_path_rate"]) == (0.05, 0.05, 0.5)
    baselines = {
        "EN-B0 cropped 224": (224, 65, 64, 0.75, 0.5, "cropped"),
        "EN-B0 224": (224, 60, 64, 0.75, 0.5, "full"),
        "EN-B0 448": (448, 30, 32, 0.75, 0.3, "full"),
        "EN-B0 896": (896, 30, 32, 0.3, 0.2, "full"),
    }
    for name, expected in baselines.items():
        r = fmow.recipe("paper", variant=fmow.variant(name))
        keys = ("image_size", "max_epochs", "batch_size", "dropout", "drop_path_rate", "crop")
        assert tuple(r[k] for k in keys) == expected, name
        assert (r["lr"], r["baseline_l2_weight"]) == (1e-3, 1e-5)
    imagenet = IMAGENET_RECIPES["paper"]
    assert (imagenet["max_epochs"], imagenet["lr"], imagenet["batch_size"], imagenet["locations"]) == (
        200,
        1e-4,
        64,
        (3,),
    )
    assert (imagenet["ce_weight"], imagenet["reinforce_weight"], imagenet["keep_prob"]) == (0.3, 0.3, 0.5)
    assert FMOW_RECIPES["paper"]["data"] == "fmow"


def test_start_chains_must_end_in_a_training_row_without_loops(tmp_path):
    from experiments.runner import _check_start_chain

    class Chain:
        name = "chain"

        def __init__(self, rows):
            self.rows = {row.name: row for row in rows}

        def variant(self, name):
            return self.rows[name]

    loop = Chain([Variant("a", starts_from="b"), Variant("b", starts_from="a")])
    with pytest.raises(ValueError, match="start from each other's weights: a -> b -> a"):
        _check_start_chain(loop, loop.variant("a"))
    rescoring = Chain([Variant("a", starts_from="b"), Variant("b", rescores="c"), Variant("c")])
    with pytest.raises(ValueError, match="'a' starts from the weights of 'b', which trains nothing"):
        _check_start_chain(rescoring, rescoring.variant("a"))


def test_classification_runs_get_no_segmentation_media_callback():
    from datamodules.megapixel_digits import MegapixelDigitsDataModule
    from datamodules.synthetic import SyntheticSegmentationDataModule
    from experiments.tracking import WandbSegmentationMedia, wandb_callbacks

    assert wandb_callbacks(MegapixelDigitsDataModule(num_train=1, num_val=1, num_test=1)) == []
    (media,) = wandb_callbacks(SyntheticSegmentationDataModule(num_classes=3))
    assert isinstance(media, WandbSegmentationMedia)
