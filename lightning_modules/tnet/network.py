"""TNet: the multi-level hard-attention network (Tpap/TNet ``ImageNet/models.py``, ``fMoW/models_fMoW.py``: ``TNet``).

For a batch ``X`` (values in ``[−1, 1]``), level 0 sees the whole image, and each level ``l`` below the last
picks ``k_l`` cells of an ``n × n`` grid over each of its inputs and hands their crops, at full resolution,
to level ``l + 1``::

    batch_0 = X; (y, x, s)_0 = (0, 0, 0)
    for l in 0 .. L − 1:
        G_l, h_l = extractor(resize_bilinear(batch_l, base))       # no antialiasing, as the official code
        v_l = fusion(h_l, PE(y, x, s))                              # one feature per input of the level
        if l < L − 1:
            π_l = location(G_l, h_l); cells = top-k_l(π_l)          # deterministic, training too
            batch_{l+1} = crops of the cells; (y, x, s)_{l+1} = (y·n + row, x·n + col, l + 1)
    logits = classifier(mean of the N = 1 + k_0 + k_0·k_1 + … features of each image)

The same classifier also scores every feature alone (``feature_logits``) for the per-feature loss. The number
of levels and of cells per level is fixed at construction and can be changed per call
(``forward(images, locations_per_level=...)``): the weights do not depend on it.

Builders: :func:`tnet_imagenet` (BagNet-77, 21,859,949 parameters with 1000 classes), :func:`tnet_fmow`
(EfficientNet-B0, 4,517,575 with 62 classes), :func:`tnet_timm` (any timm CNN).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from lightning_modules.network import check_images
from lightning_modules.tnet.bagnet import BagNet77
from lightning_modules.tnet.extractors import EfficientNetExtractor, TimmExtractor
from lightning_modules.tnet.feature_weighting import FeatureWeighting
from lightning_modules.tnet.fusion import AdditivePositionalFusion, ConcatPositionalFusion
from lightning_modules.tnet.grid import grid_geometry
from lightning_modules.tnet.initializers import glorot_linear, keras_dense
from lightning_modules.tnet.level_norm import per_level_batch_norm, set_level
from lightning_modules.tnet.location import LocationModule, SELocationModule
from lightning_modules.tnet.positional_encoding import positional_encoding
from lightning_modules.tnet.traversal import child_positions, crop_cells, resize_to_base, select_cells

LOG_EPSILON = 1e-10  # the official log(π + 1e-10)


@dataclass
class TNetOutput:
    """What one traversal produced; per-level lists are indexed by level ``l = 0 .. L − 1``.

    Attributes:
        logits: ``(B, K)`` of the aggregated features.
        features: per level, ``(B · m_l, D)`` fused features, image by image, ``m_l = k_0 ⋯ k_{l−1}``.
        feature_logits: per level, ``(B · m_l, K)``: the classifier on each feature alone (in training mode only;
            empty in evaluation).
        positions: per level, the ``(y, x, s)`` triplets of its inputs, three ``(B · m_l,)`` tensors.
        boxes: per level, ``(B · m_l, 4)`` ``(y0, x0, y1, x1)`` of its inputs in input pixels (end exclusive;
            a box may reach into the zero padding).
        probs: per level but the last, ``(B · m_l, n²)`` policies ``π`` (rows sum to 1).
        cells: per level but the last, ``(B · m_l, k_l)`` selected cell indices, increasing.
        log_probs: per level but the last, ``(B · m_{l+1},)`` ``log(π + 1e-10)`` of each selected cell.
        feature_weights: ``(B, N)`` aggregation weights of the feature weighting module, or ``None`` (mean).
    """

    logits: torch.Tensor
    features: list[torch.Tensor]
    feature_logits: list[torch.Tensor]
    positions: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]
    boxes: list[torch.Tensor]
    probs: list[torch.Tensor]
    cells: list[torch.Tensor]
    log_probs: list[torch.Tensor]
    feature_weights: torch.Tensor | None = None

    @property
    def batch_size(self) -> int:
        return self.logits.shape[0]

    @property
    def locations_per_image(self) -> int:
        """Attended locations per image, ``N − 1`` (the whole image at level 0 is not counted)."""
        return sum(f.shape[0] for f in self.features[1:]) // self.batch_size

    def location_log_probs(self) -> torch.Tensor:
        """``(B,)``: each image's ``Σ log π`` over all its selected cells of all levels (the main REINFORCE term)."""
        totals = [lp.view(self.batch_size, -1).sum(dim=1) for lp in self.log_probs]
        return torch.stack(totals).sum(dim=0) if totals else self.logits.new_zeros(self.batch_size)


