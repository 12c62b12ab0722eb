"""SANet (Zhong et al., CVPR 2020): the paper's tables and its loss-weight figure as experiments.

- ``sanet.ablation``: Table 1, PASCAL Context 59 classes, ResNet-50: FCN, then SA heads with and without
  the category and dense losses.
- ``sanet.fcn_se``: Table 3, FCN vs FCN-SE vs SANet on ResNet-50 and -101 (Context 59).
- ``sanet.pascal_context`` / ``sanet.pascal_context60``: Table 2, SANet-ResNet-101 and -EfficientNet on
  Context with 59 and 60 classes. Two experiments because a run's DataModule comes from the recipe
  alone, so the class protocol cannot change from one variant to the next.
- ``sanet.pascal_voc``: Tables 4 / 5, VOC 2012 without and with COCO pretraining.
- ``sanet.complexity``: Table 6's parameter count (55.5 M, SANet-ResNet-101); :func:`complexity_table`
  (``python benchmarks/sanet_complexity.py``) counts ours with and without the dense head.
- ``sanet.loss_weights``: Fig. 4, α swept over 0, 0.2, ..., 1 with β = 0.8, then β with α = 0.2.

Profiles: ``smoke`` (synthetic scenes, ``test_resnet``, seconds); ``small`` for ``sanet.fcn_se`` and
``sanet.loss_weights`` (real CamVid, the ImageNet EfficientNet-Lite0 of ``experiments.builders.CAMVID_SMALL``;
FCN, FCN-SE and SANet share recipe and seed); ``paper`` (the paper's recipe). A variant names the
paper's backbone; the ``backbone`` recipe key, when not ``None`` (smoke, small), replaces it, so in
``small`` the -R50 and -R101 rows of ``sanet.fcn_se`` train the same network: pass
``--variant FCN-R50 --variant FCN-SE-R50 --variant SANet-R50`` to train each network once.

The paper's recipe (Sec. 4.1, 4.4; spec §2.3): SGD, poly decay, batch 16, head at 10× the backbone's
rate (PyTorch-Encoding's, which SANet builds on); Context: lr 0.001, 80 epochs, 20 for the ablations
(Table 1, Table 3, Fig. 4); VOC (train_aug, 10,582 images): lr 0.0001, 80 epochs, and for the COCO row
50 epochs of fine-tuning from a COCO-pretrained SANet. Not stated by SANet, taken from EncNet as an
**assumption**: base size 520, crop 480, random scale 0.5-2.0 and flip, momentum 0.9, weight decay 1e-4.
The FCN baselines train with the plain cross-entropy of their one head.

Published numbers: only the values printed in the body text could be transcribed (spec §2.4); every
:class:`PaperNumber` carries its tag ([seed:000]: a write-up of the paper, [page:...]: a web listing).
Tables 4-6 are VOC *test-server* numbers; ``run`` measures val.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import lightning as L
import torch

from experiments.base import PaperNumber, Variant, register
from experiments.builders import (
    CAMVID_SMALL,
    DATA_ROOT,
    RUNTIME,
    SEGMENTATION_SMOKE,
    SegmentationExperiment,
    backbone_kwargs,
    segmentation_module,
)
from lightning_modules.pretrained_weights import load_checked, read_state_dict
from lightning_modules.sanet import SANet, SANetModule
from lightning_modules.segmentation import SegmentationModule

SMOKE: dict[str, Any] = dict(
    SEGMENTATION_SMOKE,
    alpha=0.2,
    beta=0.8,
)
# CAMVID_SMALL without its auxiliary-head weight: the FCN rows here have one head (on stage 4).
SMALL: dict[str, Any] = {**{k: v for k, v in CAMVID_SMALL.items() if k != "aux_weight"}, "alpha": 0.2, "beta": 0.8}
_PAPER: dict[str, Any] = dict(
    RUNTIME,
    backbone=None,  # each variant's own
    pretrained=True,
    output_stride=8,
    base_size=520,  # EncNet's, an assumption (see the module docstring)
    crop_size=480,
    eval_short_side=None,
    batch_size=16,
    num_workers=None,
    alpha=0.2,
    beta=0.8,
)
CONTEXT59_PAPER = dict(_PAPER, data="pascal_context_59", root=str(DATA_ROOT / "pascal_context"), max_epochs=80, lr=1e-3)
CONTEXT_ABLATION = {**CONTEXT59_PAPER, "max_epochs": 20}
VOC_PAPER = dict(_PAPER, data="voc", root=str(DATA_ROOT / "voc"), max_epochs=80, lr=1e-4, coco_checkpoint=None)

_SEED = "[seed:000]"
NETWORK_KEYS = ("sa_heads", "category", "dense", "dense_se")


def sanet_network(variant: Variant, recipe: Mapping[str, Any], num_classes: int) -> SANet:
    """The variant's network: its paper backbone unless the recipe names one, parts per its params."""
    kwargs = backbone_kwargs(recipe)
    kwargs["backbone"] = kwargs["backbone"] or variant.params["backbone"]
    parts = {key: variant.params[key] for key in NETWORK_KEYS if key in variant.params}
    return SANet(num_classes, **kwargs, **parts)


