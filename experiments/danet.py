"""DANet (Fu et al., CVPR 2019): the paper's tables as experiments.

- ``danet.ablation``: Table 1, Cityscapes val: dilated FCN, FCN + position attention only (PAM), FCN + channel
  attention only (CAM) and DANet (both), on ResNet-50 and ResNet-101. Rows ``FCN-R50``, ``PAM-R50``, ``CAM-R50``,
  ``DANet-R50`` and the same with ``-R101`` (``PAM-*`` / ``CAM-*`` are the paper's "+PAM" / "+CAM" columns).
- ``danet.strategies``: Table 2, DANet-ResNet-101 on Cityscapes val, each row adding one strategy: random-scale
  data augmentation (``+DA``), multi-grid dilations 4, 8, 16 in ``layer4`` (``+MG``), multi-scale + flip testing
  (``+MS``): ``DANet-R101``, ``DANet-R101+DA``, ``DANet-R101+DA+MG``, ``DANet-R101+DA+MG+MS``. The first row sets
  ``scale_range=(1.0, 1.0)`` (``Variant.settings``). The ``+MS`` row trains nothing: it scores the ``+MG`` run's
  network with the official multi-scale test (``Variant.rescores``), training ``+MG`` first when it has not run.
- ``danet.cityscapes_test``: Table 3, DANet-101 (``+DA+MG+MS``) on the Cityscapes test server, mIoU and the IoU
  of each of the 19 classes. A run scores val (the server's test labels are not public); submitting to the
  server is manual.
- ``danet.pascal_context``: PASCAL Context, 60 classes with background (see below), DANet-50 and -101.
- ``danet.coco_stuff``: COCO-Stuff-10k test (171 classes), DANet-101.
- ``danet.pascal_voc``: PASCAL VOC 2012 val, FCN-50, DANet-50 and DANet-101 (and the VOC test-server number).

Every multi-scale number is a ``+MS`` row (:func:`with_multi_scale`) that scores the network of the row before
it, which trains and validates with the single-scale test: the multi-scale test runs once, at the end.

A row's params: ``depth`` (50 / 101), ``head`` (``"fcn"``, ``"pam"``, ``"cam"`` or ``"danet"``), and optionally
``multi_grid`` and ``multi_scale`` (default off).

Profiles: ``smoke`` (synthetic scenes, ``test_resnet``, seconds; every experiment); ``small`` for
``danet.ablation`` only (real CamVid and the ImageNet EfficientNet-Lite0 of
``experiments.builders.CAMVID_SMALL``, the same recipe, learning rate included, for the four heads so that they
are comparable); ``paper`` (the recipes below; each dataset in its folder under the data root,
``datamodules.store``). A
row names the paper's ResNet; the ``backbone`` recipe key, when not ``None`` (smoke, small), replaces it, so in
``small`` the -R50 and -R101 rows train the same network: pass ``--variant FCN-R50 --variant PAM-R50
--variant CAM-R50 --variant DANet-R50`` to train each network once.

Recipe keys beyond ``experiments.builders``'s: ``dual_lr`` (learning rate of the rows with both attention
modules), ``scale_range`` (random short-side scaling, × ``base_size``), ``multi_grid`` (the dilations of the
``+MG`` rows), ``eval_flip`` / ``eval_window`` / ``eval_stride`` (the single-scale test protocol),
``ms_scales`` / ``ms_window`` / ``ms_stride`` (the ``+MS`` protocol), ``pam_mode`` (``"fused"``,
``"fused_heads"`` or ``"naive"`` position attention: same numbers, different speed and memory) and
``aux_weight`` (an FCN head on ``layer3`` with this weight when > 0; the official DANet has none, ``small``
keeps CamVid's 0.2 for every row).

The paper recipe (spec §1.6, official code c7a2f60): SGD, momentum 0.9, weight decay 1e-4, head at 10× the
backbone's rate, poly decay (power 0.9) per iteration, BN (SyncBN under DDP), random flip, random short side in
[0.75, 2.0] × base size and a random crop padded with ignore; Cityscapes base 1024, crop 768, batch 8, 240
epochs; the other datasets batch 16, lr 0.001, base 520 (crop 480, COCO-Stuff 512), 240 epochs (COCO-Stuff 180).
The loss is the official three-term ``SegmentationMultiLosses`` (fused, PAM-only and CAM-only logits, weight 1
each). ``batch_size`` is per process: the official 8 images were 2 per GPU on 4 GPUs (``--devices 4 --set
batch_size=2``). Backbones are timm's ``resnet50.tv_in1k`` / ``resnet101.tv_in1k``: torchvision's ImageNet
weights with the 7×7 stem, as in the 2018 code (the 2020 code defaults to a deep stem).

Where the paper, the official code and its author disagree (the reasons some settings look odd):

- **Channel attention.** The code's CAM applies the softmax to ``max - energy``, i.e. ``softmax(-energy)``, not to
  the energy of the paper's Eq. (3); kept (``ChannelAttention(mode="official")``) to match the released weights.
- **Learning rate.** The paper states 0.01 for Cityscapes; the README command uses 0.003. The author
  (CASIA-IVA-Lab/DANet#30): FCN and the single-module rows train at 0.01 with one loss, full DANet (three losses)
  at 0.003. Hence ``lr=0.01`` and ``dual_lr=0.003`` in the Cityscapes recipes. The code scales its per-dataset
  rate linearly with the batch (``lr / 8 · batch``), which would give 0.002 for the other datasets at batch 16;
  the recipes keep the paper's stated 0.001.
- **Table 1's recipe.** 180 epochs, no random scaling, no multi-grid (author, CASIA-IVA-Lab/DANet#27, for the FCN
  baselines 70.03 / 72.54), hence ``scale_range=(1.0, 1.0)`` and ``max_epochs=180`` in ``danet.ablation``'s
  paper recipe; Table 2 and the README use 240 epochs.
- **Testing.** The official "single-scale" test combines the image with its horizontal flip and slides a 768
  window (stride 2/3 of it) over the full 1024×2048 image; multi-scale adds scales 0.5-2.2 with a 1024 window
  (stride 1/2). PyTorch-Encoding's ``MultiEvalModule`` combines them as ``exp(logits + flipped logits)`` per
  window, averaged over windows and summed over scales, lets the last window of a row run past the image,
  padded with black, and resizes with ``align_corners=True``; the ``paper`` recipes do exactly that
  (``combine="exp_sum"``, ``last_window="padded"``, :mod:`lightning_modules.inference`). The val mIoU the
  official training script prints is on 768 centre crops and is several points lower than the reported numbers
  (CASIA-IVA-Lab/DANet#14, #30, #41); these runs always score full images.
- **PASCAL Context classes.** PyTorch-Encoding's loader ignores the background (59 classes), but the author
  reports DANet's Context numbers on 60 classes with background (CASIA-IVA-Lab/DANet#11): ``pascal_context_60``.
  Not comparable with EncNet's / SANet's 59-class numbers.
- **Auxiliary head.** The official DANet has no FCN head on ``layer3``; the 2020 README's ``--aux`` flag does not
  add one. ``aux_weight=0.0`` in the paper recipes.
- **Assumptions** (not stated in the material at hand): multi-grid and multi-scale + flip testing for the Context,
  COCO-Stuff and VOC rows (as for the final Cityscapes model), with PyTorch-Encoding's non-Cityscapes scales
  0.5-1.75 and a sliding window of the crop size (the official test resizes the long side to ``base_size ×
  scale`` instead of the original size × scale).

Published numbers, in percent: every :class:`PaperNumber` carries its tag from the spec (§1.8). ``[P-img]``: read
from the image of the paper's Table 3 in the initial commit of junfu1115/DANet (``img/tab3.png``): DANet-101's
Cityscapes test mIoU, 81.5, and its 19 per-class IoUs (metric ``IoU/<class>``, as runs log ``val/IoU/<class>``),
whose mean is 81.5 to rounding. ``[mem]`` = recalled from the paper, not re-checked against the PDF (Tables 1 and
2, Context, COCO-Stuff, VOC). README and issue numbers are the repository's.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import lightning as L

from experiments.base import PaperNumber, Variant, register
from experiments.builders import (
    CAMVID_SMALL,
    RUNTIME,
    SEGMENTATION_SMOKE,
    SegmentationExperiment,
    backbone_kwargs,
)
from lightning_modules.danet import MULTI_GRID, DANet
from lightning_modules.fcn import FCN
from lightning_modules.inference import DEFAULT_SCALES
from lightning_modules.segmentation import SegmentationModule

HEADS = ("fcn", "pam", "cam", "danet")
# PyTorch-Encoding's test.py scales for Cityscapes; its default for the other datasets is DEFAULT_SCALES (0.5-1.75).
CITYSCAPES_MS_SCALES = (0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0, 2.2)

SMOKE: dict[str, Any] = dict(
    SEGMENTATION_SMOKE,
    num_train=8,
    num_val=4,
    dual_lr=0.01,
    aux_weight=0.0,
    multi_grid=MULTI_GRID,
    eval_flip=False,
    eval_window=None,
    eval_stride=None,
    ms_scales=(0.75, 1.25),
    ms_window=None,
    ms_stride=None,
    pam_mode="fused",
)
# CAMVID_SMALL as the baselines train it, one learning rate for every head, single-scale evaluation.
SMALL: dict[str, Any] = {
    **CAMVID_SMALL,
    "dual_lr": CAMVID_SMALL["lr"],
    "eval_flip": False,
    "eval_window": None,
    "eval_stride": None,
    "pam_mode": "fused",
}
_PAPER: dict[str, Any] = dict(
    RUNTIME,
    backbone=None,  # each row's own ResNet
    pretrained=True,
    output_stride=8,
    multi_grid=MULTI_GRID,
    scale_range=(0.75, 2.0),
    eval_short_side=None,
    num_workers=None,
    aux_weight=0.0,
    eval_flip=True,
    pam_mode="fused",
    # Full-image sliding-window evaluation of a whole split is slow; the runner always validates the final network.
    check_val_every_n_epoch=20,
)
CITYSCAPES_PAPER: dict[str, Any] = dict(
    _PAPER,
    data="cityscapes",
    root=None,
    base_size=1024,
    crop_size=768,
    batch_size=8,
    max_epochs=240,
    lr=0.01,
    dual_lr=0.003,
    eval_window=768,
    eval_stride=512,
    ms_scales=CITYSCAPES_MS_SCALES,
    ms_window=1024,
    ms_stride=512,
)
CITYSCAPES_ABLATION: dict[str, Any] = {**CITYSCAPES_PAPER, "scale_range": (1.0, 1.0), "max_epochs": 180}
_OTHER_PAPER: dict[str, Any] = dict(
    _PAPER,
    base_size=520,
    crop_size=480,
    batch_size=16,
    max_epochs=240,
    lr=0.001,
    dual_lr=0.001,
    eval_window=480,
    eval_stride=320,
    ms_scales=DEFAULT_SCALES,
    ms_window=480,
    ms_stride=320,
)
CONTEXT_PAPER = dict(_OTHER_PAPER, data="pascal_context_60", root=None)
COCO_STUFF_PAPER = dict(
    _OTHER_PAPER,
    data="coco_stuff_10k",
    root=None,
    crop_size=512,
    max_epochs=180,
    eval_window=512,
    eval_stride=341,
    ms_window=512,
    ms_stride=341,
)
VOC_PAPER = dict(_OTHER_PAPER, data="voc", root=None)


def backbone_name(depth: int, recipe: Mapping[str, Any]) -> str:
    """The recipe's backbone, or the row's ResNet with torchvision's ImageNet weights (``resnet101.tv_in1k``)."""
    return recipe["backbone"] or f"resnet{depth}.tv_in1k"