def attended_locations(locations_per_level: Sequence[int]) -> int:
    """Attended locations per image, ``k_0 + k_0·k_1 + …``, for cells per level ``locations_per_level``."""
    total, inputs = 0, 1
    for k in locations_per_level:
        inputs *= k
        total += inputs
    return total


def _check_locations(locations_per_level: Sequence[int], num_cells: int) -> tuple[int, ...]:
    if not isinstance(locations_per_level, (tuple, list)):
        raise ValueError(
            f"locations_per_level must be a tuple with the cells of each level but the last, like (3,) or (2, 1), "
            f"got {locations_per_level!r}."
        )
    counts = tuple(locations_per_level)
    if any(isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= num_cells for k in counts):
        raise ValueError(
            f"locations_per_level must list, for each level but the last, a number of cells in 1..{num_cells}, "
            f"got {locations_per_level!r}."
        )
    return counts


class TNet(nn.Module):
    """The traversal network (see the module docstring).

    Args:
        extractor: maps ``(M, 3, b, b)`` to ``(G (M, C, n, n), h (M, D))``.
        location: maps ``(G, h)`` to ``π (M, n²)``.
        fusion: maps ``(h (M, D), PE (M, fusion.encoding_channels))`` to ``v (M, D)``.
        classifier: maps ``(M, D)`` to ``(M, K)`` logits.
        num_patches: ``n``, cells per side of each grid.
        overlap: ``ω``, the fraction of a side one cell covers.
        base_resolution: the extractor's input side ``b`` (pixels).
        locations_per_level: ``k_l`` for each level but the last; ``L = len + 1`` levels.
        antialias: antialias the resize to the base resolution (the official code does not).
        feature_weighting: aggregate with a :class:`FeatureWeighting` module of width ``D`` instead of the mean.
        max_inv_freq: the largest inverse angular frequency of the positional encoding (official 100).
        level_norm: keep the extractor's BN running statistics per level
            (:mod:`~lightning_modules.tnet.level_norm`; the official code shares them).

    Shapes: ``forward((B, 3, H, W))`` → :class:`TNetOutput`; the images need not be square.
    """

    def __init__(
        self,
        extractor: nn.Module,
        location: nn.Module,
        fusion: nn.Module,
        classifier: nn.Module,
        num_patches: int,
        overlap: float,
        base_resolution: int,
        locations_per_level: Sequence[int],
        antialias: bool = False,
        feature_weighting: bool = False,
        max_inv_freq: float = 100.0,
        level_norm: bool = False,
    ) -> None:
        super().__init__()
        grid_geometry(base_resolution, num_patches, overlap)  # validates the three
        self.extractor = extractor
        self.location = location
        self.fusion = fusion
        self.classifier = classifier
        self.num_patches = num_patches
        self.overlap = overlap
        self.base_resolution = base_resolution
        self.locations_per_level = _check_locations(locations_per_level, num_patches**2)
        self.antialias = antialias
        self.max_inv_freq = max_inv_freq
        self.level_norm = level_norm
        if level_norm:
            per_level_batch_norm(extractor, self.num_levels)
        channels = extractor.out_channels
        self.feature_weighting = FeatureWeighting(channels) if feature_weighting else None

    @property
    def num_levels(self) -> int:
        return len(self.locations_per_level) + 1

    def _extract(self, batch: torch.Tensor, level: int) -> tuple[torch.Tensor, torch.Tensor]:
        if self.level_norm:
            set_level(self.extractor, level)
        size = (self.base_resolution, self.base_resolution)
        grid, features = self.extractor(resize_to_base(batch, size, self.antialias))
        return grid, features

    def _check_grid(self, grid: torch.Tensor) -> None:
        if tuple(grid.shape[-2:]) != (self.num_patches, self.num_patches):
            raise ValueError(
                f"the extractor's grid features are {tuple(grid.shape[-2:])} cells, but the location grid is "
                f"{self.num_patches} x {self.num_patches}: match num_patches to the extractor."
            )

    def forward(self, images: torch.Tensor, locations_per_level: Sequence[int] | None = None) -> TNetOutput:
        """Traverse ``images`` ``(B, 3, H, W)``; ``locations_per_level`` overrides the constructor's for this call."""
        check_images(images, in_chans=3)
        counts = self.locations_per_level
        if locations_per_level is not None:
            counts = _check_locations(locations_per_level, self.num_patches**2)
        n = self.num_patches
        batch_size = images.shape[0]
        level_batch = images
        zeros = torch.zeros(batch_size, dtype=torch.long, device=images.device)
        y, x, s = zeros, zeros, zeros
        height, width = images.shape[-2:]
        box = torch.tensor([[0, 0, height, width]], device=images.device).repeat(batch_size, 1)
        out = TNetOutput(images.new_empty(0), [], [], [], [], [], [], [])
        for level in range(len(counts) + 1):
            grid, features = self._extract(level_batch, level)
            encoding = positional_encoding(y, x, s, self.fusion.encoding_channels, max_inv_freq=self.max_inv_freq)
            out.features.append(self.fusion(features, encoding.to(features.dtype)))
            out.positions.append((y, x, s))
            out.boxes.append(box)
            if level == len(counts):
                break
            self._check_grid(grid)
            probs = self.location(grid, features)
            cells = select_cells(probs, counts[level])
            out.probs.append(probs)
            out.cells.append(cells)
            out.log_probs.append(torch.log(probs.gather(1, cells) + LOG_EPSILON).flatten())
            box = _child_boxes(box, cells, n, self.overlap, level_batch.shape[-2:])
            level_batch = crop_cells(level_batch, cells, n, self.overlap)
            y, x, s = child_positions(y, x, cells, n, level + 1)
        per_image = torch.cat([f.view(batch_size, -1, f.shape[-1]) for f in out.features], dim=1)
        if self.feature_weighting is not None:
            aggregate, out.feature_weights = self.feature_weighting(per_image)
        else:
            aggregate = per_image.mean(dim=1)
        out.logits = self.classifier(aggregate)
        # Only the per-feature loss reads them (the official code computes them in training only).
        out.feature_logits = [self.classifier(f) for f in out.features] if self.training else []
        return out


