"""Gated-SCNN experiments: registered tables, published numbers, recipes, the parameter table, the submission."""

import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from datamodules.cityscapes import CityscapesDataModule
from experiments.__main__ import main
from experiments.base import experiment_names, get_experiment
from experiments.gscnn import (
    CITYSCAPES_CLASSES,
    TABLE1_IOU,
    TABLE1_MIOU,
    TABLE2_F,
    TABLE2_MEAN,
    THRESHOLD_PIXELS,
    parameter_counts,
    parameter_table,
    weights_kwargs,
)
from experiments.results import load_records, paper_table
from experiments.runner import run_variant
from experiments.submission import submission_name, to_label_ids, write_submission

NAMES = ("cityscapes", "ablation", "dual_task", "backbones", "cityscapes_test")


def test_experiments_are_registered_with_their_rows():
    assert {f"gscnn.{name}" for name in NAMES} <= set(experiment_names())
    rows = {name: [v.name for v in get_experiment(f"gscnn.{name}").variants()] for name in NAMES}
    assert rows["cityscapes"] == ["DeepLabV3+", "GSCNN"]
    assert rows["ablation"] == ["Baseline-R101", "GCL-R101", "GCL+Gradients-R101"]
    assert rows["dual_task"] == ["Baseline-R101", "GCL-R101", "GCL+DualTask-R101"]
    assert rows["backbones"] == [f"{kind}-{b}" for b in ("R50", "R101", "WRN38") for kind in ("Baseline", "GSCNN")]
    assert set(get_experiment("gscnn.cityscapes").recipes) == {"smoke", "small", "paper"}
    ablation = get_experiment("gscnn.ablation")
    assert ablation.variant("GCL-R101").params == {"backbone": "resnet101", "image_gradients": False}
    assert get_experiment("gscnn.dual_task").variant("GCL-R101").params == {"backbone": "resnet101", "dual_task": False}


def test_table1_and_table2_rows_average_to_their_published_means():
    # The repository's table image prints each row's mean beside its 19 classes: they agree to rounding.
    assert CityscapesDataModule.class_names == CITYSCAPES_CLASSES
    for row in ("DeepLabV3+", "GSCNN"):
        assert sum(TABLE1_IOU[row]) / 19 == pytest.approx(TABLE1_MIOU[row], abs=0.06)
        for pixels, mean in zip((3, 5, 9, 12), TABLE2_MEAN[row], strict=True):
            assert sum(TABLE2_F[row][pixels]) / 19 == pytest.approx(mean, abs=0.06), (row, pixels)
    gscnn = get_experiment("gscnn.cityscapes").variant("GSCNN")
    numbers = {n.metric: n.value for n in gscnn.paper}
    assert numbers["mIoU"] == 80.8 and numbers["IoU/pole"] == 70.8
    assert numbers["boundary_F/0.00088"] == 73.6 and numbers["boundary_F/0.005/bicycle"] == 82.2
    assert numbers["crop_mIoU/400"] == 69.2
    assert len(gscnn.paper) == 1 + 19 + 4 + 4 * 19 + 4
    assert list(THRESHOLD_PIXELS.values()) == [3, 5, 9, 12]


def test_paper_recipe_is_the_released_codes_with_the_papers_settings_a_set_away():
    recipe = get_experiment("gscnn.cityscapes").recipe("paper")
    assert (recipe["crop_size"], recipe["batch_size"], recipe["max_epochs"]) == (720, 8, 175)
    assert (recipe["lr"], recipe["head_lr_mult"], recipe["poly_power"], recipe["poly_interval"]) == (
        0.01,
        1.0,
        1.0,
        "epoch",
    )
    assert recipe["scale_range"] == (0.5, 2.0) and recipe["crop_factors"] == (0, 200, 300, 400)
    assert (recipe["dual_mode"], recipe["edge_bce"], recipe["onehot_offset"], recipe["canny_mode"]) == (
        "paper",
        "paper",
        0,
        "device",
    )
    paper_text = {"crop_size": 800, "batch_size": 16, "max_epochs": 230, "poly_power": 0.9, "poly_interval": "step"}
    assert get_experiment("gscnn.cityscapes").recipe("paper", paper_text)["poly_interval"] == "step"
    assert get_experiment("gscnn.ablation").recipe("paper")["max_epochs"] == 100
    with pytest.raises(ValueError, match=r"--set dual_mode='official': expected 'paper' or 'released'"):
        get_experiment("gscnn.cityscapes").recipe("paper", {"dual_mode": "official"})
    with pytest.raises(ValueError, match=r"--set onehot_offset=2: expected 0 \(fixed\) or 1 \(released\)"):
        get_experiment("gscnn.cityscapes").recipe("paper", {"onehot_offset": 2})


