import math

import lightning as L
import pytest
import torch
import torch.nn.functional as F
from lightning.pytorch.callbacks import Callback
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from lightning_modules.fcn import FCN
from lightning_modules.segmentation import SegmentationModule


class ConstantOutput(nn.Module):
    """A network that returns a fixed dict, to test the module's checks."""

    def __init__(self, outputs):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(()))
        self.outputs = outputs

    def forward(self, images):
        return {key: value * self.weight for key, value in self.outputs.items()}


def fixed_batch(num_classes=4, size=32, batch=4, seed=0):
    """Blocky labels whose class sets the image colour: learnable at output stride 8."""
    generator = torch.Generator().manual_seed(seed)
    blocks = torch.randint(0, num_classes, (batch, size // 8, size // 8), generator=generator)
    target = blocks.repeat_interleave(8, dim=1).repeat_interleave(8, dim=2)
    colours = torch.randn(num_classes, 3, generator=generator)
    images = colours[target].permute(0, 3, 1, 2) + 0.3 * torch.randn(batch, 3, size, size, generator=generator)
    target[:, :2] = 255
    return images, target


def trainer(max_steps=-1, callbacks=(), max_epochs=None):
    return L.Trainer(
        max_steps=max_steps,
        max_epochs=max_epochs,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
        callbacks=list(callbacks),
    )


def test_loss_is_weighted_sum_of_cross_entropies():
    images, target = fixed_batch()
    network = FCN(4, backbone="test_resnet").eval()
    module = SegmentationModule(network, 4, loss_weights={"out": 1.0, "aux": 0.4})
    with torch.no_grad():
        outputs = network(images)
        losses = module.compute_losses(outputs, target)
    expected_out = F.cross_entropy(outputs["out"], target, ignore_index=255)
    expected_aux = F.cross_entropy(outputs["aux"], target, ignore_index=255)
    torch.testing.assert_close(losses["loss"], expected_out + 0.4 * expected_aux)
    torch.testing.assert_close(losses["loss_aux"], 0.4 * expected_aux)


class RecordLoss(Callback):
    def __init__(self):
        self.losses = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.losses.append(float(outputs["loss"]))


def test_a_few_steps_on_a_fixed_batch_lower_the_loss():
    torch.manual_seed(0)
    images, target = fixed_batch()
    network = FCN(4, backbone="test_resnet", dropout=0.0)
    module = SegmentationModule(network, 4, loss_weights={"out": 1.0, "aux": 0.2}, lr=0.01)
    record = RecordLoss()
    loader = DataLoader(TensorDataset(images, target), batch_size=4)
    trainer(max_steps=15, callbacks=[record]).fit(module, loader)
    assert len(record.losses) == 15
    assert record.losses[-1] < 0.7 * record.losses[0], record.losses


class RecordLR(Callback):
    def __init__(self):
        self.lrs = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.lrs.append([group["lr"] for group in trainer.optimizers[0].param_groups])


def test_poly_schedule_with_ten_times_head_lr():
    images, target = fixed_batch()
    module = SegmentationModule(FCN(4, backbone="test_resnet"), 4, lr=0.02, head_lr_mult=10, poly_power=0.9)
    record = RecordLR()
    loader = DataLoader(TensorDataset(images.repeat(3, 1, 1, 1), target.repeat(3, 1, 1)), batch_size=4)
    trainer(max_steps=6, callbacks=[record]).fit(module, loader)
    names = [group["name"] for group in trainer_optimizer_groups(module)]
    assert names == ["backbone", "head"]
    total = 6
    for step, (backbone_lr, head_lr) in enumerate(record.lrs):
        factor = (1 - step / total) ** 0.9
        assert math.isclose(backbone_lr, 0.02 * factor, rel_tol=1e-9)
        assert math.isclose(head_lr, 0.2 * factor, rel_tol=1e-9)


def trainer_optimizer_groups(module):
    return module.trainer.optimizers[0].param_groups


def test_backbone_and_head_groups_partition_the_parameters():
    network = FCN(4, backbone="test_resnet")
    groups = SegmentationModule(network, 4).parameter_groups()
    backbone_ids = {id(p) for p in network.backbone.parameters()}
    assert {id(p) for p in groups[0]["params"]} == backbone_ids
    assert len(groups[0]["params"]) + len(groups[1]["params"]) == len(list(network.parameters()))


def test_label_out_of_range_is_a_clear_error():
    images, target = fixed_batch()
    target[0, 5, 5] = 7
    module = SegmentationModule(FCN(4, backbone="test_resnet"), 4)
    # Checked on the host, before the batch moves to the device, so that the step never waits for it.
    with pytest.raises(ValueError, match=r"labels contain values \[7\].*0\.\.3 or 255"):
        module.on_before_batch_transfer((images, target), 0)
    with pytest.raises(ValueError, match=r"labels contain values \[7\]"):
        trainer(1).fit(module, DataLoader(TensorDataset(images, target), batch_size=2))
    assert module.on_before_batch_transfer(images, 0) is images, "an image-only (predict) batch passes"


def test_output_without_out_key_is_a_clear_error():
    module = SegmentationModule(ConstantOutput({"logits": torch.zeros(1, 2, 8, 8)}), 2)
    with pytest.raises(ValueError, match=r"no key 'out'.*keys found: \['logits'\]"):
        module.training_step((torch.zeros(1, 3, 8, 8), torch.zeros(1, 8, 8, dtype=torch.long)), 0)


def test_output_at_wrong_resolution_is_a_clear_error():
    module = SegmentationModule(ConstantOutput({"out": torch.zeros(1, 2, 4, 4)}), 2)
    with pytest.raises(ValueError, match=r"\(1, K, 8, 8\), got \(1, 2, 4, 4\)"):
        module.training_step((torch.zeros(1, 3, 8, 8), torch.zeros(1, 8, 8, dtype=torch.long)), 0)


def test_missing_weighted_output_is_a_clear_error():
    module = SegmentationModule(ConstantOutput({"out": torch.zeros(1, 2, 8, 8)}), 2, loss_weights={"aux": 0.4})
    with pytest.raises(ValueError, match=r"loss_weights name outputs \['aux'\]"):
        module.training_step((torch.zeros(1, 3, 8, 8), torch.zeros(1, 8, 8, dtype=torch.long)), 0)


def test_nan_loss_is_a_clear_error():
    module = SegmentationModule(ConstantOutput({"out": torch.full((1, 2, 8, 8), float("nan"))}), 2)
    batch = (torch.zeros(1, 3, 8, 8), torch.zeros(1, 8, 8, dtype=torch.long))
    loss = module.training_step(batch, 0)
    with pytest.raises(FloatingPointError, match=r"not finite at step 0: \{'loss_out': nan"):
        module.on_train_batch_end(loss, batch, 0)
    with pytest.raises(FloatingPointError, match="not finite"):
        trainer(1).fit(module, DataLoader(TensorDataset(*batch)))


def test_validation_scores_and_predict_step():
    images, target = fixed_batch()
    network = FCN(4, backbone="test_resnet").eval()
    module = SegmentationModule(network, 4, class_names=["a", "b", "c", "d"])
    with torch.no_grad():
        expected = network(images)["out"].argmax(1)
        module.validation_step((images, target), 0)
    valid = target != 255
    accuracy = float((expected[valid] == target[valid]).float().mean())
    scores = module.val_scores.compute()
    assert math.isclose(float(scores["pixel_acc"]), accuracy, rel_tol=1e-6)
    with torch.no_grad():
        torch.testing.assert_close(module.predict_step((images, target), 0), expected)
        torch.testing.assert_close(module.predict_step(images, 0), expected)


def test_class_names_must_match():
    with pytest.raises(ValueError, match="class_names has 2 names but num_classes=3"):
        SegmentationModule(FCN(3, backbone="test_resnet"), 3, class_names=["a", "b"])


def test_a_batch_without_labelled_pixels_trains_with_zero_loss_and_zero_gradient():
    images, target = fixed_batch()
    target[:] = 255
    torch.manual_seed(0)
    module = SegmentationModule(FCN(4, backbone="test_resnet"), 4, loss_weights={"out": 1.0, "aux": 0.4})
    loss = module.training_step((images, target), 0)
    assert float(loss) == 0.0
    loss.backward()
    assert all(p.grad is None or torch.equal(p.grad, torch.zeros_like(p)) for p in module.parameters())
    with torch.no_grad():
        losses = module.compute_losses(module.network(images), target)
    assert {key: float(value) for key, value in losses.items()} == {"loss_out": 0.0, "loss_aux": 0.0, "loss": 0.0}


def test_validation_loss_is_the_mean_over_the_splits_labelled_pixels():
    # Two images, one all-ignored: the split's loss is the other image's loss, in one batch or two.
    images, target = fixed_batch(batch=2, seed=3)
    target[1] = 255
    network = FCN(4, backbone="test_resnet").eval()
    with torch.no_grad():
        outputs = network(images[:1])
    expected = float(F.cross_entropy(outputs["out"], target[:1], ignore_index=255))
    expected += 0.4 * float(F.cross_entropy(outputs["aux"], target[:1], ignore_index=255))
    for batch_size in (1, 2):
        module = SegmentationModule(network, 4, loss_weights={"out": 1.0, "aux": 0.4})
        validator = L.Trainer(accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False)
        loader = DataLoader(TensorDataset(images, target), batch_size=batch_size)
        (metrics,) = validator.validate(module, loader, verbose=False)
        assert math.isclose(metrics["val/loss"], expected, rel_tol=1e-5), (batch_size, metrics["val/loss"])
        # A second pass over the split gives the same value: the running mean starts again.
        (metrics,) = validator.validate(module, loader, verbose=False)
        assert math.isclose(metrics["val/loss"], expected, rel_tol=1e-5)


def test_a_nan_evaluation_loss_is_a_clear_error():
    # torchmetrics' MeanMetric would drop a NaN batch from val/loss with a warning, hiding a diverged network.
    module = SegmentationModule(ConstantOutput({"out": torch.full((1, 2, 8, 8), float("nan"))}), 2)
    batch = (torch.zeros(1, 3, 8, 8), torch.zeros(1, 8, 8, dtype=torch.long))
    with pytest.raises(FloatingPointError, match=r"the val loss of batch 3 is not finite: \{'loss_out': nan"):
        module.validation_step(batch, 3)
    with pytest.raises(FloatingPointError, match="the test loss of batch 0 is not finite"):
        module.test_step(batch, 0)


class FixedPrediction(nn.Module):
    """Logits whose argmax is ``preds`` everywhere, at any input size (nearest resize of the fixed map)."""

    def __init__(self, preds, num_classes):
        super().__init__()
        self.logits = F.one_hot(preds, num_classes).permute(0, 3, 1, 2).float()

    def forward(self, images):
        size = images.shape[-2:]
        return {"out": F.interpolate(self.logits, size=size, mode="nearest-exact")}


def test_validation_logs_the_boundary_f_score_and_the_crop_factor_miou():
    from lightning_modules.evaluation import zoom_center
    from lightning_modules.metrics import BoundaryFScore, SegmentationScores

    images, target = fixed_batch(batch=2, size=32, seed=5)
    preds = target.clone()
    preds[preds == 255] = 0
    preds[:, 20:, :12] = 1  # a wrong block: boundaries and IoU both drop
    module = SegmentationModule(
        FixedPrediction(preds, 4), 4, class_names=list("abcd"), boundary_thresholds=(0.01, 0.05), crop_factors=(0, 8)
    )
    trainer_ = L.Trainer(accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False)
    (metrics,) = trainer_.validate(module, DataLoader(TensorDataset(images, target), batch_size=2), verbose=False)
    reference = BoundaryFScore(4, (0.01, 0.05), 255)
    reference.update(preds, target)
    expected = reference.compute()
    for index, threshold in enumerate(("0.01", "0.05")):
        assert metrics[f"val/boundary_F/{threshold}"] == pytest.approx(float(expected["f_mean"][index]))
        assert metrics[f"val/boundary_F/{threshold}/c"] == pytest.approx(float(expected["f_per_class"][index, 2]))
    assert metrics["val/crop_mIoU/0"] == pytest.approx(metrics["val/mIoU"])
    zoomed_images, zoomed_target = zoom_center(images, target, 8)
    crop = SegmentationScores(4, ignore_index=255)
    crop.update(FixedPrediction(preds, 4)(zoomed_images)["out"].argmax(1), zoomed_target)
    assert metrics["val/crop_mIoU/8"] == pytest.approx(float(crop.compute()["mIoU"]))
    assert metrics["val/crop_mIoU/8"] != pytest.approx(metrics["val/mIoU"])
    scores = module.last_scores["val"]
    assert set(scores["boundary_F_per_class"]) == {"boundary_F/0.01", "boundary_F/0.05"}
    assert scores["boundary_F_per_class"]["boundary_F/0.05"]["c"] == pytest.approx(metrics["val/boundary_F/0.05/c"])


def test_crop_factors_scale_with_a_reference_height():
    module = SegmentationModule(ConstantOutput({}), 2, crop_factors=(200, 400), crop_reference_height=1024)
    assert [module.crop_pixels(crop, 360) for crop in (0, 200, 300, 400)] == [0, 70, 105, 141]
    assert SegmentationModule(ConstantOutput({}), 2, crop_factors=(200,)).crop_pixels(200, 360) == 200
    with pytest.raises(ValueError, match="crop_factors must be non-negative pixel counts"):
        SegmentationModule(ConstantOutput({}), 2, crop_factors=(-1,))


def test_poly_schedule_stepped_per_epoch_as_gated_scnn():
    # Gated-SCNN's official schedule: lr · (1 - epoch / max_epochs) ** 1.0, constant within an epoch.
    images, target = fixed_batch()
    module = SegmentationModule(
        FCN(4, backbone="test_resnet"), 4, lr=0.01, head_lr_mult=1.0, poly_power=1.0, poly_interval="epoch"
    )
    record = RecordLR()
    loader = DataLoader(TensorDataset(images, target), batch_size=2)  # 2 steps per epoch
    trainer(callbacks=[record], max_epochs=4).fit(module, loader)
    expected = [0.01 * (1 - epoch / 4) for epoch in range(4) for _ in range(2)]
    assert [lrs[0] for lrs in record.lrs] == pytest.approx(expected, rel=1e-12)
    with pytest.raises(ValueError, match=r"poly_interval must be one of \('step', 'epoch'\), got 'iter'"):
        SegmentationModule(FCN(4, backbone="test_resnet"), 4, poly_interval="iter")
    endless = L.Trainer(max_epochs=-1, max_steps=2, accelerator="cpu", logger=False, enable_progress_bar=False)
    with pytest.raises(ValueError, match=r"max_epochs, which must be a positive number of epochs.*max_epochs=-1"):
        endless.fit(module, loader)