def evaluation(recipe: Mapping[str, Any], multi_scale: bool) -> tuple[str, dict[str, Any]]:
    """``(eval_mode, eval_kwargs)`` of the SegmentationModule: the official single- or multi-scale test.

    Both combine passes as PyTorch-Encoding's ``MultiEvalModule`` does (``combine="exp_sum"``, windows placed with
    ``last_window="padded"``, bilinear resizes with ``align_corners=True``); multi-scale always flips. Without flip
    and window it is one plain forward pass.
    """
    prefix = "ms" if multi_scale else "eval"
    flip = multi_scale or recipe["eval_flip"]
    window = recipe[f"{prefix}_window"]
    if not multi_scale and not flip and window is None:
        return "single", {}
    scales = tuple(recipe["ms_scales"]) if multi_scale else (1.0,)
    kwargs = {"scales": scales, "flip": flip, "window": window, "combine": "exp_sum", "align_corners": True}
    if window is not None:
        kwargs.update(stride=recipe[f"{prefix}_stride"], last_window="padded")
    return "multiscale", kwargs


def danet_module(variant: Variant, recipe: Mapping[str, Any], datamodule: L.LightningDataModule) -> SegmentationModule:
    """The row's network (FCN or DANet with its branches), loss weights, learning rate and test protocol."""
    params = variant.params
    head = params["head"]
    if head not in HEADS:
        raise ValueError(f"variant {variant.name!r}: head must be one of {HEADS}, got {head!r}.")
    num_classes = datamodule.num_classes
    backbone = {**backbone_kwargs(recipe), "backbone": backbone_name(params["depth"], recipe)}
    aux = recipe["aux_weight"] > 0
    if head == "fcn":
        network = FCN(num_classes, **backbone, aux=aux, align_corners=True)
        loss_weights = {"out": 1.0, **({"aux": recipe["aux_weight"]} if aux else {})}
    else:
        network = DANet(
            num_classes,
            **backbone,
            pam=head in ("pam", "danet"),
            cam=head in ("cam", "danet"),
            aux=aux,
            multi_grid=recipe["multi_grid"] if params.get("multi_grid", False) else None,
            pam_mode=recipe["pam_mode"],
        )
        loss_weights = network.loss_weights(recipe["aux_weight"])
    eval_mode, eval_kwargs = evaluation(recipe, params.get("multi_scale", False))
    return SegmentationModule(
        network,
        num_classes,
        loss_weights=loss_weights,
        lr=recipe["dual_lr"] if head == "danet" else recipe["lr"],
        class_names=datamodule.class_names,
        eval_mode=eval_mode,
        eval_kwargs=eval_kwargs,
    )


