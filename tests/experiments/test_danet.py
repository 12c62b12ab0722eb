"""DANet experiments: registered tables, recipes, what each row builds, the official test protocols."""

import pytest

from datamodules.cityscapes import CityscapesDataModule
from experiments.base import experiment_names, get_experiment
from experiments.builders import CAMVID_SMALL
from experiments.danet import CITYSCAPES_MS_SCALES, backbone_name, evaluation
from lightning_modules.danet import DANet
from lightning_modules.fcn import FCN

NAMES = ("ablation", "strategies", "cityscapes_test", "pascal_context", "coco_stuff", "pascal_voc")
# The paper profile with a network that builds in a blink; the data stays the paper's.
TINY_BACKBONE = {"backbone": "test_resnet", "pretrained": False}


def test_experiments_are_registered_with_paper_numbers():
    for name in NAMES:
        assert f"danet.{name}" in experiment_names()
        experiment = get_experiment(f"danet.{name}")
        assert {"smoke", "paper"} <= set(experiment.recipes)
        variants = experiment.variants()
        rescored = {variant.rescores for variant in variants}
        # A row without a paper mIoU trains the network that a multi-scale row with one scores.
        assert all(any(n.metric == "mIoU" for n in v.paper) or v.name in rescored for v in variants)
        for variant in variants:
            multi_scale = variant.params.get("multi_scale", False)
            assert multi_scale == variant.name.endswith("+MS") == (variant.rescores is not None), variant.name
            if multi_scale:
                trained = experiment.variant(variant.rescores)
                assert dict(variant.params) == {**trained.params, "multi_scale": True}
    voc = [v.name for v in get_experiment("danet.pascal_voc").variants()]
    assert voc == [f"{row}{test}" for row in ("FCN-R50", "DANet-R50", "DANet-R101") for test in ("", "+MS")]
    ablation = get_experiment("danet.ablation")
    assert set(ablation.recipes) == {"smoke", "small", "paper"}
    names = [v.name for v in ablation.variants()]
    assert names == [f"{head}-R{depth}" for depth in (50, 101) for head in ("FCN", "PAM", "CAM", "DANet")]
    assert ablation.variant("FCN-R101").paper[0].value == 72.54
    assert "CASIA-IVA-Lab/DANet#27" in ablation.variant("FCN-R50").paper[0].source


def test_cityscapes_test_row_has_table3_per_class_iou():
    # Table 3 (image in junfu1115/DANet's initial commit): DANet-101 test IoU per class, road → bicycle.
    table3 = {
        "road": 98.6,
        "sidewalk": 86.1,
        "building": 93.5,
        "wall": 56.1,
        "fence": 63.3,
        "pole": 69.7,
        "traffic light": 77.3,
        "traffic sign": 81.3,
        "vegetation": 93.9,
        "terrain": 72.9,
        "sky": 95.7,
        "person": 87.3,
        "rider": 72.9,
        "car": 96.2,
        "truck": 76.8,
        "bus": 89.4,
        "train": 86.5,
        "motorcycle": 72.2,
        "bicycle": 78.2,
    }
    row = get_experiment("danet.cityscapes_test").variant("DANet-R101+DA+MG+MS")
    per_class = {n.metric.removeprefix("IoU/"): n for n in row.paper if n.metric.startswith("IoU/")}
    assert {name: n.value for name, n in per_class.items()} == table3
    # In train-id order and named as the DataModule names its classes, i.e. as a run's val/IoU/<class>.
    assert tuple(per_class) == CityscapesDataModule.class_names and len(per_class) == 19
    source = "Table 3 [P-img] (junfu1115/DANet initial commit, img/tab3.png)"
    assert all(n.source == source for n in per_class.values())
    miou = [n for n in row.paper if n.metric == "mIoU"]
    assert miou[0].value == 81.5 and miou[0].source.startswith(source)
    assert sum(table3.values()) / len(table3) == pytest.approx(81.5, abs=0.06)


