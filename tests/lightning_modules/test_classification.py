"""ClassificationModule: top-k scores, the papers' optimiser and schedule, and its errors."""

import warnings

import lightning as L
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from datamodules.synthetic_classification import SyntheticClassificationDataModule
from lightning_modules.classification import ClassificationModule, scaled_lr
from lightning_modules.classification_models import create_attention_resnet


class FixedLogits(nn.Module):
    """Returns stored logits, one row per image id (the image's first pixel)."""

    def __init__(self, logits: torch.Tensor) -> None:
        super().__init__()
        self.logits = nn.Parameter(logits)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.logits[images[:, 0, 0, 0].long()]


def trainer(**kwargs) -> L.Trainer:
    return L.Trainer(
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        **kwargs,
    )


def test_top1_top5_match_a_direct_count():
    torch.manual_seed(0)
    n, k = 40, 10
    logits = torch.randn(n, k)
    labels = torch.randint(0, k, (n,))
    images = torch.arange(n, dtype=torch.float32).view(n, 1, 1, 1).expand(n, 3, 4, 4).contiguous()
    module = ClassificationModule(FixedLogits(logits), k)
    loader = DataLoader(TensorDataset(images, labels), batch_size=16)
    trainer().validate(module, loader, verbose=False)
    ranks = (logits > logits.gather(1, labels[:, None])).sum(dim=1)  # classes scored above the label
    expected = {"top1": (ranks < 1).float().mean().item(), "top5": (ranks < 5).float().mean().item()}
    assert module.last_scores["val"] == pytest.approx(expected)
    assert set(module.last_scores["val"]) == {"top1", "top5"}


def test_trains_an_attention_resnet_on_synthetic_images():
    datamodule = SyntheticClassificationDataModule(num_classes=6, image_size=32, num_train=16, num_val=8, batch_size=8)
    network = create_attention_resnet(50, "cbam", num_classes=6, layers=(1, 1, 1, 1), channels=(8, 16, 32, 64))
    module = ClassificationModule(network, 6, lr=0.01)
    before = network.fc.weight.detach().clone()
    trainer(max_epochs=1).fit(module, datamodule=datamodule)
    assert not torch.equal(before, network.fc.weight)
    scores = module.last_scores["val"]
    assert set(scores) == {"top1", "top5"} and all(0.0 <= v <= 1.0 for v in scores.values())
    assert scores["top5"] >= scores["top1"]


def test_papers_optimiser_and_step_schedule():
    module = ClassificationModule(nn.Linear(3, 4), 4, lr=scaled_lr(0.1, 512))
    config = module.configure_optimizers()
    optimizer, scheduler = config["optimizer"], config["lr_scheduler"]["scheduler"]
    assert isinstance(optimizer, torch.optim.SGD) and config["lr_scheduler"]["interval"] == "epoch"
    group = optimizer.param_groups[0]
    assert (group["lr"], group["momentum"], group["weight_decay"], group["nesterov"]) == (
        pytest.approx(0.2),
        0.9,
        1e-4,
        False,
    )
    lrs = []
    for _ in range(100):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert lrs[0] == lrs[29] == pytest.approx(0.2)
    assert lrs[30] == pytest.approx(0.02) and lrs[60] == pytest.approx(0.002) and lrs[99] == pytest.approx(0.0002)


def test_linear_lr_scaling():
    assert scaled_lr(0.1, 256) == pytest.approx(0.1)
    assert scaled_lr(0.1, 1024) == pytest.approx(0.4)
    assert scaled_lr(0.1, 64) == pytest.approx(0.025)
    with pytest.raises(ValueError, match="positive"):
        scaled_lr(0.1, 0)


def test_label_smoothing_is_used_in_the_loss():
    torch.manual_seed(0)
    logits = torch.randn(4, 5)
    labels = torch.tensor([0, 1, 2, 3])
    images = torch.arange(4, dtype=torch.float32).view(4, 1, 1, 1).expand(4, 3, 2, 2)
    module = ClassificationModule(FixedLogits(logits), 5, label_smoothing=0.1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # self.log() without a Trainer
        loss = module.training_step((images, labels), 0)
    torch.testing.assert_close(loss, F.cross_entropy(logits, labels, label_smoothing=0.1))


def test_labels_out_of_range_are_a_clear_error():
    module = ClassificationModule(FixedLogits(torch.randn(2, 5)), 5)
    images = torch.zeros(2, 3, 2, 2)
    with pytest.raises(ValueError, match=r"labels contain values \[7\] outside 0..4"):
        module.training_step((images, torch.tensor([1, 7])), 0)
    with pytest.raises(ValueError, match="integer tensor of class ids"):
        module.training_step((images, torch.tensor([1.0, 2.0])), 0)
    with pytest.raises(ValueError, match=r"shape \(B,\)"):
        module.training_step((images, torch.tensor([[1], [2]])), 0)


def test_nan_loss_is_a_clear_error():
    module = ClassificationModule(FixedLogits(torch.full((2, 5), float("nan"))), 5)
    with pytest.raises(FloatingPointError, match="training loss is nan"):
        module.training_step((torch.zeros(2, 3, 2, 2), torch.tensor([0, 1])), 0)


def test_wrong_logits_shape_is_a_clear_error():
    module = ClassificationModule(FixedLogits(torch.randn(2, 3)), 5)
    with pytest.raises(ValueError, match=r"logits of shape \(B, num_classes\) = \(2, 5\), got \(2, 3\)"):
        module.training_step((torch.zeros(2, 3, 2, 2), torch.tensor([0, 1])), 0)


def test_top_k_settings():
    assert ClassificationModule(nn.Linear(1, 3), 3).top_k == (1,)
    assert ClassificationModule(nn.Linear(1, 10), 10).top_k == (1, 5)
    with pytest.raises(ValueError, match=r"top_k values must be in 1\.\.num_classes=3"):
        ClassificationModule(nn.Linear(1, 3), 3, top_k=(1, 5))
    with pytest.raises(ValueError, match="label_smoothing"):
        ClassificationModule(nn.Linear(1, 3), 3, label_smoothing=1.0)