class DANetExperiment(SegmentationExperiment):
    """Data and modules shared by the DANet experiments (see the module docstring for a row's params)."""

    paper = "DANet (Fu et al., CVPR 2019)"

    def build_module(
        self, variant: Variant, recipe: Mapping[str, Any], datamodule: L.LightningDataModule
    ) -> SegmentationModule:
        return danet_module(variant, recipe, datamodule)


_TABLE1 = "Table 1 [mem]"
_TABLE1_FCN = "Table 1 [mem]; author in CASIA-IVA-Lab/DANet#27"
# Table 1, Cityscapes val mIoU (%): (FCN, +PAM, +CAM, DANet) per depth.
TABLE1: dict[int, tuple[float, float, float, float]] = {
    50: (70.03, 75.74, 74.28, 76.34),
    101: (72.54, 77.03, 76.55, 77.57),
}


@register
class CityscapesAblation(DANetExperiment):
    name = "danet.ablation"
    table = "Table 1: attention modules on Cityscapes val (ResNet-50 / -101, single scale)"
    description = (
        "Dilated FCN, FCN + PAM, FCN + CAM and DANet; 180 epochs without random scaling or multi-grid (#27). "
        "In small, the -R50 and -R101 rows train the same CamVid network."
    )
    recipes: ClassVar[dict[str, dict[str, Any]]] = {"smoke": SMOKE, "small": SMALL, "paper": CITYSCAPES_ABLATION}

    def variants(self) -> list[Variant]:
        rows = []
        for depth, values in TABLE1.items():
            for head, label, value in zip(HEADS, ("FCN", "PAM", "CAM", "DANet"), values, strict=True):
                source = _TABLE1_FCN if head == "fcn" else _TABLE1
                rows.append(
                    Variant(f"{label}-R{depth}", {"depth": depth, "head": head}, (PaperNumber("mIoU", value, source),))
                )
        return rows


