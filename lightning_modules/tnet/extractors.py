"""Feature extractors for TNet from timm: each maps a batch at the base resolution to the grid features ``G``
the location module reads and the global feature ``h`` of the image.

- :class:`EfficientNetExtractor`: the fMoW / CUB extractor (Tpap/TNet ``fMoW/models_fMoW.py``, ``EfficientNet``),
  timm's ``tf_efficientnet_b0`` (TensorFlow "same" padding and BN ε = 10⁻³, as the official Keras layers). ``h``
  is the top 1×1 conv → 1280 + BN + swish, averaged; ``G`` is the 80-channel stage (stride 16, 14 × 14 at 224 px)
  after its third block, at rows and columns 2, 6, 10: 3 × 3 × 80, the official ``lg3x3`` configuration. The
  later CUB code takes that stage after its first block at rows and columns 2, 4, .., 10 for a 5 × 5 grid
  (``location_block=0, location_rows=(2, 4, 6, 8, 10)``). Stochastic depth grows linearly with the block number
  ``b = 1 .. 16`` as ``rate · b / 16`` (timm's own schedule starts at 0), BN momentum is Keras' 0.99.
  Without the classifier: 4,007,548 parameters.
- :class:`TimmExtractor`: any timm CNN with ``forward_intermediates`` (ResNets, EfficientNets, ...): ``G`` is
  one feature stage average-pooled to the ``n × n`` grid, ``h`` the model's pooled pre-logits features. For
  backbones the paper did not use (the Megapixel digits benchmark).
"""

from __future__ import annotations

from collections.abc import Sequence

import timm
import torch
import torch.nn.functional as F
from timm.layers import DropPath
from torch import nn

from lightning_modules.backbones import check_backbone_name, hub_weights_error


def create_timm_model(name: str, pretrained: bool = False, **kwargs: object) -> nn.Module:
    """``timm.create_model`` with a clear error for unknown names and for hub weights that cannot be fetched."""
    check_backbone_name(name)
    try:
        return timm.create_model(name, pretrained=pretrained, **kwargs)
    except (OSError, RuntimeError, ValueError) as err:
        if not pretrained:
            raise
        raise hub_weights_error(name, err) from err


class EfficientNetExtractor(nn.Module):
    """EfficientNet-B0 as TNet's fMoW feature extractor (see the module docstring).

    Args:
        drop_path_rate: the stochastic depth rate of the last block (official ``block_drop_rate``).
        location_block: which block of the 80-channel stage (0-based) the grid features follow.
        location_rows: the rows and columns of that map taken as the grid (14 × 14 at 224 px).
        pretrained: load timm's ImageNet weights (needs internet; the paper's fMoW runs start from scratch).

    Shapes: ``forward((B, 3, H, W))`` → ``(G (B, 80, len(rows), len(rows)), h (B, 1280))``.
    """

    def __init__(
        self,
        drop_path_rate: float = 0.3,
        location_block: int = 2,
        location_rows: Sequence[int] = (2, 6, 10),
        pretrained: bool = False,
    ) -> None:
        super().__init__()
        self.model = create_timm_model("tf_efficientnet_b0", pretrained=pretrained, num_classes=0)
        stage = self.model.blocks[3]
        if not 0 <= location_block < len(stage):
            raise ValueError(
                f"location_block must be in 0..{len(stage) - 1} (the 80-channel stage), got {location_block}."
            )
        self.location_block = location_block
        self.register_buffer("location_rows", torch.tensor(list(location_rows)), persistent=False)
        self.location_channels = stage[location_block].conv_pwl.out_channels
        self.out_channels = self.model.num_features
        blocks = [block for stage in self.model.blocks for block in stage]
        for number, block in enumerate(blocks, start=1):
            rate = drop_path_rate * number / len(blocks)
            block.drop_path = DropPath(rate) if rate > 0 and block.has_skip else nn.Identity()
        for module in self.model.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.momentum = 0.01

    def global_features(self, images: torch.Tensor) -> torch.Tensor:
        """``h (B, 1280)`` alone, at any input size (the whole-image baselines)."""
        return self.model.forward_head(self.model.forward_features(images), pre_logits=True)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.model.bn1(self.model.conv_stem(images))
        grid = None
        for index, stage in enumerate(self.model.blocks):
            for number, block in enumerate(stage):
                x = block(x)
                if index == 3 and number == self.location_block:
                    needed = int(self.location_rows.max()) + 1
                    if min(x.shape[-2:]) < needed:
                        raise ValueError(
                            f"the 80-channel map is {tuple(x.shape[-2:])} for {tuple(images.shape[-2:])} px inputs, "
                            f"too small for the location rows {self.location_rows.tolist()}: feed the extractor "
                            f"at least {16 * needed} px (TNet's base resolution is 224)."
                        )
                    grid = x.index_select(2, self.location_rows).index_select(3, self.location_rows)
        x = self.model.bn2(self.model.conv_head(x))
        return grid, self.model.forward_head(x, pre_logits=True)


class TimmExtractor(nn.Module):
    """A timm CNN as TNet's feature extractor (see the module docstring).

    Args:
        name: a timm model with ``forward_intermediates``.
        grid_size: cells per side of the location grid.
        location_stage: the index in ``feature_info`` of the stage pooled into the grid (default: the one before
            the last).
        pretrained: load timm's weights (needs internet).
        **kwargs: passed to ``timm.create_model`` (e.g. ``drop_path_rate``).

    Shapes: ``forward((B, 3, H, W))`` → ``(G (B, C_stage, n, n), h (B, num_features))``.
    """

    def __init__(
        self, name: str, grid_size: int, location_stage: int = -2, pretrained: bool = False, **kwargs: object
    ) -> None:
        super().__init__()
        self.model = create_timm_model(name, pretrained=pretrained, num_classes=0, **kwargs)
        if not hasattr(self.model, "forward_intermediates"):
            raise ValueError(
                f"timm model {name!r} has no forward_intermediates; pick a CNN that has (ResNet, EfficientNet)."
            )
        stages = len(self.model.feature_info)
        if not -stages <= location_stage < stages:
            raise ValueError(f"location_stage must index the {stages} stages of {name!r}, got {location_stage}.")
        self.location_stage = location_stage % stages
        self.grid_size = grid_size
        self.location_channels = self.model.feature_info[self.location_stage]["num_chs"]
        self.out_channels = self.model.num_features

    def global_features(self, images: torch.Tensor) -> torch.Tensor:
        """``h (B, num_features)`` alone (the whole-image baselines)."""
        return self.model.forward_head(self.model.forward_features(images), pre_logits=True)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        final, (stage,) = self.model.forward_intermediates(images, indices=[self.location_stage])
        grid = F.adaptive_avg_pool2d(stage, self.grid_size)
        return grid, self.model.forward_head(final, pre_logits=True)