def sanet_module(variant: Variant, recipe: Mapping[str, Any], datamodule: L.LightningDataModule) -> SegmentationModule:
    """SANet's loss (α, β from the variant, else the recipe), or plain cross-entropy for an FCN / FCN-SE."""
    network = sanet_network(variant, recipe, datamodule.num_classes)
    if network.sa_heads is None and network.category_head is None:
        return segmentation_module(network, recipe, datamodule, {"out": 1.0})
    weights = {key: variant.params[key] if key in variant.params else recipe[key] for key in ("alpha", "beta")}
    return SANetModule(network, datamodule.num_classes, **weights, lr=recipe["lr"], class_names=datamodule.class_names)


class SANetExperiment(SegmentationExperiment):
    """Data and modules shared by the SANet experiments; a variant's params are ``backbone`` (the
    paper's), the :class:`SANet` switches ``sa_heads`` / ``category`` / ``dense`` / ``dense_se``, and
    optionally ``alpha`` / ``beta``."""

    paper = "SANet (Zhong et al., CVPR 2020)"

    def build_module(
        self, variant: Variant, recipe: Mapping[str, Any], datamodule: L.LightningDataModule
    ) -> SegmentationModule:
        return sanet_module(variant, recipe, datamodule)


FCN = {"sa_heads": False, "category": False}


@register
class SANetAblation(SANetExperiment):
    name = "sanet.ablation"
    table = "Table 1: PASCAL Context (59 classes, val), ResNet-50, 20 epochs: SA heads, category and dense losses"
    description = (
        "Absolute values were not retrieved; the text gives SANet's gain over the dilated FCN. Without the dense "
        "head the prediction is SA head 4's, with it Ŷ_den + Ŷ_SA4."
    )
    recipes: ClassVar[dict[str, dict[str, Any]]] = {"smoke": SMOKE, "paper": CONTEXT_ABLATION}

    def variants(self) -> list[Variant]:
        gains = (
            PaperNumber("mIoU_gain_over_FCN", 6.0, f"Table 1, body text {_SEED}"),
            PaperNumber("pixel_acc_gain_over_FCN", 2.7, f"Table 1, body text {_SEED}"),
        )
        r50 = {"backbone": "resnet50"}
        return [
            Variant("FCN", {**r50, **FCN}),
            Variant("SA", {**r50, "category": False, "dense": False}),
            Variant("SA+cat", {**r50, "category": True, "dense": False}),
            Variant("SA+den", {**r50, "category": False, "dense": True}),
            Variant("SANet", r50, gains),
        ]


@register
class SANetFCNSE(SANetExperiment):
    name = "sanet.fcn_se"
    table = "Table 3: FCN vs FCN-SE vs SANet, PASCAL Context (59 classes, val), ResNet-50 / -101, 20 epochs"
    description = "The text: FCN-SE barely improves on FCN, SANet adds 4.1 (R50) / 4.5 (R101) mIoU; no absolute values."
    recipes: ClassVar[dict[str, dict[str, Any]]] = {"smoke": SMOKE, "small": SMALL, "paper": CONTEXT_ABLATION}

    def variants(self) -> list[Variant]:
        gains = {50: 4.1, 101: 4.5}
        rows = []
        for depth, gain in gains.items():
            backbone = {"backbone": f"resnet{depth}"}
            rows += [
                Variant(f"FCN-R{depth}", {**backbone, **FCN}),
                Variant(f"FCN-SE-R{depth}", {**backbone, **FCN, "dense_se": True}),
                Variant(
                    f"SANet-R{depth}",
                    backbone,
                    (PaperNumber("mIoU_gain_over_FCN", gain, f"Table 3, body text {_SEED}"),),
                ),
            ]
        return rows