def with_multi_scale(
    name: str,
    params: Mapping[str, Any],
    multi_scale: tuple[PaperNumber, ...],
    single_scale: tuple[PaperNumber, ...] = (),
) -> list[Variant]:
    """A row that trains and validates with the single-scale test, and its ``+MS`` row.

    The ``+MS`` row scores the same network with the multi-scale + flip test once, at the end, as
    the official ``test.py`` does, rather than training it again or running the slow multi-scale
    test at every validation of a 240-epoch run.
    """
    return [
        Variant(name, params, single_scale),
        Variant(f"{name}+MS", {**params, "multi_scale": True}, multi_scale, rescores=name),
    ]


@register
class CityscapesStrategies(DANetExperiment):
    name = "danet.strategies"
    table = "Table 2: DANet-ResNet-101 on Cityscapes val with data augmentation, multi-grid, multi-scale test"
    description = "Each row adds one strategy to the one before; +MS scores the +MG network at several scales."
    recipes: ClassVar[dict[str, dict[str, Any]]] = {"smoke": SMOKE, "paper": CITYSCAPES_PAPER}

    def variants(self) -> list[Variant]:
        readme = "README c7a2f60, released DANet101"
        return [
            Variant(
                "DANet-R101",
                {"depth": 101, "head": "danet"},
                (PaperNumber("mIoU", 77.57, "Table 2 [mem]"),),
                settings={"scale_range": (1.0, 1.0)},
            ),
            Variant("DANet-R101+DA", {"depth": 101, "head": "danet"}, (PaperNumber("mIoU", 78.83, "Table 2 [mem]"),)),
            *with_multi_scale(
                "DANet-R101+DA+MG",
                {"depth": 101, "head": "danet", "multi_grid": True},
                multi_scale=(
                    PaperNumber("mIoU", 81.50, "Table 2 [mem]"),
                    PaperNumber("mIoU", 81.49, f"{readme}, multi-scale + flip"),
                    PaperNumber("pixel_acc", 96.41, f"{readme}, multi-scale + flip"),
                ),
                single_scale=(
                    PaperNumber("mIoU", 79.94, "Table 2 [mem]"),
                    PaperNumber("mIoU", 79.93, f"{readme}, single scale + flip"),
                    PaperNumber("pixel_acc", 95.97, f"{readme}, single scale + flip"),
                ),
            ),
        ]


