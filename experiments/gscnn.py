"""Gated-SCNN (Takikawa et al., ICCV 2019): the paper's tables as experiments.

- ``gscnn.cityscapes``: Tables 1 and 2 and the distance plot, Cityscapes val, single scale: DeepLabV3+ and GSCNN on
  WideResNet-38. Both rows log the mIoU with the IoU of each class (Table 1), the boundary F-score at 3 / 5 / 9 /
  12 px with each class's (Table 2), and the mIoU on centre crops of 0 / 200 / 300 / 400 px (``crop_mIoU/<px>``,
  the paper's distance-based evaluation).
- ``gscnn.ablation``: Table 3, ResNet-101, 100 epochs: the baseline, + the shape stream with its gated
  convolutions (GCL), + the image gradients (Canny); mIoU and the 5 px boundary F.
- ``gscnn.dual_task``: Table 4, ResNet-101: baseline, + GCL, + GCL + dual-task loss; boundary F at each threshold.
- ``gscnn.backbones``: Table 5, baseline and GSCNN on ResNet-50, ResNet-101 and WideResNet-38. The parameter
  increase of the shape stream needs no training: ``python -m experiments table gscnn.backbones`` computes it for
  each backbone beside the paper's (:func:`parameter_table`).
- ``gscnn.cityscapes_test``: Table 6, GSCNN on the Cityscapes test server. A run scores val; ``python -m experiments
  submit --ckpt ...`` writes the server's submission (label-id PNGs of the test images).

The "DeepLabV3+" and "baseline" rows are :class:`~lightning_modules.gscnn.GSCNN` without its shape stream: the
regular stream, the DeepLabV3+ ASPP and the decoder exactly as GSCNN builds them (decoder on the stride-2
features), so that a row and its GSCNN differ by the shape stream alone, as Table 5's parameter column counts it.

A row's params: ``backbone`` (the paper's: ``"wider_resnet38"``, ``"resnet50"`` or ``"resnet101"``),
``shape_stream`` (default True), ``image_gradients`` (the Canny input of the fusion, default True) and
``dual_task`` (the dual-task loss, default True). The ablation rows are our reading of the secondary notes: Table
3's "GCL" row keeps the dual-task loss and drops the Canny input, Table 4's "GCL" row keeps the Canny input and
drops the dual-task loss (which would explain their different 5 px F, 72.2 and 70.8).

Profiles: ``smoke`` (synthetic scenes, ``test_resnet``, seconds; every experiment); ``small`` for
``gscnn.cityscapes`` only (real CamVid and the ImageNet EfficientNet-Lite0 of
``experiments.builders.CAMVID_SMALL``, the same recipe for both rows; crop factors scaled from 1024 rows to
CamVid's); ``paper`` (the released code's Cityscapes recipe; the data is read from ``cityscapes``
under the data root, ``datamodules.store``). A row names the paper's backbone; the ``backbone`` recipe key, when
not ``None`` (smoke, small), replaces it.

The ``paper`` recipe trains as the released code does (official ``train.py``, ``optimizer.py`` and ``datasets/``):
crop 720, batch 8, 175 epochs, SGD lr 0.01, momentum 0.9, weight decay 1e-4, one learning rate for the whole network
(``head_lr_mult=1``), poly decay of power 1.0 stepped once per epoch, random scale 0.5-2.0 of the full image, flip.
``batch_size`` is per process: the official 8 were 1 image on each of 8 GPUs, which ``--devices 8 --set
batch_size=1`` reproduces (the losses' per-image statistics make one GPU with 8 images equivalent). The paper's
text, as secondary notes report it [S], says crop 800, batch 16 on 8 GPUs, 230 epochs for the Table 1 val model (100
for the ablations, which ``gscnn.ablation`` and ``gscnn.dual_task`` use) and "polynomial" decay without its
exponent: ``--devices 8 --set crop_size=800 batch_size=2 max_epochs=230 poly_power=0.9 poly_interval=step`` trains
that with DeepLab's usual per-iteration exponent 0.9, an assumption. The released code also jitters colours (0.25)
and blurs every image (σ 0.15-1.3); the DataModules here do neither. Loss weights 1 / 20 / 1 / 1 (segmentation,
edge, attention, dual task), the ×20 applied once.

Where the official model or losses differ from the paper (bugs included), every recipe follows the paper, and a
recipe key reproduces the released behaviour (:mod:`lightning_modules.gscnn.module` lists them side by side):
``dual_mode="released"`` (the dual-task loss without its spatial gradient, τ 0.5), ``edge_bce="released"``
(sigmoid applied twice in the edge loss), ``onehot_offset=1`` (road gets no edge channel), ``canny_mode="released"``
(Canny of the normalised image cast to uint8, on a 0/255 scale). ``boundary_thresholds`` default to the paper's
3 / 5 / 9 / 12 px at 1024×2048 (0.00088 of the diagonal first; the official default 0.0005 is 2 px).

WideResNet-38: the paper trains it from ImageNet weights, which timm does not have; the released code loads none
(random initialisation). ``wrn_weights`` names a local ImageNet WRN-38 state dict (NVIDIA's
semantic-segmentation release); without it the ``paper`` recipe's WRN rows stop with a message saying so, and
``--set pretrained=False`` trains from scratch as the released code does.

Published numbers, in percent: Tables 1 and 2 and the distance plot are read from the official repository's
images (``docs/resources/table.png``, ``crop.jpg``) [V-asset]; Tables 3-5 come from secondary paper notes [S],
not checked against the PDF; the test number of Table 6 from nv-tlabs/GSCNN#23 and #2.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import lightning as L
import torch

from datamodules.cityscapes import CityscapesDataModule
from experiments.base import PaperNumber, Variant, register
from experiments.builders import (
    CAMVID_SMALL,
    RUNTIME,
    SEGMENTATION_SMOKE,
    SegmentationExperiment,
    backbone_kwargs,
)
from lightning_modules.gscnn import GSCNN, GSCNNModule
from lightning_modules.metrics.boundary import DEFAULT_THRESHOLDS

# The four tolerances of Table 2 as fractions of the diagonal, and their pixels at 1024×2048.
THRESHOLD_PIXELS = dict(zip(DEFAULT_THRESHOLDS, (3, 5, 9, 12), strict=True))
CROP_FACTORS = (0, 200, 300, 400)
CITYSCAPES_CLASSES = CityscapesDataModule.class_names

_GSCNN_KEYS: dict[str, Any] = dict(
    wrn_weights=None,
    dual_mode="paper",
    tau=None,
    edge_bce="paper",
    onehot_offset=0,
    canny_mode="device",
    checkpoint_shape_stream=False,
    boundary_thresholds=DEFAULT_THRESHOLDS,
    crop_factors=(0,),
    crop_reference_height=None,
    head_lr_mult=10.0,
    poly_power=0.9,
    poly_interval="step",
)
SMOKE: dict[str, Any] = dict(SEGMENTATION_SMOKE, **_GSCNN_KEYS, num_train=8, num_val=4)
SMOKE["crop_factors"] = (0, 4)
# CAMVID_SMALL (poly 0.9 per step) for both rows, with one learning rate for the whole network as the official
# code trains: at CamVid's 10× head rate the shape stream, whose edge loss weighs 20, diverged to NaN within six
# steps. The crop factors are the paper's pixels at 1024 rows, scaled to the evaluated images.
SMALL: dict[str, Any] = {
    **{key: value for key, value in CAMVID_SMALL.items() if key != "aux_weight"},
    **_GSCNN_KEYS,
    "head_lr_mult": 1.0,
    "crop_factors": CROP_FACTORS,
    "crop_reference_height": 1024,
}
CITYSCAPES_PAPER: dict[str, Any] = dict(
    RUNTIME,
    **_GSCNN_KEYS,
    data="cityscapes",
    root=None,
    backbone=None,  # each row's own
    pretrained=True,
    output_stride=8,
    base_size=1024,
    crop_size=720,
    scale_range=(0.5, 2.0),
    eval_short_side=None,
    batch_size=8,
    num_workers=None,
    max_epochs=175,
    lr=0.01,
    check_val_every_n_epoch=25,
)
CITYSCAPES_PAPER.update(head_lr_mult=1.0, poly_power=1.0, poly_interval="epoch", crop_factors=CROP_FACTORS)
ABLATION_PAPER: dict[str, Any] = {**CITYSCAPES_PAPER, "max_epochs": 100, "crop_factors": (0,)}

# The paper's backbones as timm names (torchvision's ImageNet ResNets) or this codebase's WRN-38.
BACKBONES = {"wider_resnet38": "wider_resnet38", "resnet50": "resnet50.tv_in1k", "resnet101": "resnet101.tv_in1k"}


def backbone_name(variant: Variant, recipe: Mapping[str, Any]) -> str:
    """The recipe's backbone, or the row's (``BACKBONES``)."""
    name = variant.params["backbone"]
    if name not in BACKBONES:
        raise ValueError(f"variant {variant.name!r}: backbone must be one of {sorted(BACKBONES)}, got {name!r}.")
    return recipe["backbone"] or BACKBONES[name]


def weights_kwargs(backbone: str, recipe: Mapping[str, Any]) -> dict[str, Any]:
    """``pretrained`` / ``pretrained_path`` of the row's network.

    timm backbones take the recipe's ``pretrained``; WideResNet-38, which no hub holds, takes ``wrn_weights`` (a local
    ImageNet state dict), so that one command can train rows of both kinds.

    Raises:
        ValueError: for WRN-38 with ``pretrained`` set and no ``wrn_weights``.
    """
    if backbone != "wider_resnet38":
        return {"pretrained": recipe["pretrained"], "pretrained_path": None}
    path = recipe["wrn_weights"]
    if recipe["pretrained"] is not False and path is None:
        raise ValueError(
            "WideResNet-38's ImageNet weights are not on any hub: --set wrn_weights=<a local WRN-38 state dict> "
            "(NVIDIA semantic-segmentation's ImageNet release), or --set pretrained=False to start from random "
            "weights as the released Gated-SCNN code does."
        )
    return {"pretrained": False, "pretrained_path": path}


def gscnn_module(variant: Variant, recipe: Mapping[str, Any], datamodule: L.LightningDataModule) -> GSCNNModule:
    """The row's network (with or without shape stream and image gradients), its losses and evaluation."""
    params = variant.params
    backbone = backbone_name(variant, recipe)
    kwargs = {**backbone_kwargs(recipe), "backbone": backbone, **weights_kwargs(backbone, recipe)}
    network = GSCNN(
        datamodule.num_classes,
        **kwargs,
        shape_stream=params.get("shape_stream", True),
        image_gradients=params.get("image_gradients", True),
        canny_mode=recipe["canny_mode"],
        checkpoint_shape_stream=recipe["checkpoint_shape_stream"],
    )
    return GSCNNModule(
        network,
        datamodule.num_classes,
        dual_weight=1.0 if params.get("dual_task", True) else 0.0,
        dual_mode=recipe["dual_mode"],
        tau=recipe["tau"],
        edge_bce=recipe["edge_bce"],
        onehot_offset=recipe["onehot_offset"],
        lr=recipe["lr"],
        head_lr_mult=recipe["head_lr_mult"],
        poly_power=recipe["poly_power"],
        poly_interval=recipe["poly_interval"],
        class_names=datamodule.class_names,
        boundary_thresholds=tuple(recipe["boundary_thresholds"]),
        crop_factors=tuple(recipe["crop_factors"]),
        crop_reference_height=recipe["crop_reference_height"],
    )