@register
class SANetPascalContext(SANetExperiment):
    name = "sanet.pascal_context"
    table = "Table 2: PASCAL Context, 59 classes (background ignored), val"
    description = (
        "The source contradicts itself on which of 53.0 / 52.1 is the 59-class number; 53.0 is read as 59 classes "
        "(web listing 'PASCAL Context (val) 53.0'). Tested in the paper with multi-scale inputs (not stated)."
    )
    recipes: ClassVar[dict[str, dict[str, Any]]] = {"smoke": SMOKE, "paper": CONTEXT59_PAPER}

    def variants(self) -> list[Variant]:
        return [
            Variant(
                "SANet-R101",
                {"backbone": "resnet101"},
                (PaperNumber("mIoU", 53.0, f"Table 2 {_SEED}; [page: wizwand]"),),
            ),
            Variant("SANet-EffNet-b7", {"backbone": "tf_efficientnet_b7"}),
        ]


@register
class SANetPascalContext60(SANetExperiment):
    name = "sanet.pascal_context60"
    table = "Table 2: PASCAL Context, 60 classes (with background), val"
    description = "54.4 (EfficientNet) is the abstract's state-of-the-art number; its class protocol is uncertain."
    recipes: ClassVar[dict[str, dict[str, Any]]] = {
        "smoke": SMOKE,
        "paper": {**CONTEXT59_PAPER, "data": "pascal_context_60"},
    }

    def variants(self) -> list[Variant]:
        return [
            Variant(
                "SANet-R101",
                {"backbone": "resnet101"},
                (PaperNumber("mIoU", 52.1, f"Table 2, with background {_SEED}"),),
            ),
            Variant(
                "SANet-EffNet-b7",
                {"backbone": "tf_efficientnet_b7"},
                (PaperNumber("mIoU", 54.4, f"Table 2 / abstract {_SEED}; 60 classes probable, not certain"),),
            ),
        ]


@register
class SANetPascalVOC(SANetExperiment):
    name = "sanet.pascal_voc"
    table = "Tables 4 / 5: PASCAL VOC 2012, ResNet-101, without / with COCO pretraining (paper: test server)"
    description = (
        "The COCO row fine-tunes a COCO-pretrained SANet (not trained here): "
        "--variant SANet-R101-COCO --set coco_checkpoint=PATH max_epochs=50."
    )
    recipes: ClassVar[dict[str, dict[str, Any]]] = {"smoke": {**SMOKE, "coco_checkpoint": None}, "paper": VOC_PAPER}

    def variants(self) -> list[Variant]:
        return [
            Variant(
                "SANet-R101",
                {"backbone": "resnet101"},
                (PaperNumber("mIoU", 83.2, f"Table 4, VOC 2012 test, no COCO {_SEED}; abstract"),),
            ),
            Variant(
                "SANet-R101-COCO",
                {"backbone": "resnet101", "coco": True},
                (PaperNumber("mIoU", 86.1, f"Table 5, VOC 2012 test, COCO-pretrained {_SEED}"),),
            ),
        ]

    def build_module(
        self, variant: Variant, recipe: Mapping[str, Any], datamodule: L.LightningDataModule
    ) -> SegmentationModule:
        module = sanet_module(variant, recipe, datamodule)
        if not variant.params.get("coco"):
            return module
        path = recipe["coco_checkpoint"]
        if path is None:
            # The smoke profile checks the fine-tuning wiring without a COCO model.
            if recipe["profile"] == "smoke":
                return module
            raise ValueError(
                f"{variant.name} fine-tunes a SANet pretrained on COCO, which this codebase does not train: pass "
                "--set coco_checkpoint=PATH (a checkpoint of the same network with VOC's 21 classes) max_epochs=50."
            )
        state = read_state_dict(path)
        # A Lightning checkpoint names the network's tensors "network.<name>".
        state = {key.removeprefix("network."): value for key, value in state.items()}
        load_checked(module.network, state, f"coco_checkpoint {path!r}")
        return module