def test_wider_resnet_needs_a_local_file_for_imagenet_weights():
    recipe = get_experiment("gscnn.cityscapes").recipe("paper")
    with pytest.raises(ValueError, match=r"WideResNet-38's ImageNet weights are not on any hub: --set wrn_weights"):
        weights_kwargs("wider_resnet38", recipe)
    assert weights_kwargs("wider_resnet38", {**recipe, "pretrained": False}) == {
        "pretrained": False,
        "pretrained_path": None,
    }
    with_file = {**recipe, "wrn_weights": "wrn.pth"}
    assert weights_kwargs("wider_resnet38", with_file) == {"pretrained": False, "pretrained_path": "wrn.pth"}
    # The WRN file never reaches a timm backbone: the ResNet rows of the same command take the hub's weights.
    assert weights_kwargs("resnet101.tv_in1k", with_file) == {"pretrained": True, "pretrained_path": None}


def test_table5_parameter_increase_matches_the_paper_for_each_backbone():
    expected = {"resnet50": 0.43, "resnet101": 0.29, "wider_resnet38": 0.13}
    for backbone, paper in expected.items():
        baseline, gscnn = parameter_counts(backbone)
        assert 100 * (gscnn - baseline) / baseline == pytest.approx(paper, abs=0.01), backbone
    assert parameter_counts("wider_resnet38") == (137_103_936, 137_278_190)
    table = parameter_table().splitlines()
    assert "| wider_resnet38 | 137,103,936 | 137,278,190 | 174,254 | 0.127 | 0.13 |" in table
    assert "| resnet50.tv_in1k | 40,341,824 | 40,514,030 | 172,206 | 0.427 | 0.43 |" in table


def test_released_dual_task_loss_refuses_a_non_cityscapes_class_count(tmp_path):
    experiment = get_experiment("gscnn.cityscapes")
    with pytest.raises(ValueError, match='dual_mode="released"'):
        run_variant(
            experiment, experiment.variant("GSCNN"), "smoke", tmp_path, {"dual_mode": "released"}, wandb="disabled"
        )


def test_table_prints_paper_vs_measured_boundary_f_per_threshold(tmp_path, capsys):
    experiment = get_experiment("gscnn.cityscapes")
    _, record = run_variant(experiment, experiment.variant("GSCNN"), "smoke", tmp_path, wandb="disabled")
    thresholds = ("0.00088", "0.001875", "0.00375", "0.005")
    assert all(0.0 <= record["metrics"][f"val/boundary_F/{t}"] <= 1.0 for t in thresholds)
    assert set(record["metrics"]) >= {"val/crop_mIoU/0", "val/crop_mIoU/4"}
    assert set(record["per_class"]) == {"val/IoU", *(f"val/boundary_F/{t}" for t in thresholds)}
    records, _ = load_records(tmp_path, experiment.name)
    table = paper_table(experiment, records, tmp_path)
    measured = 100 * record["metrics"]["val/boundary_F/0.00088"]
    source = "Table 2 [V-asset] nv-tlabs/GSCNN table.png, 3 px"
    assert f"| boundary_F/0.00088 | 73.6 | {source} | {measured:.1f} |" in table
    assert "#### GSCNN: boundary_F/0.005 per class (paper: Table 2" in table
    assert "#### DeepLabV3+: other published metrics" in table
    assert main(["table", "gscnn.cityscapes", "--runs-dir", str(tmp_path)]) == 0
    assert "| crop_mIoU/200 | 78.1 |" in capsys.readouterr().out