_TABLE3 = "Table 3 [P-img] (junfu1115/DANet initial commit, img/tab3.png)"
# Table 3 [P-img], DANet-101 on the Cityscapes test server: IoU (%) per class, named as CityscapesDataModule
# names them (train-id order) so that each lines up with a run's val/IoU/<class>.
TABLE3_IOU: dict[str, float] = {
    "road": 98.6,
    "sidewalk": 86.1,
    "building": 93.5,
    "wall": 56.1,
    "fence": 63.3,
    "pole": 69.7,
    "traffic light": 77.3,
    "traffic sign": 81.3,
    "vegetation": 93.9,
    "terrain": 72.9,
    "sky": 95.7,
    "person": 87.3,
    "rider": 72.9,
    "car": 96.2,
    "truck": 76.8,
    "bus": 89.4,
    "train": 86.5,
    "motorcycle": 72.2,
    "bicycle": 78.2,
}


@register
class CityscapesTest(DANetExperiment):
    name = "danet.cityscapes_test"
    table = "Table 3: Cityscapes test server (fine annotations only), DANet-ResNet-101"
    description = (
        "The final model (+DA +MG) and its multi-scale + flip test; a run scores val, the paper's numbers (mIoU and "
        "the IoU of each class) are test."
    )
    recipes: ClassVar[dict[str, dict[str, Any]]] = {"smoke": SMOKE, "paper": CITYSCAPES_PAPER}

    def variants(self) -> list[Variant]:
        return with_multi_scale(
            "DANet-R101+DA+MG",
            {"depth": 101, "head": "danet", "multi_grid": True},
            multi_scale=(
                PaperNumber("mIoU", 81.5, f"{_TABLE3}; README c7a2f60"),
                PaperNumber("mIoU", 81.47, "cityscapes-dataset.com, CASIA_IVA_DANet_NoCoarse [page]"),
                *(PaperNumber(f"IoU/{name}", iou, _TABLE3) for name, iou in TABLE3_IOU.items()),
            ),
        )