class GSCNNExperiment(SegmentationExperiment):
    """Data and modules shared by the Gated-SCNN experiments (see the module docstring for a row's params)."""

    paper = "Gated-SCNN (Takikawa et al., ICCV 2019)"

    def build_module(
        self, variant: Variant, recipe: Mapping[str, Any], datamodule: L.LightningDataModule
    ) -> GSCNNModule:
        return gscnn_module(variant, recipe, datamodule)


def boundary_numbers(values: Sequence[float], source: str) -> tuple[PaperNumber, ...]:
    """Mean boundary F (%) at the four thresholds of :data:`THRESHOLD_PIXELS`, 3 px first."""
    return tuple(
        PaperNumber(f"boundary_F/{threshold:g}", value, f"{source}, {pixels} px")
        for (threshold, pixels), value in zip(THRESHOLD_PIXELS.items(), values, strict=True)
    )


_ASSET = "[V-asset] nv-tlabs/GSCNN table.png"
_CROP = "[V-asset] nv-tlabs/GSCNN crop.jpg"


def _values(text: str) -> tuple[float, ...]:
    """Numbers as printed in a table row, separated by spaces."""
    return tuple(float(value) for value in text.split())


# Table 1, Cityscapes val IoU (%) per class, in train-id order.
TABLE1_IOU: dict[str, tuple[float, ...]] = {
    "DeepLabV3+": _values(
        "98.2 84.9 92.7 57.3 62.1 65.2 68.6 78.9 92.7 63.5 95.3 82.3 62.8 95.4 85.3 89.1 80.9 64.6 77.3"
    ),
    "GSCNN": _values("98.3 86.3 93.3 55.8 64.0 70.8 75.9 83.1 93.0 65.1 95.2 85.3 67.9 96.0 80.8 91.2 83.3 69.6 80.4"),
}
TABLE1_MIOU = {"DeepLabV3+": 78.8, "GSCNN": 80.8}
# Table 2, boundary F (%) per class at 3, 5, 9 and 12 px, and the means.
TABLE2_F: dict[str, dict[int, tuple[float, ...]]] = {
    "DeepLabV3+": {
        3: _values("83.7 65.1 69.7 52.2 46.2 72.0 62.8 67.7 71.8 52.0 80.9 61.5 66.4 78.8 78.2 83.9 91.7 77.9 60.9"),
        5: _values("88.1 72.6 78.1 55.0 49.1 77.9 69.0 74.7 81.0 55.8 86.4 69.0 71.9 85.4 79.4 85.4 92.1 79.4 68.4"),
        9: _values("91.2 78.3 84.8 58.1 52.4 82.1 73.7 79.5 87.9 59.4 89.5 74.7 76.8 90.0 80.5 86.6 92.5 81.0 75.4"),
        12: _values("92.3 80.4 87.2 59.6 53.7 83.8 75.2 81.2 90.2 60.8 90.4 76.6 78.7 91.6 81.0 87.1 92.6 81.8 78.0"),
    },
    "GSCNN": {
        3: _values("85.0 68.8 74.1 53.3 47.0 79.6 74.3 76.2 75.3 53.1 83.5 69.8 73.1 83.4 75.8 88.0 93.9 75.1 68.5"),
        5: _values("88.7 75.3 80.9 55.9 49.9 83.6 78.6 80.4 83.4 56.6 88.4 75.4 77.8 88.3 77.0 88.9 94.2 76.9 75.1"),
        9: _values("91.3 80.1 86.0 58.5 52.9 86.1 81.5 83.3 89.0 59.8 91.1 79.1 81.5 91.5 78.1 89.7 94.4 78.5 80.4"),
        12: _values("92.2 81.7 87.9 59.6 54.3 87.1 82.3 84.4 90.9 61.1 91.9 80.4 82.8 92.6 78.5 90.0 94.6 79.1 82.2"),
    },
}
TABLE2_MEAN = {"DeepLabV3+": (69.7, 74.7, 78.7, 80.1), "GSCNN": (73.6, 77.6, 80.7, 81.8)}
# The distance plot: mIoU (%) on centre crops of 0 / 200 / 300 / 400 px.
CROP_MIOU = {"DeepLabV3+": (78.8, 75.3, 71.4, 63.6), "GSCNN": (80.9, 78.1, 75.1, 69.2)}


