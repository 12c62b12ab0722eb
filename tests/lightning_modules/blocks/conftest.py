"""Shared by the block tests."""

from collections.abc import Callable

import pytest
import torch
from torch import nn


def _randomise(module: nn.Module, seed: int = 0, scale: float = 0.5) -> nn.Module:
    """Random weights, biases and BN statistics: the blocks start with zero biases / BN weights, with
    which BN, σ or a gate would be the identity or a constant and a formula test could not fail."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=generator) * scale)
        for name, b in module.named_buffers():
            if "running_mean" in name:
                b.copy_(torch.randn(b.shape, generator=generator))
            elif "running_var" in name:
                b.copy_(torch.rand(b.shape, generator=generator) + 0.5)
    return module


@pytest.fixture
def randomise() -> Callable[..., nn.Module]:
    return _randomise