def write_cityscapes(root, splits=("train", "val", "test"), size=(40, 48)):
    """A Cityscapes tree of 2 images per split (one city), label ids of road / car / sky stripes and void."""
    rng = np.random.default_rng(0)
    for split in splits:
        for frame in range(2):
            stem = f"lindau_000000_{frame:06d}"
            image = root / "leftImg8bit" / split / "lindau" / f"{stem}_leftImg8bit.png"
            label = root / "gtFine" / split / "lindau" / f"{stem}_gtFine_labelIds.png"
            image.parent.mkdir(parents=True, exist_ok=True)
            label.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(rng.integers(0, 256, (*size, 3), dtype=np.uint8)).save(image)
            stripes = np.repeat(np.array([7, 26, 23, 0], dtype=np.uint8), size[0] // 4)[:, None]
            Image.fromarray(np.broadcast_to(stripes, size).copy()).save(label)


def test_submission_writes_label_id_pngs_of_every_test_image_and_resumes(tmp_path, capsys):
    root = tmp_path / "cityscapes"
    write_cityscapes(root)
    experiment = get_experiment("gscnn.cityscapes_test")
    tiny = {
        "root": str(root),
        "backbone": "test_resnet",
        "pretrained": False,
        "max_epochs": 1,
        "crop_size": 32,
        "base_size": 40,
        "batch_size": 2,
        "num_workers": 0,
        "check_val_every_n_epoch": 1,
        "crop_factors": (0,),
    }
    _, record = run_variant(experiment, experiment.variant("GSCNN"), "paper", tmp_path / "runs", tiny, wandb="disabled")
    checkpoint = tmp_path / "runs" / experiment.name / "GSCNN" / record["run_id"] / "checkpoints" / "last.ckpt"
    out = tmp_path / "submission"
    assert write_submission(checkpoint, out, progress=False) == {"written": 2, "skipped": 0}
    names = sorted(path.name for path in out.glob("*.png"))
    assert names == ["lindau_000000_000000_labelIds.png", "lindau_000000_000001_labelIds.png"]
    for name in names:
        prediction = np.asarray(Image.open(out / name))
        assert prediction.shape == (40, 48) and prediction.dtype == np.uint8
        assert set(np.unique(prediction)) <= {7, 8, 11, 12, 13, 17, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 31, 32, 33}
    # Interrupted after the first image: only the missing one is predicted again.
    (out / names[1]).unlink()
    assert main(["submit", "--ckpt", str(checkpoint), "--out", str(out)]) == 0
    assert "1 PNGs written, 1 there before" in capsys.readouterr().out
    # Another network's predictions never land in the same folder.
    other = checkpoint.parent / "best.ckpt"
    assert main(["submit", "--ckpt", str(other), "--out", str(out)]) == 2
    assert "would mix two networks. Use another --out." in capsys.readouterr().err


def test_submission_needs_a_cityscapes_run(tmp_path):
    experiment = get_experiment("gscnn.cityscapes")
    _, record = run_variant(experiment, experiment.variant("DeepLabV3+"), "smoke", tmp_path, wandb="disabled")
    checkpoint = tmp_path / experiment.name / "DeepLabV3+" / record["run_id"] / "checkpoints" / "last.ckpt"
    with pytest.raises(ValueError, match=r"trained on 'synthetic': a Cityscapes submission needs"):
        write_submission(checkpoint, tmp_path / "out", progress=False)


def test_train_ids_become_label_ids():
    train_ids = np.arange(19, dtype=np.int64).reshape(1, 19)
    expected = [7, 8, 11, 12, 13, 17, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 31, 32, 33]
    assert to_label_ids(train_ids).tolist() == [expected]
    with pytest.raises(ValueError, match=re.escape("train ids 0..18, got values 0..19")):
        to_label_ids(np.array([0, 19]))
    assert submission_name(Path("aachen_000001_000019_leftImg8bit.png")) == "aachen_000001_000019_labelIds.png"
    with pytest.raises(ValueError, match=r"should end with _leftImg8bit\.png"):
        submission_name(Path("a.png"))


def test_table5_increases_are_measured_from_both_rows_of_a_profile():
    from experiments.gscnn import increase_table

    def record(variant, miou, boundary):
        metrics = {"val/mIoU": miou, **{f"val/boundary_F/{t:g}": boundary for t in THRESHOLD_PIXELS}}
        return {"variant": variant, "profile": "smoke", "metrics": {**metrics, "val/crop_mIoU/200": 0.0}}

    lines = increase_table([record("Baseline-R50", 0.70, 0.60), record("GSCNN-R50", 0.725, 0.64)]).splitlines()
    assert "| resnet50.tv_in1k | smoke | +2.5 | +1.7 | +4.0 | +3.2 |" in lines
    assert "| resnet101.tv_in1k | not run | — | +2.0 | — | +3.5 |" in lines
    only_gscnn = increase_table([record("GSCNN-WRN38", 0.8, 0.8)]).splitlines()
    assert "| wider_resnet38 | not run | — | +0.9 | — | +2.1 |" in only_gscnn
