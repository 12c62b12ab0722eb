"""The whole-image baselines TNet is compared with: one pass of the same feature extractor over the whole image,
its global feature, the same kind of classifier (official ``Baseline_CNN`` in ``ImageNet/models.py`` and
``fMoW/models_fMoW.py``).

- :func:`bagnet77_baseline`: BagNet-77 on the full 224 px ImageNet image, keep-prob 0.375; 20,546,664 parameters.
- :func:`efficientnet_b0_baseline`: EfficientNet-B0 on fMoW at 224 / 448 / 896 px; 4,086,970 parameters.
- :func:`timm_baseline`: any timm CNN, on the whole image or on the image first resized to ``input_size``
  (the Megapixel digits "downsampled" row).
"""

from __future__ import annotations

import torch
from torch import nn

from lightning_modules.tnet.bagnet import BagNet77
from lightning_modules.tnet.extractors import EfficientNetExtractor, TimmExtractor
from lightning_modules.tnet.initializers import glorot_linear
from lightning_modules.tnet.network import keras_classifier
from lightning_modules.tnet.traversal import resize_to_base


class WholeImageClassifier(nn.Module):
    """``classifier(h)`` for the global feature ``h`` of a TNet feature extractor on the whole image.

    Args:
        extractor: one of TNet's extractors; its ``global_features(images)`` gives ``h``.
        classifier: maps ``(B, D)`` to ``(B, K)``.
        input_size: resize the image to this side first (bilinear), or ``None`` to use it as it comes.
        antialias: antialias that resize.

    Shapes: ``(B, 3, H, W)`` → ``(B, K)``.
    """

    def __init__(
        self, extractor: nn.Module, classifier: nn.Module, input_size: int | None = None, antialias: bool = False
    ) -> None:
        super().__init__()
        self.extractor = extractor
        self.classifier = classifier
        self.input_size = input_size
        self.antialias = antialias

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if self.input_size is not None:
            images = resize_to_base(images, (self.input_size, self.input_size), self.antialias)
        return self.classifier(self.extractor.global_features(images))


def bagnet77_baseline(num_classes: int = 1000, keep_prob: float = 0.375) -> WholeImageClassifier:
    """BagNet-77 on the whole image with a Glorot-normal linear classifier (the official ImageNet baseline)."""
    extractor = BagNet77(dropout_layers=1, keep_prob=keep_prob)
    return WholeImageClassifier(extractor, glorot_linear(extractor.out_channels, num_classes))


def efficientnet_b0_baseline(
    num_classes: int = 62, dropout: float = 0.75, drop_path_rate: float = 0.5
) -> WholeImageClassifier:
    """EfficientNet-B0 on the whole image (the official fMoW baseline; dropout / stochastic depth per recipe)."""
    extractor = EfficientNetExtractor(drop_path_rate=drop_path_rate)
    return WholeImageClassifier(extractor, keras_classifier(extractor.out_channels, num_classes, dropout))


def timm_baseline(
    backbone: str,
    num_classes: int,
    input_size: int | None = None,
    dropout: float = 0.0,
    antialias: bool = False,
    pretrained: bool = False,
    **timm_kwargs: object,
) -> WholeImageClassifier:
    """A timm CNN on the whole image, or on the image resized to ``input_size``; ``timm_kwargs`` go to
    ``timm.create_model`` (e.g. ``norm_layer="groupnorm1"``)."""
    extractor = TimmExtractor(backbone, grid_size=1, pretrained=pretrained, **timm_kwargs)
    classifier = keras_classifier(extractor.out_channels, num_classes, dropout)
    return WholeImageClassifier(extractor, classifier, input_size=input_size, antialias=antialias)
