"""Per-level BN statistics: shared affine weights, one set of running statistics per level, each equal to that
of a plain BN layer that saw only its level's batches; TNet switches the level at every pass."""

import torch
from torch import nn

from lightning_modules.tnet.level_norm import LevelBatchNorm, per_level_batch_norm, set_level
from lightning_modules.tnet.network import tnet_timm


def test_each_level_keeps_the_statistics_of_its_own_batches():
    torch.manual_seed(0)
    base = nn.BatchNorm2d(4)
    wrapped = LevelBatchNorm(base, num_levels=2)
    reference = [nn.BatchNorm2d(4), nn.BatchNorm2d(4)]
    batches = [torch.randn(8, 4, 5, 5) * 2 + 5, torch.randn(8, 4, 5, 5) * 0.5 - 3]
    for _ in range(3):
        for level, batch in enumerate(batches):
            wrapped.level = level
            wrapped(batch)
            reference[level](batch)
    for level in range(2):
        torch.testing.assert_close(wrapped.levels[level].running_mean, reference[level].running_mean)
        torch.testing.assert_close(wrapped.levels[level].running_var, reference[level].running_var)
    wrapped.eval()
    wrapped.level = 5  # deeper than the statistics kept: the last set
    reference[1].eval()
    torch.testing.assert_close(wrapped(batches[1]), reference[1](batches[1]))


def test_weights_are_shared_and_the_parameter_count_is_unchanged():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU())
    count = sum(p.numel() for p in model.parameters())
    per_level_batch_norm(model, 3)
    assert isinstance(model[1], LevelBatchNorm)
    assert sum(p.numel() for p in model.parameters()) == count
    with torch.no_grad():
        model[1].levels[0].weight.fill_(2.0)
    assert all(float(level.weight[0]) == 2.0 for level in model[1].levels)


def test_tnet_uses_the_statistics_of_each_level_and_keeps_them_in_its_state_dict():
    torch.manual_seed(0)
    model = tnet_timm("test_resnet", 3, 32, 3, 0.5, (2,), level_norm=True)
    norms = [m for m in model.extractor.modules() if isinstance(m, LevelBatchNorm)]
    assert norms and all(len(m.levels) == 2 for m in norms)
    model.train()(torch.randn(2, 3, 64, 64))
    first = norms[0]
    assert not torch.equal(first.levels[0].running_mean, first.levels[1].running_mean)
    restored = tnet_timm("test_resnet", 3, 32, 3, 0.5, (2,), level_norm=True)
    restored.load_state_dict(model.state_dict())
    images = torch.randn(2, 3, 64, 64)
    torch.testing.assert_close(restored.eval()(images).logits, model.eval()(images).logits)
    set_level(model.extractor, 1)
    assert all(m.level == 1 for m in norms)
