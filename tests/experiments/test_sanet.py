"""The SANet experiments: published numbers, generated sweeps, which loss each row trains with, the COCO row's
checkpoint."""

import pytest
import torch

from experiments.base import Variant, get_experiment
from experiments.builders import synthetic_datamodule
from experiments.sanet import complexity_rows
from lightning_modules.sanet import SANetModule

KAIST = "awesome-davian/awesome-reviews-kaist .gitbook/assets/3"


def paper_numbers(variant: Variant) -> dict[str, float]:
    numbers = {n.metric: n.value for n in variant.paper}
    assert len(numbers) == len(variant.paper), f"{variant.name}: one number per metric"
    return numbers


def test_table3_rows_carry_the_table_image_numbers():
    # Table 3 (PASCAL Context 59, 20 epochs), read from the paper's table image: (mIoU, pixel accuracy) in %.
    table = {
        "FCN-R50": (44.9, 76.2),
        "FCN-SE-R50": (44.6, 76.0),
        "SANet-R50": (49.0, 78.9),
        "FCN-R101": (45.6, 76.7),
        "FCN-SE-R101": (45.7, 76.6),
        "SANet-R101": (50.1, 79.2),
    }
    experiment = get_experiment("sanet.fcn_se")
    rows = {v.name: paper_numbers(v) for v in experiment.variants()}
    assert rows == {name: {"mIoU": miou, "pixel_acc": acc} for name, (miou, acc) in table.items()}
    # The text's gains over the dilated FCN follow from the absolute values.
    for depth, gain in ((50, 4.1), (101, 4.5)):
        assert rows[f"SANet-R{depth}"]["mIoU"] - rows[f"FCN-R{depth}"]["mIoU"] == pytest.approx(gain)
    for variant in experiment.variants():
        assert all(n.source == f"Table 3 [P-img] ({KAIST}/table3.png)" for n in variant.paper)


def test_table2_numbers_are_attributed_to_the_60_class_protocol():
    # The Table 2 image has SANet-R101 52.1 and SANet-EffNet-b7 54.4; 53.0 is stated only in the text.
    context60 = get_experiment("sanet.pascal_context60")
    for name, value in (("SANet-R101", 52.1), ("SANet-EffNet-b7", 54.4)):
        (number,) = context60.variant(name).paper
        assert (number.metric, number.value) == ("mIoU", value)
        assert number.source.startswith(f"Table 2 [P-img] ({KAIST}/table2.png)")
    context59 = get_experiment("sanet.pascal_context")
    (number,) = context59.variant("SANet-R101").paper
    assert (number.metric, number.value) == ("mIoU", 53.0)
    assert "[P-img]" not in number.source and "body text" in number.source
    assert context59.variant("SANet-EffNet-b7").paper == ()


def test_loss_weight_sweep_is_fig4s_points():
    # Fig. 4 read off the plot: mIoU by α with β = 0.8, then by β with α = 0.2; (0.2, 0.8) is on both curves.
    alpha_curve = {0.0: 47.7, 0.1: 48.7, 0.2: 49.0, 0.4: 48.8, 0.6: 48.6, 0.8: 48.3, 1.0: 47.9}
    beta_curve = {0.2: 48.3, 0.4: 48.6, 0.6: 48.6, 0.8: 49.0, 1.0: 48.8}
    variants = get_experiment("sanet.loss_weights").variants()
    points = [(v.params["alpha"], v.params["beta"], paper_numbers(v)["mIoU"]) for v in variants]
    assert points[:7] == [(alpha, 0.8, miou) for alpha, miou in alpha_curve.items()]
    assert points[7:] == [(0.2, beta, miou) for beta, miou in beta_curve.items() if beta != 0.8]
    assert [v.name for v in variants[:2]] == ["alpha=0.0 beta=0.8", "alpha=0.1 beta=0.8"]
    for variant in variants:
        (number,) = variant.paper
        assert number.source.startswith(f"Fig. 4 [P-img] ({KAIST}/fig4.png)")
        assert "±0.05, read off the plot" in number.source


def test_table1_keeps_the_text_gains():
    # Table 1 was not found as an image: only the body text's gains over FCN exist.
    sanet = get_experiment("sanet.ablation").variant("SANet")
    assert paper_numbers(sanet) == {"mIoU_gain_over_FCN": 6.0, "pixel_acc_gain_over_FCN": 2.7}


@pytest.mark.parametrize("name", ["sanet.fcn_se", "sanet.loss_weights"])
def test_table3_and_fig4_train_twenty_epochs(name):
    # Table 3 and Fig. 4: every model / point trained 20 epochs on Context 59 (Sec. 4.1).
    experiment = get_experiment(name)
    for variant in experiment.variants():
        recipe = experiment.recipe("paper", variant=variant)
        assert (recipe["data"], recipe["max_epochs"], recipe["lr"]) == ("pascal_context_59", 20, 1e-3)


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
    module = sweep.build_module(sweep.variant("alpha=0.6 beta=0.8"), sweep.recipe("smoke"), datamodule)
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
def test_paper_recipes_build_the_published_training_setup(name, data_class, epochs, lr, empty_data_root):
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