def _child_boxes(
    boxes: torch.Tensor, cells: torch.Tensor, num_patches: int, overlap: float, side: tuple[int, int]
) -> torch.Tensor:
    """``(M · k, 4)`` input-pixel boxes of the crops of ``cells`` ``(M, k)`` taken from inputs at ``boxes``."""
    gy, gx = grid_geometry(side[0], num_patches, overlap), grid_geometry(side[1], num_patches, overlap)
    rows, cols = cells // num_patches, cells % num_patches
    y0 = boxes[:, :1] + rows * gy.stride - gy.pad_before
    x0 = boxes[:, 1:2] + cols * gx.stride - gx.pad_before
    return torch.stack([y0, x0, y0 + gy.patch, x0 + gx.patch], dim=-1).flatten(0, 1)


def tnet_imagenet(
    num_classes: int = 1000,
    locations_per_level: Sequence[int] = (3,),
    keep_prob: float = 0.5,
    antialias: bool = False,
) -> TNet:
    """TNet on ImageNet as released: 224 px input, BagNet-77 at 77 px, a 5 × 5 grid with ω = 0.34375, 2 levels
    with 3 locations, ``D = 512``, concatenated positional encoding, plain mean, a linear classifier.

    Parameters with 1000 classes: 21,859,949 (BagNet-77 20,033,664, positional encoding 524,800, location
    788,485, classifier 513,000).
    """
    extractor = BagNet77(dropout_layers=1, keep_prob=keep_prob)
    return TNet(
        extractor=extractor,
        location=LocationModule(extractor.location_channels, extractor.out_channels),
        fusion=ConcatPositionalFusion(extractor.out_channels),
        classifier=glorot_linear(extractor.out_channels, num_classes),
        num_patches=5,
        overlap=0.34375,
        base_resolution=77,
        locations_per_level=locations_per_level,
        antialias=antialias,
    )


