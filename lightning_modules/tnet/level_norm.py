"""Batch-norm statistics kept per traversal level (not in the official code; off by default).

TNet runs one feature extractor over every level: the whole image resized to the base resolution at level 0,
full-resolution crops below. In training each level's pass normalises with its own batch statistics, but BN
keeps one set of running statistics, an average over passes whose inputs can differ a lot (on Megapixel
digits, a cluttered canvas and mostly empty crops), which evaluation then applies to every level. A TNet
trained there with shared statistics (``tnet.megapixel_digits``, ``small``) scored 13.3 % top-1 on 256
validation images with its running statistics, 41.8 % with each batch's statistics, and 44.1 % with running
statistics recomputed per level from 640 training images. :class:`LevelBatchNorm` keeps one set of running
statistics per level and shares the affine weights, so the network and its parameter count are unchanged.
"""

from __future__ import annotations

import copy

import torch
from torch import nn


class LevelBatchNorm(nn.Module):
    """A BN layer (``nn.BatchNorm2d`` or a subclass, e.g. timm's ``BatchNormAct2d``) with per-level running
    statistics: one copy per level, all sharing the original's weight and bias.

    Args:
        norm: the layer to wrap (its statistics start every level's).
        num_levels: how many sets of statistics; a deeper level uses the last set.

    Shapes: as the wrapped layer's. ``level`` selects the statistics (set by :func:`set_level`).
    """

    def __init__(self, norm: nn.modules.batchnorm._BatchNorm, num_levels: int) -> None:
        super().__init__()
        if num_levels < 1:
            raise ValueError(f"num_levels must be >= 1, got {num_levels}.")
        self.levels = nn.ModuleList(copy.deepcopy(norm) for _ in range(num_levels))
        for level in self.levels:
            for name, parameter in norm.named_parameters(recurse=False):
                setattr(level, name, parameter)
        self.level = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.levels[min(self.level, len(self.levels) - 1)](x)


def per_level_batch_norm(module: nn.Module, num_levels: int) -> nn.Module:
    """Replace every BN layer inside ``module`` by a :class:`LevelBatchNorm` (in place); returns ``module``."""
    for name, child in list(module.named_children()):
        if isinstance(child, nn.modules.batchnorm._BatchNorm):
            setattr(module, name, LevelBatchNorm(child, num_levels))
        else:
            per_level_batch_norm(child, num_levels)
    return module


def set_level(module: nn.Module, level: int) -> None:
    """Point every :class:`LevelBatchNorm` inside ``module`` at the statistics of ``level``."""
    for child in module.modules():
        if isinstance(child, LevelBatchNorm):
            child.level = level