@register
class SANetComplexity(SANetExperiment):
    name = "sanet.complexity"
    table = "Table 6: parameters of SANet-ResNet-101 (VOC); counts by benchmarks/sanet_complexity.py"
    description = "Table 6's 55.5 M is text only (no code exists); the MACs were not retrieved."
    recipes: ClassVar[dict[str, dict[str, Any]]] = {"smoke": SMOKE, "paper": VOC_PAPER}

    def variants(self) -> list[Variant]:
        return [
            Variant("SANet-R50", {"backbone": "resnet50"}),
            Variant(
                "SANet-R101", {"backbone": "resnet101"}, (PaperNumber("params_M", 55.5, f"Table 6 discussion {_SEED}"),)
            ),
        ]


LOSS_WEIGHTS = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)


@register
class SANetLossWeights(SANetExperiment):
    name = "sanet.loss_weights"
    table = "Fig. 4: loss weights α (β = 0.8) and β (α = 0.2), PASCAL Context (59 classes), ResNet-50, 20 epochs"
    description = (
        "The paper plots the curves (values not retrieved) and picks α = 0.2, β = 0.8. The small profile is a "
        "shortened CamVid schedule (20 epochs) so that the whole sweep runs in one command."
    )
    # No alpha / beta keys: every variant sets both.
    recipes: ClassVar[dict[str, dict[str, Any]]] = {
        profile: {key: value for key, value in recipe.items() if key not in ("alpha", "beta")}
        for profile, recipe in (("smoke", SMOKE), ("small", {**SMALL, "max_epochs": 20}), ("paper", CONTEXT_ABLATION))
    }

    def variants(self) -> list[Variant]:
        alpha_sweep = [(alpha, 0.8) for alpha in LOSS_WEIGHTS]
        beta_sweep = [(0.2, beta) for beta in LOSS_WEIGHTS if beta != 0.8]  # (0.2, 0.8) is in the α sweep
        return [
            Variant(f"alpha={alpha:.1f} beta={beta:.1f}", {"backbone": "resnet50", "alpha": alpha, "beta": beta})
            for alpha, beta in (*alpha_sweep, *beta_sweep)
        ]


def _count(module: torch.nn.Module | None) -> int:
    return 0 if module is None else sum(p.numel() for p in module.parameters())


def complexity_rows(num_classes: int = 59, num_convs: Sequence[int] = (2, 1)) -> list[dict[str, Any]]:
    """Parameters of SANet-ResNet-50 / -101 by part, for each number of convolutions per SA path.

    The paper does not say whether its 55.5 M counts the dense ("auxiliary") head; it is part of the
    final prediction here, so ``total`` includes it and ``without_dense`` leaves it out. Built on the
    ``meta`` device: nothing is allocated.
    """
    rows = []
    for depth in (50, 101):
        for convs in num_convs:
            with torch.device("meta"):
                network = SANet(num_classes, f"resnet{depth}", sa_kwargs={"num_convs": convs})
            parts = {
                "backbone": _count(network.backbone),
                "sa_heads": _count(network.sa_heads),
                "dense_head": _count(network.dense_head),
                "category": _count(network.category_head),
            }
            total = _count(network)
            rows.append(
                {
                    "model": f"SANet-R{depth}",
                    "num_classes": num_classes,
                    "num_convs": convs,
                    **parts,
                    "total": total,
                    "without_dense": total - parts["dense_head"],
                    "paper_M": 55.5 if depth == 101 else None,
                }
            )
    return rows


def complexity_table(num_classes: int = 59, num_convs: Sequence[int] = (2, 1)) -> str:
    """Markdown: :func:`complexity_rows` in millions (10^6), beside Table 6's 55.5 M for SANet-ResNet-101."""
    lines = [
        "| model | classes | convs / SA path | backbone | SA heads | dense head | category | total | "
        "total w/o dense head | paper (M) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in complexity_rows(num_classes, num_convs):
        cells = [row[key] / 1e6 for key in ("backbone", "sa_heads", "dense_head", "category")]
        lines.append(
            f"| {row['model']} | {row['num_classes']} | {row['num_convs']} | "
            + " | ".join(f"{cell:.2f}" for cell in cells)
            + f" | {row['total'] / 1e6:.2f} ({row['total']:,}) | {row['without_dense'] / 1e6:.2f} "
            f"| {row['paper_M'] or '—'} |"
        )
    return "\n".join(lines)