def keras_classifier(in_features: int, num_classes: int, dropout: float) -> nn.Sequential:
    """The official fMoW classification module: dropout, then a linear layer with the dense initialiser."""
    return nn.Sequential(nn.Dropout(dropout), keras_dense(in_features, num_classes))


def tnet_fmow(
    num_classes: int = 62,
    locations_per_level: Sequence[int] = (2, 1),
    dropout: float = 0.5,
    drop_path_rate: float = 0.3,
    antialias: bool = False,
    feature_weighting: bool = False,
    level_norm: bool = False,
) -> TNet:
    """TNet on fMoW as released: EfficientNet-B0 at 224 px, a 3 × 3 grid with ω = 0.5, ``D = 1280``, additive
    positional encoding of width 320, the SE location module on the 3 × 3 × 80 grid features.

    ``locations_per_level=(2, 1)`` is the final 896 px, 3-level model (4 attended locations); the 448 px stage
    is ``(2,)``. Parameters with 62 classes: 4,517,575 (EfficientNet-B0 4,007,548, positional encoding 410,880,
    location 19,725, classifier 79,422).
    """
    extractor = EfficientNetExtractor(drop_path_rate=drop_path_rate)
    return TNet(
        extractor=extractor,
        location=SELocationModule(extractor.location_channels),
        fusion=AdditivePositionalFusion(extractor.out_channels, pos_dim_divisor=4),
        classifier=keras_classifier(extractor.out_channels, num_classes, dropout),
        num_patches=3,
        overlap=0.5,
        base_resolution=224,
        locations_per_level=locations_per_level,
        antialias=antialias,
        feature_weighting=feature_weighting,
        level_norm=level_norm,
    )


def tnet_timm(
    backbone: str,
    num_classes: int,
    base_resolution: int,
    num_patches: int,
    overlap: float,
    locations_per_level: Sequence[int],
    dropout: float = 0.0,
    location_stage: int = -2,
    antialias: bool = False,
    feature_weighting: bool = False,
    pretrained: bool = False,
    level_norm: bool = False,
    **timm_kwargs: object,
) -> TNet:
    """TNet on any timm CNN (:class:`TimmExtractor`), with the fMoW heads: additive positional encoding of width
    ``D / 4``, the SE location module, dropout and a linear classifier.

    Example: ``tnet_timm("resnet18", 10, base_resolution=112, num_patches=5, overlap=0.25, locations_per_level=(5,),
    level_norm=True)``. ``timm_kwargs`` go to ``timm.create_model``.
    """
    extractor = TimmExtractor(
        backbone, num_patches, location_stage=location_stage, pretrained=pretrained, **timm_kwargs
    )
    return TNet(
        extractor=extractor,
        location=SELocationModule(extractor.location_channels),
        fusion=AdditivePositionalFusion(extractor.out_channels, pos_dim_divisor=4),
        classifier=keras_classifier(extractor.out_channels, num_classes, dropout),
        num_patches=num_patches,
        overlap=overlap,
        base_resolution=base_resolution,
        locations_per_level=locations_per_level,
        antialias=antialias,
        feature_weighting=feature_weighting,
        level_norm=level_norm,
    )