def cityscapes_numbers(row: str) -> tuple[PaperNumber, ...]:
    """Every published val number of a Table 1 row: mIoU and IoU per class, boundary F (means and per class at each
    threshold), and the crop-factor mIoU."""
    numbers = [PaperNumber("mIoU", TABLE1_MIOU[row], f"Table 1 {_ASSET}")]
    numbers += [
        PaperNumber(f"IoU/{name}", value, f"Table 1 {_ASSET}")
        for name, value in zip(CITYSCAPES_CLASSES, TABLE1_IOU[row], strict=True)
    ]
    numbers += boundary_numbers(TABLE2_MEAN[row], f"Table 2 {_ASSET}")
    for threshold, pixels in THRESHOLD_PIXELS.items():
        numbers += [
            PaperNumber(f"boundary_F/{threshold:g}/{name}", value, f"Table 2 {_ASSET}, {pixels} px")
            for name, value in zip(CITYSCAPES_CLASSES, TABLE2_F[row][pixels], strict=True)
        ]
    numbers += [
        PaperNumber(f"crop_mIoU/{crop}", value, f"distance plot {_CROP}")
        for crop, value in zip(CROP_FACTORS, CROP_MIOU[row], strict=True)
    ]
    return tuple(numbers)


@register
class Cityscapes(GSCNNExperiment):
    name = "gscnn.cityscapes"
    table = "Tables 1-2 and the distance plot: Cityscapes val, DeepLabV3+ vs GSCNN (WideResNet-38, single scale)"
    description = (
        "mIoU and per-class IoU, boundary F at 3 / 5 / 9 / 12 px per class, mIoU on centre crops of 0-400 px; "
        "in small, both rows on the CamVid Lite0 recipe."
    )
    recipes: ClassVar[dict[str, dict[str, Any]]] = {"smoke": SMOKE, "small": SMALL, "paper": CITYSCAPES_PAPER}
    cpu_profiles = ("smoke",)

    def variants(self) -> list[Variant]:
        return [
            Variant(
                "DeepLabV3+", {"backbone": "wider_resnet38", "shape_stream": False}, cityscapes_numbers("DeepLabV3+")
            ),
            Variant("GSCNN", {"backbone": "wider_resnet38"}, cityscapes_numbers("GSCNN")),
        ]