# The other benchmarks' rows: multi-grid and multi-scale + flip testing (an assumption, see the docstring).
_FINAL = {"head": "danet", "multi_grid": True}


@register
class PascalContext(DANetExperiment):
    name = "danet.pascal_context"
    table = "PASCAL Context val, 60 classes with background (CASIA-IVA-Lab/DANet#11)"
    description = "DANet-50 and -101; multi-grid and multi-scale + flip test are assumptions."
    recipes: ClassVar[dict[str, dict[str, Any]]] = {"smoke": SMOKE, "paper": CONTEXT_PAPER}

    def variants(self) -> list[Variant]:
        return [
            *with_multi_scale(
                "DANet-R50",
                {"depth": 50, **_FINAL},
                (PaperNumber("mIoU", 50.1, "Context table; quoted as the paper's in CASIA-IVA-Lab/DANet#72"),),
            ),
            *with_multi_scale(
                "DANet-R101", {"depth": 101, **_FINAL}, (PaperNumber("mIoU", 52.6, "Context table [mem]"),)
            ),
        ]


@register
class CocoStuff(DANetExperiment):
    name = "danet.coco_stuff"
    table = "COCO-Stuff-10k test, 171 classes"
    description = "DANet-101, 180 epochs; multi-grid and multi-scale + flip test are assumptions."
    recipes: ClassVar[dict[str, dict[str, Any]]] = {"smoke": SMOKE, "paper": COCO_STUFF_PAPER}

    def variants(self) -> list[Variant]:
        return with_multi_scale(
            "DANet-R101", {"depth": 101, **_FINAL}, (PaperNumber("mIoU", 39.7, "COCO-Stuff table [mem]"),)
        )


@register
class PascalVOC(DANetExperiment):
    name = "danet.pascal_voc"
    table = "PASCAL VOC 2012 val (train_aug), 21 classes; and the VOC 2012 test server"
    description = (
        "FCN-50, DANet-50, DANet-101 (lower-confidence [mem] numbers); DANet-101's test number is the server's."
    )
    recipes: ClassVar[dict[str, dict[str, Any]]] = {"smoke": SMOKE, "paper": VOC_PAPER}

    def variants(self) -> list[Variant]:
        source = "VOC 2012 val table [mem, lower confidence]"
        return [
            *with_multi_scale("FCN-R50", {"depth": 50, "head": "fcn"}, (PaperNumber("mIoU", 75.7, source),)),
            *with_multi_scale("DANet-R50", {"depth": 50, **_FINAL}, (PaperNumber("mIoU", 79.0, source),)),
            *with_multi_scale(
                "DANet-R101",
                {"depth": 101, **_FINAL},
                (
                    PaperNumber("mIoU", 80.4, source),
                    PaperNumber("mIoU", 82.6, "VOC 2012 test server, no COCO pretraining [mem]"),
                ),
            ),
        ]
