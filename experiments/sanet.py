"""SANet (Zhong et al., CVPR 2020): the paper's tables and its loss-weight figure as experiments.

- ``sanet.ablation``: Table 1, PASCAL Context 59 classes, ResNet-50: FCN, then SA heads with and without
  the category and dense losses.
- ``sanet.fcn_se``: Table 3, FCN vs FCN-SE vs SANet on ResNet-50 and -101 (Context 59, 20 epochs).
- ``sanet.pascal_context`` / ``sanet.pascal_context60``: SANet-ResNet-101 and -EfficientNet on Context with
  59 and 60 classes (Table 2 and the text, see below). Two experiments because a run's DataModule comes
  from the recipe alone, so the class protocol cannot change from one variant to the next.
- ``sanet.pascal_voc``: Tables 4 / 5, VOC 2012 without and with COCO pretraining.
- ``sanet.complexity``: Table 6's parameter count (55.5 M, SANet-ResNet-101); :func:`complexity_table`
  (``python benchmarks/sanet_complexity.py``) counts ours with and without the dense head.
- ``sanet.loss_weights``: Fig. 4's points, α in {0, 0.1, 0.2, 0.4, 0.6, 0.8, 1} with β = 0.8, then β in
  {0.2, 0.4, 0.6, 1} with α = 0.2.

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

Published numbers (spec §2.4, §2.4a), in percent; every :class:`PaperNumber` carries its tag:

- [P-img]: read from images of the paper's Table 2, Table 3 and Fig. 4 kept in the public repository
  awesome-davian/awesome-reviews-kaist (``.gitbook/assets/3/table2.png``, ``table3.png``, ``fig4.png``):
  Table 3's mIoU and pixel accuracy of every row (SANet − FCN is +4.1 for R50 and +4.5 for R101, the
  gains the text quotes), Table 2's two SANet rows, and Fig. 4's points (read off the plot, ±0.05).
- [seed:000] (a write-up of the paper) and [page:...] (a web listing): the body text's numbers. Table 1
  was not found as an image, so it keeps the text's gains over FCN (+6.0 mIoU, +2.7 pixel accuracy);
  Tables 4-6 are VOC *test-server* numbers (``run`` measures val).

Which Context number has which class protocol. The Table 2 image has SANet (R101) **52.1** and SANet
(EffNet-b7) **54.4**, beside EncNet (R101) 51.7 and older methods (not reproduced here); it has no
53.0. The text [seed:000] gives SANet-R101 53.0, then "52.1 when including background", and puts Table
2's caption on 60 classes with background (the transcription of the image gives no caption). Both
sources agree on this reading: 52.1 and 54.4, printed in Table 2, are ``sanet.pascal_context60``'s;
53.0, printed only in the text (and listed as "PASCAL Context (val) 53.0" on a web page), is
``sanet.pascal_context``'s 59-class number. Caveat: the DANet author calls EncNet's 51.7 a 59-class
number (CASIA-IVA-Lab/DANet#11), so Table 2 may not score every row on one protocol; 54.4 has Table 2's
protocol, whichever that is for SANet's rows.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import lightning as L
import torch

from experiments.base import PaperNumber, Variant, register
from experiments.builders import (
    CAMVID_SMALL,
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
CONTEXT59_PAPER = dict(_PAPER, data="pascal_context_59", root=None, max_epochs=80, lr=1e-3)
CONTEXT_ABLATION = {**CONTEXT59_PAPER, "max_epochs": 20}
VOC_PAPER = dict(_PAPER, data="voc", root=None, max_epochs=80, lr=1e-4, coco_checkpoint=None)

_SEED = "[seed:000]"
_IMAGES = "awesome-davian/awesome-reviews-kaist .gitbook/assets/3"
_TABLE2 = f"Table 2 [P-img] ({_IMAGES}/table2.png)"
_TABLE3 = f"Table 3 [P-img] ({_IMAGES}/table3.png)"
_FIG4 = f"Fig. 4 [P-img] ({_IMAGES}/fig4.png)"
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


# Table 3 [P-img]: (mIoU, pixel accuracy) in %, PASCAL Context 59 classes, each model trained 20 epochs.
TABLE3: dict[str, tuple[float, float]] = {
    "FCN-R50": (44.9, 76.2),
    "FCN-SE-R50": (44.6, 76.0),
    "SANet-R50": (49.0, 78.9),
    "FCN-R101": (45.6, 76.7),
    "FCN-SE-R101": (45.7, 76.6),
    "SANet-R101": (50.1, 79.2),
}


@register
class SANetFCNSE(SANetExperiment):
    """Table 3: dilated FCN, FCN with an SE block on its head (FCN-SE) and SANet, ResNet-50 and -101.

    The ``paper`` profile is the Context ablation schedule, 20 epochs per model, as Table 3 states
    (spec §2.3, §2.4a); its numbers are absolute mIoU and pixel accuracy read from the table's image.
    Rows are grouped by depth, not in the table's order (FCN50, FCN101, FCN50-SE, ...), because in ``small``
    both depths train one network: the three R50 rows are the ones to run there.
    """

    name = "sanet.fcn_se"
    table = "Table 3: FCN vs FCN-SE vs SANet, PASCAL Context (59 classes, val), ResNet-50 / -101, 20 epochs"
    description = (
        "Read from the table's image: FCN-SE is within 0.3 mIoU of FCN, SANet adds 4.1 (R50) / 4.5 (R101) mIoU "
        "and 2.7 / 2.5 pixel accuracy."
    )
    recipes: ClassVar[dict[str, dict[str, Any]]] = {"smoke": SMOKE, "small": SMALL, "paper": CONTEXT_ABLATION}

    def variants(self) -> list[Variant]:
        rows = []
        for depth in (50, 101):
            backbone = {"backbone": f"resnet{depth}"}
            params = {
                f"FCN-R{depth}": {**backbone, **FCN},
                f"FCN-SE-R{depth}": {**backbone, **FCN, "dense_se": True},
                f"SANet-R{depth}": backbone,
            }
            for name, row_params in params.items():
                miou, pixel_acc = TABLE3[name]
                numbers = (PaperNumber("mIoU", miou, _TABLE3), PaperNumber("pixel_acc", pixel_acc, _TABLE3))
                rows.append(Variant(name, row_params, numbers))
        return rows


@register
class SANetPascalContext(SANetExperiment):
    name = "sanet.pascal_context"
    table = "PASCAL Context, 59 classes (background ignored), val: the body text's number (Table 2 is 60 classes)"
    description = (
        "53.0 (ResNet-101) is printed in the text only, not in the Table 2 image, and read as the 59-class number "
        "(the text's 'with background' number is 52.1; web listing 'PASCAL Context (val) 53.0'). No 59-class "
        "EfficientNet number. Test protocol (multi-scale?) not stated."
    )
    recipes: ClassVar[dict[str, dict[str, Any]]] = {"smoke": SMOKE, "paper": CONTEXT59_PAPER}

    def variants(self) -> list[Variant]:
        return [
            Variant(
                "SANet-R101",
                {"backbone": "resnet101"},
                (PaperNumber("mIoU", 53.0, f"body text, not in Table 2 {_SEED}; [page: wizwand]"),),
            ),
            Variant("SANet-EffNet-b7", {"backbone": "tf_efficientnet_b7"}),
        ]


@register
class SANetPascalContext60(SANetExperiment):
    name = "sanet.pascal_context60"
    table = "Table 2: PASCAL Context, 60 classes (with background), val"
    description = (
        "Both numbers are Table 2's SANet rows (image); the 60-class caption is the text's. 54.4 (EfficientNet) is "
        "also the abstract's state-of-the-art number."
    )
    recipes: ClassVar[dict[str, dict[str, Any]]] = {
        "smoke": SMOKE,
        "paper": {**CONTEXT59_PAPER, "data": "pascal_context_60"},
    }

    def variants(self) -> list[Variant]:
        return [
            Variant(
                "SANet-R101",
                {"backbone": "resnet101"},
                (PaperNumber("mIoU", 52.1, f"{_TABLE2}; text: with background {_SEED}"),),
            ),
            Variant(
                "SANet-EffNet-b7",
                {"backbone": "tf_efficientnet_b7"},
                (PaperNumber("mIoU", 54.4, f"{_TABLE2}; abstract {_SEED}"),),
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


# Fig. 4 [P-img]: SANet-R50 mIoU (%) on PASCAL Context 59, 20 epochs per point, by α (β = 0.8) and by β (α = 0.2).
FIG4_ALPHA: dict[float, float] = {0.0: 47.7, 0.1: 48.7, 0.2: 49.0, 0.4: 48.8, 0.6: 48.6, 0.8: 48.3, 1.0: 47.9}
FIG4_BETA: dict[float, float] = {0.2: 48.3, 0.4: 48.6, 0.6: 48.6, 0.8: 49.0, 1.0: 48.8}


@register
class SANetLossWeights(SANetExperiment):
    """Fig. 4: one row per point of the figure's two curves, α with β = 0.8, then β with α = 0.2.

    The ``paper`` profile is the Context ablation schedule, 20 epochs per point (spec §2.3, §2.4a).
    """

    name = "sanet.loss_weights"
    table = "Fig. 4: loss weights α (β = 0.8) and β (α = 0.2), PASCAL Context (59 classes), ResNet-50, 20 epochs"
    description = (
        "Points read off the figure's image (±0.05); the paper picks α = 0.2, β = 0.8 (49.0). The small profile is "
        "a shortened CamVid schedule (20 epochs) so that the whole sweep runs in one command."
    )
    # No alpha / beta keys: every variant sets both.
    recipes: ClassVar[dict[str, dict[str, Any]]] = {
        profile: {key: value for key, value in recipe.items() if key not in ("alpha", "beta")}
        for profile, recipe in (("smoke", SMOKE), ("small", {**SMALL, "max_epochs": 20}), ("paper", CONTEXT_ABLATION))
    }

    def variants(self) -> list[Variant]:
        read = "±0.05, read off the plot"
        alpha_sweep = [(alpha, 0.8, miou, f"{_FIG4}, α curve (β = 0.8), {read}") for alpha, miou in FIG4_ALPHA.items()]
        # (0.2, 0.8) is the α curve's point too, at 49.0 on both curves: one run.
        beta_sweep = [
            (0.2, beta, miou, f"{_FIG4}, β curve (α = 0.2), {read}") for beta, miou in FIG4_BETA.items() if beta != 0.8
        ]
        return [
            Variant(
                f"alpha={alpha:.1f} beta={beta:.1f}",
                {"backbone": "resnet50", "alpha": alpha, "beta": beta},
                (PaperNumber("mIoU", miou, source),),
            )
            for alpha, beta, miou, source in (*alpha_sweep, *beta_sweep)
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