_S = "[S]"  # secondary notes on the paper, not checked against its PDF


@register
class Ablation(GSCNNExperiment):
    name = "gscnn.ablation"
    table = "Table 3: shape stream, gated convolutions and image gradients (ResNet-101, Cityscapes val, 100 epochs)"
    description = "Baseline, + shape stream with GCL, + Canny gradients; the paper's 5 px boundary F beside mIoU."
    recipes: ClassVar[dict[str, dict[str, Any]]] = {"smoke": SMOKE, "paper": ABLATION_PAPER}

    def variants(self) -> list[Variant]:
        five = f"boundary_F/{DEFAULT_THRESHOLDS[1]:g}"
        rows = (
            ("Baseline-R101", {"shape_stream": False}, 72.7, 69.8),
            ("GCL-R101", {"image_gradients": False}, 74.4, 72.2),
            ("GCL+Gradients-R101", {}, 74.7, 73.0),
        )
        return [
            Variant(
                name,
                {"backbone": "resnet101", **params},
                (PaperNumber("mIoU", miou, f"Table 3 {_S}"), PaperNumber(five, f_score, f"Table 3 {_S}, 5 px")),
            )
            for name, params, miou, f_score in rows
        ]


@register
class DualTask(GSCNNExperiment):
    name = "gscnn.dual_task"
    table = "Table 4: the dual-task loss (ResNet-101, Cityscapes val, boundary F at 3 / 5 / 9 / 12 px)"
    description = "Baseline, + GCL, + GCL + dual-task loss. Table 4's GCL row at 5 px (70.8) disagrees with Table 3's."
    recipes: ClassVar[dict[str, dict[str, Any]]] = {"smoke": SMOKE, "paper": ABLATION_PAPER}

    def variants(self) -> list[Variant]:
        rows = (
            ("Baseline-R101", {"shape_stream": False}, (64.1, 69.8, 74.8, 76.7)),
            ("GCL-R101", {"dual_task": False}, (65.0, 70.8, 75.9, 77.8)),
            ("GCL+DualTask-R101", {}, (68.0, 73.0, 77.2, 78.8)),
        )
        return [
            Variant(name, {"backbone": "resnet101", **params}, boundary_numbers(values, f"Table 4 {_S}"))
            for name, params, values in rows
        ]


