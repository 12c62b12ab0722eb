"""The SANet experiments: generated sweeps, which loss each row trains with, the COCO row's checkpoint."""

import pytest
import torch

from experiments.base import get_experiment
from experiments.builders import synthetic_datamodule
from experiments.sanet import complexity_rows
from lightning_modules.sanet import SANetModule


def test_loss_weight_sweep_is_generated():
    variants = get_experiment("sanet.loss_weights").variants()
    pairs = [(v.params["alpha"], v.params["beta"]) for v in variants]
    grid = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)
    assert pairs[:6] == [(a, 0.8) for a in grid]
    assert pairs[6:] == [(0.2, b) for b in grid if b != 0.8]
    assert variants[0].name == "alpha=0.0 beta=0.8"


def test_rows_train_with_their_losses():
    experiment = get_experiment("sanet.fcn_se")
    recipe = experiment.recipe("smoke")
    datamodule = synthetic_datamodule(recipe)
    modules = {v.name: experiment.build_module(v, recipe, datamodule) for v in experiment.variants()[:3]}
    assert not isinstance(modules["FCN-R50"], SANetModule)  # the baseline's plain cross-entropy
    assert modules["FCN-R50"].loss_weights == {"out": 1.0}
    sanet = modules["SANet-R50"]
    assert isinstance(sanet, SANetModule) and (sanet.alpha, sanet.beta) == (0.2, 0.8)
    sweep = get_experiment("sanet.loss_weights")
    module = sweep.build_module(sweep.variants()[3], sweep.recipe("smoke"), datamodule)
    assert (module.alpha, module.beta) == (0.6, 0.8)


def test_coco_row_needs_and_loads_a_checkpoint(tmp_path):
    experiment = get_experiment("sanet.pascal_voc")
    coco = experiment.variant("SANet-R101-COCO")
    overrides = {"backbone": "test_resnet", "pretrained": False}
    recipe = experiment.recipe("paper", overrides)
    datamodule = synthetic_datamodule(experiment.recipe("smoke"))
    with pytest.raises(ValueError, match="coco_checkpoint=PATH"):
        experiment.build_module(coco, recipe, datamodule)
    pretrained = experiment.build_module(coco, experiment.recipe("smoke"), datamodule)
    path = tmp_path / "coco.ckpt"
    torch.save({"state_dict": {f"network.{k}": v for k, v in pretrained.network.state_dict().items()}}, path)
    module = experiment.build_module(
        coco, experiment.recipe("paper", {**overrides, "coco_checkpoint": str(path)}), datamodule
    )
    for key, value in pretrained.network.state_dict().items():
        torch.testing.assert_close(module.network.state_dict()[key], value)


def test_complexity_rows_add_up():
    (row,) = [r for r in complexity_rows(59, num_convs=(2,)) if r["model"] == "SANet-R101"]
    parts = row["backbone"] + row["sa_heads"] + row["dense_head"] + row["category"]
    assert row["total"] == parts == 70_842_322
    assert row["without_dense"] == row["total"] - row["dense_head"]
