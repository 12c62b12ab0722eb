"""TNetModule: the EMA baseline (its update, its place in checkpoints), Adam with TensorFlow's ε, the single
×0.1 drop at 80 % of the steps, the logged quantities, and evaluation with another number of locations."""

import lightning as L
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from lightning_modules.tnet.losses import tnet_loss
from lightning_modules.tnet.module import TNetModule, policy_entropy
from lightning_modules.tnet.network import tnet_timm


def _module(**kwargs) -> TNetModule:
    torch.manual_seed(0)
    network = tnet_timm("test_resnet", 4, 32, 3, 0.5, (2,))
    return TNetModule(network, 4, **kwargs)


def _loader(n: int = 8) -> DataLoader:
    g = torch.Generator().manual_seed(1)
    images = torch.rand(n, 3, 64, 64, generator=g) * 2 - 1
    return DataLoader(TensorDataset(images, torch.arange(n) % 4), batch_size=4)


def _trainer(**kwargs) -> L.Trainer:
    return L.Trainer(
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        accelerator="cpu",
        **kwargs,
    )


def test_baseline_moves_to_the_ema_of_the_rewards_and_is_saved():
    module = _module()
    assert float(module.baseline) == 0.5
    images, target = next(iter(_loader()))
    module.train()
    torch.manual_seed(5)
    expected_terms = tnet_loss(module.network(images), target, 0.5, 0.3, 0.3, 0.1)
    torch.manual_seed(5)
    module.training_step((images, target), 0)
    expected = 0.9 * 0.5 + 0.1 * float(expected_terms.baseline_target)
    assert float(module.baseline) == pytest.approx(expected)
    assert float(module.state_dict()["baseline"]) == pytest.approx(expected)
    restored = _module()
    restored.load_state_dict(module.state_dict())
    assert float(restored.baseline) == pytest.approx(expected)


def test_adam_with_tensorflow_epsilon_and_one_drop_after_80_percent():
    module = _module(lr=1e-3)
    trainer = _trainer(max_steps=10, limit_val_batches=0)
    lrs = []

    class Record(L.Callback):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            lrs.append(trainer.optimizers[0].param_groups[0]["lr"])

    trainer.callbacks.append(Record())
    trainer.fit(module, _loader(40))
    optimizer = trainer.optimizers[0]
    assert isinstance(optimizer, torch.optim.Adam) and optimizer.defaults["eps"] == 1e-7
    # Official PiecewiseConstantDecay(boundaries=[0.8 · 10]): steps 0..8 at 1e-3, step 9 at 1e-4.
    assert lrs == pytest.approx([1e-3] * 9 + [1e-4])


def test_logs_and_evaluation_with_other_location_counts():
    module = _module(eval_locations_per_level=(3,))
    trainer = _trainer(max_epochs=1)
    trainer.fit(module, _loader(), _loader())
    logged = trainer.logged_metrics
    for key in ("train/loss", "train/reinforce", "train/baseline", "train/entropy", "train/top1", "val/top1"):
        assert key in logged, key
    assert float(logged["train/locations"]) == 2.0
    assert float(logged["val/locations"]) == 3.0
    assert 0.0 <= module.last_scores["val"]["top1"] <= 1.0


def test_policy_entropy_of_a_uniform_policy_is_log_n():
    module = _module()
    module.eval()
    out = module.network(torch.zeros(2, 3, 64, 64))
    out.probs = [torch.full((2, 9), 1 / 9)]
    assert float(policy_entropy(out)) == pytest.approx(torch.log(torch.tensor(9.0)).item())


def test_bad_labels_and_settings_are_refused():
    with pytest.raises(ValueError, match="feature_levels must be None"):
        _module(feature_levels=1)
    module = _module()
    with pytest.raises(ValueError, match="labels contain values"):
        module.training_step((torch.zeros(2, 3, 64, 64), torch.tensor([0, 9])), 0)