# Table 5 [S]: (parameter increase %, mIoU increase, mean boundary F increase) of the shape stream per backbone.
TABLE5: dict[str, tuple[float, float, float]] = {
    "resnet50": (0.43, 1.7, 3.2),
    "resnet101": (0.29, 2.0, 3.5),
    "wider_resnet38": (0.13, 0.9, 2.1),
}
_SHORT = {"resnet50": "R50", "resnet101": "R101", "wider_resnet38": "WRN38"}


@register
class Backbones(GSCNNExperiment):
    name = "gscnn.backbones"
    table = "Table 5: the shape stream on ResNet-50, ResNet-101 and WideResNet-38 (Cityscapes val)"
    description = (
        "Baseline and GSCNN per backbone. `table` computes the parameter increase of each backbone without "
        "training, and the measured mIoU / boundary F increases of the runs, beside the paper's."
    )
    recipes: ClassVar[dict[str, dict[str, Any]]] = {"smoke": SMOKE, "paper": CITYSCAPES_PAPER}

    def variants(self) -> list[Variant]:
        rows = []
        for backbone in TABLE5:
            short = _SHORT[backbone]
            rows.append(Variant(f"Baseline-{short}", {"backbone": backbone, "shape_stream": False}))
            rows.append(Variant(f"GSCNN-{short}", {"backbone": backbone}))
        return rows

    def extra_tables(self, records: Sequence[Mapping[str, Any]]) -> list[str]:
        return [parameter_table(), increase_table(records)]