def test_paper_recipes():
    ablation = get_experiment("danet.ablation").recipe("paper")
    assert (ablation["crop_size"], ablation["base_size"], ablation["batch_size"]) == (768, 1024, 8)
    assert (ablation["lr"], ablation["dual_lr"], ablation["max_epochs"]) == (0.01, 0.003, 180)
    assert ablation["scale_range"] == (1.0, 1.0) and ablation["aux_weight"] == 0.0
    strategies = get_experiment("danet.strategies").recipe("paper")
    assert (strategies["max_epochs"], strategies["scale_range"], strategies["multi_grid"]) == (
        240,
        (0.75, 2.0),
        (4, 8, 16),
    )
    # The other datasets (experiments.danet's docstring): batch 16, lr 0.001 (PyTorch-Encoding's pcontext /
    # pascal_aug default), base 520, crop 480 (COCO-Stuff 512), 240 epochs (COCO-Stuff 180, paper Sec. 4.1);
    # evaluation windows of the crop size moved by 2/3 of it, PyTorch-Encoding's scales 0.5-1.75.
    keys = ("data", "base_size", "crop_size", "batch_size", "max_epochs", "lr", "eval_window", "eval_stride")
    expected = {
        "pascal_context": ("pascal_context_60", 520, 480, 16, 240, 0.001, 480, 320),
        "coco_stuff": ("coco_stuff_10k", 520, 512, 16, 180, 0.001, 512, 341),
        "pascal_voc": ("voc", 520, 480, 16, 240, 0.001, 480, 320),
    }
    for name, values in expected.items():
        recipe = get_experiment(f"danet.{name}").recipe("paper")
        assert tuple(recipe[key] for key in keys) == values, name
        assert recipe["ms_scales"] == (0.5, 0.75, 1.0, 1.25, 1.5, 1.75), name
    # Cityscapes multi-scale test of the official test.py.
    assert CITYSCAPES_MS_SCALES == (0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0, 2.2)


def test_small_profile_is_the_camvid_recipe_with_one_learning_rate():
    small = get_experiment("danet.ablation").recipe("small")
    assert {key: small[key] for key in CAMVID_SMALL} == CAMVID_SMALL
    assert small["dual_lr"] == small["lr"]


def test_ablation_rows_build_their_heads_losses_and_learning_rates(empty_data_root):
    experiment = get_experiment("danet.ablation")
    recipe = experiment.recipe("smoke")
    datamodule = experiment.build_datamodule(recipe)
    expected = {"FCN": (None, None), "PAM": (True, False), "CAM": (False, True), "DANet": (True, True)}
    for variant in experiment.variants():
        module = experiment.build_module(variant, recipe, datamodule)
        network = module.network
        label = variant.name.split("-")[0]
        if label == "FCN":
            assert isinstance(network, FCN) and network.align_corners
            assert module.loss_weights == {"out": 1.0}
            continue
        assert isinstance(network, DANet)
        assert (network.head.sa is not None, network.head.sc is not None) == expected[label]
        assert module.loss_weights == ({"out": 1.0, "pam": 1.0, "cam": 1.0} if label == "DANet" else {"out": 1.0})
        assert module.eval_mode == "single"
    paper = experiment.recipe("paper", TINY_BACKBONE)
    paper_datamodule = experiment.build_datamodule(paper)
    assert experiment.build_module(experiment.variant("DANet-R101"), paper, paper_datamodule).hparams.lr == 0.003
    assert experiment.build_module(experiment.variant("PAM-R101"), paper, paper_datamodule).hparams.lr == 0.01


def test_paper_rows_use_the_row_resnet_with_torchvision_weights():
    recipe = get_experiment("danet.ablation").recipe("paper")
    assert backbone_name(101, recipe) == "resnet101.tv_in1k"
    assert backbone_name(101, {**recipe, "backbone": "test_resnet"}) == "test_resnet"


def test_strategies_rows_change_augmentation_multi_grid_and_test_protocol(empty_data_root):
    experiment = get_experiment("danet.strategies")
    modules = {}
    for variant in experiment.variants():
        recipe = experiment.recipe("paper", TINY_BACKBONE, variant)
        datamodule = experiment.build_datamodule(recipe)
        modules[variant.name] = (experiment.build_module(variant, recipe, datamodule), datamodule)
    baseline, baseline_data = modules["DANet-R101"]
    assert isinstance(baseline_data, CityscapesDataModule) and baseline_data.scale_range == (1.0, 1.0)
    assert modules["DANet-R101+DA"][1].scale_range == (0.75, 2.0)
    assert baseline.network.backbone.body.layer4[0].conv1.dilation == (2, 2)
    assert modules["DANet-R101+DA+MG"][0].network.backbone.body.layer4[0].conv1.dilation == (4, 4)
    single = {
        "scales": (1.0,),
        "flip": True,
        "window": 768,
        "stride": 512,
        "combine": "exp_sum",
        "last_window": "padded",
        "align_corners": True,
    }
    assert (baseline.eval_mode, baseline.eval_kwargs) == ("multiscale", single)
    ms = modules["DANet-R101+DA+MG+MS"][0]
    assert ms.eval_kwargs == {**single, "scales": CITYSCAPES_MS_SCALES, "window": 1024}
    with pytest.raises(FileNotFoundError, match="Cityscapes: the image folder of split 'train' not found"):
        baseline_data.setup("fit")


def test_evaluation_without_flip_or_window_is_a_single_pass():
    recipe = get_experiment("danet.strategies").recipe("smoke")
    assert evaluation(recipe, multi_scale=False) == ("single", {})
    mode, kwargs = evaluation(recipe, multi_scale=True)
    assert mode == "multiscale" and kwargs["flip"] and "stride" not in kwargs and kwargs["window"] is None
