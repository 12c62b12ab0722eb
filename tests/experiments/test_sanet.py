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


@pytest.mark.parametrize(
    ("name", "data_class", "epochs", "lr"),
    [
        ("sanet.ablation", "PascalContext59DataModule", 20, 1e-3),
        ("sanet.fcn_se", "PascalContext59DataModule", 20, 1e-3),
        ("sanet.pascal_context", "PascalContext59DataModule", 80, 1e-3),
        ("sanet.pascal_voc", "VOCAugDataModule", 80, 1e-4),
    ],
)
def test_paper_recipes_build_the_published_training_setup(name, data_class, epochs, lr):
    # Sec. 4.1 / 4.4: SGD (momentum 0.9, weight decay 1e-4), poly 0.9, batch 16, head at 10× the backbone's rate,
    # α = 0.2, β = 0.8; Context lr 1e-3 for 80 epochs (20 in the ablations), VOC lr 1e-4 for 80 epochs. EncNet's
    # base 520, crop 480 and scales 0.5-2.0 are the module's stated assumption.
    experiment = get_experiment(name)
    variant = next(v for v in experiment.variants() if v.name.startswith("SANet"))
    recipe = experiment.recipe("paper", {"backbone": "test_resnet", "pretrained": False}, variant)
    datamodule = experiment.build_datamodule(recipe)
    assert type(datamodule).__name__ == data_class and recipe["max_epochs"] == epochs
    assert (datamodule.base_size, datamodule.crop_size, datamodule.batch_size) == (520, 480, 16)
    assert datamodule.scale_range == (0.5, 2.0)
    module = experiment.build_module(variant, recipe, datamodule)
    hparams = {key: module.hparams[key] for key in ("lr", "head_lr_mult", "momentum", "weight_decay", "poly_power")}
    assert hparams == {"lr": lr, "head_lr_mult": 10.0, "momentum": 0.9, "weight_decay": 1e-4, "poly_power": 0.9}
    assert isinstance(module, SANetModule) and (module.alpha, module.beta) == (0.2, 0.8)