def increase_table(records: Sequence[Mapping[str, Any]]) -> str:
    """Markdown: Table 5's mIoU and boundary F increases (points, val) of GSCNN over its baseline, per backbone and
    profile with both rows run, beside the paper's [S]. The boundary F is the mean over the four thresholds (the
    notes do not say which threshold the paper's "mean F" is)."""
    latest: dict[tuple[str, str], Mapping[str, Any]] = {}
    for record in records:
        latest[(record["variant"], record["profile"])] = record
    lines = [
        f"#### Table 5, increases of GSCNN over its baseline (val, points; paper: {_S})",
        "",
        "| backbone | profile | mIoU increase | paper | boundary F increase (mean of 4 thresholds) | paper |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for backbone, (_, paper_miou, paper_f) in TABLE5.items():
        short = _SHORT[backbone]
        profiles = sorted({profile for (variant, profile) in latest if variant == f"GSCNN-{short}"})
        measured = [(p, latest.get((f"Baseline-{short}", p)), latest[(f"GSCNN-{short}", p)]) for p in profiles]
        pairs = [(profile, base, gscnn) for profile, base, gscnn in measured if base is not None]
        for profile, base, gscnn in pairs:
            miou = 100 * (gscnn["metrics"]["val/mIoU"] - base["metrics"]["val/mIoU"])
            f_score = 100 * (mean_boundary_f(gscnn) - mean_boundary_f(base))
            lines.append(
                f"| {BACKBONES[backbone]} | {profile} | {miou:+.1f} | +{paper_miou} | {f_score:+.1f} | +{paper_f} |"
            )
        if not pairs:
            lines.append(f"| {BACKBONES[backbone]} | not run | — | +{paper_miou} | — | +{paper_f} |")
    return "\n".join(lines)


def mean_boundary_f(record: Mapping[str, Any]) -> float:
    """The mean of a run's val boundary F over the thresholds it logged."""
    values = [value for key, value in record["metrics"].items() if key.count("/") == 2 and "boundary_F" in key]
    return sum(values) / len(values)


def parameter_counts(backbone: str, num_classes: int = 19) -> tuple[int, int]:
    """Parameters of the baseline (no shape stream) and of GSCNN on ``backbone`` (a :data:`BACKBONES` key), for
    ``num_classes`` classes; the networks are built on the meta device (no memory, no weights)."""
    name = BACKBONES[backbone]
    counts = []
    for shape_stream in (False, True):
        with torch.device("meta"):
            network = GSCNN(num_classes, backbone=name, shape_stream=shape_stream)
        counts.append(sum(p.numel() for p in network.parameters()))
    return counts[0], counts[1]


def parameter_table() -> str:
    """Markdown: Table 5's parameter increase of the shape stream, computed for each backbone, beside the paper's."""
    lines = [
        "#### Table 5, parameters (computed, K = 19; no training needed)",
        "",
        "| backbone | baseline | GSCNN | increase | increase (%) | paper (%) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for backbone, (paper, _, _) in TABLE5.items():
        baseline, gscnn = parameter_counts(backbone)
        increase = gscnn - baseline
        lines.append(
            f"| {BACKBONES[backbone]} | {baseline:,} | {gscnn:,} | {increase:,} | {100 * increase / baseline:.3f} "
            f"| {paper} |"
        )
    return "\n".join(lines)


@register
class CityscapesTest(GSCNNExperiment):
    name = "gscnn.cityscapes_test"
    table = "Table 6: Cityscapes test server (fine annotations), GSCNN on WideResNet-38"
    description = (
        "A run scores val; `python -m experiments submit` writes the test predictions in the server's label-id "
        "format. The paper's entry was also pre-trained on Mapillary Vistas (#2) and tested at several scales (#23)."
    )
    recipes: ClassVar[dict[str, dict[str, Any]]] = {"smoke": SMOKE, "paper": CITYSCAPES_PAPER}

    def variants(self) -> list[Variant]:
        return [
            Variant(
                "GSCNN",
                {"backbone": "wider_resnet38"},
                (
                    PaperNumber("mIoU", 82.8, "Table 6, test server; quoted in nv-tlabs/GSCNN#23 (Mapillary, #2)"),
                    PaperNumber("mIoU", 79.7, "released checkpoint, single scale, test server (nv-tlabs/GSCNN#23)"),
                ),
            )
        ]
