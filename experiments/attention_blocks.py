"""SE, ECA and CBAM ResNets on ImageNet: the papers' tables as experiments, and their complexity table.

- ``attention_blocks.imagenet``: ResNet-50 / -101 without attention and with SE (Hu et al., CVPR 2018),
  ECA (Wang et al., CVPR 2020) and CBAM (Woo et al., ECCV 2018); top-1 / top-5 on ImageNet val.
- ``attention_blocks.eca_kernel``: ECA-ResNet-50 with a fixed k ∈ {3, 5, 7, 9} or the adaptive k
  (ECA paper Fig. 4; its values are plotted, not printed, and were not retrieved).
- ``attention_blocks.cbam_pooling``: CBAM's channel attention alone with average, max or both poolings
  (CBAM paper Table 1).
- ``attention_blocks.cbam_spatial_kernel``: full CBAM with a 3×3, 5×5 or 7×7 spatial convolution
  (CBAM paper Table 2 compares 3 and 7).
- ``attention_blocks.mobilenetv2``: MobileNetV2 without attention, with SE and with ECA in every inverted
  residual block (ECA paper, MobileNetV2 rows; the official ``eca_mobilenetv2.py``), its own ``paper`` recipe.

Profiles: ``smoke`` trains a tiny ResNet of the variant's block type (one block per stage, stage
planes 8-64) on 32×32 synthetic images; ``small`` the full-depth network on 64×64 synthetic images with a
shortened step schedule; ``paper`` the shared ImageNet recipe (SGD, momentum 0.9, weight decay 1e-4,
lr 0.1 per 256 images, ÷10 every 30 epochs, 100 epochs, 224 crops).

:func:`complexity_table` prints parameters and multiply-adds without training.

Where the papers and the official code disagree (the reason some numbers below differ):

- **Parameters.** The ECA paper and README count "M" as 2^20 parameters (``clever_format`` in the
  official ``paras_flops.py`` divides by 1024²): ResNet-50's 25,557,032 parameters print as 24.37 M,
  ResNet-101's 44,549,160 as 42.49 M, ResNet-18's 11,689,512 as 11.15 M. The SE and CBAM papers use
  10^6 (25.56 M). ECA's Table 2 values of 26.77 M for SE- and CBAM-ResNet-50 [mem] fit MLPs without
  biases counted the same way (28,071,976 / 2^20 = 26.77; 28,073,576 / 2^20 = 26.77), whereas the
  official SE Caffe model and the official CBAM code have biases (28,088,024 and 28,089,624 = 26.79 ×
  2^20, "28.09 M" in the CBAM paper).
- **FLOPs.** The papers' "GFLOPs" are multiply-adds (GMACs). ResNet-50 / SE / CBAM = 3.858 / 3.860 /
  3.864 G and ResNet-101 = 7.570 G in the CBAM paper are exactly the multiply-adds of the original "v1"
  layout (stride 2 in the first 1×1 convolution, as in the Caffe SE models), although the official
  CBAM and ECA PyTorch code is the torchvision "v1.5" layout (stride in the 3×3), which costs 4.09 G.
  ECA's README GFLOPs come from thop (official ``paras_flops.py``, binary units) and were not reproduced.
- **ECA kernel sizes.** The adaptive rule gives k = 5, 5, 5, 7 for ResNet-50's stage widths, but the
  released ECA-ResNet-50 uses k = 3, 5, 5, 7 ("k3557", 80 parameters, as the paper states). The official
  ``eca_resnet18`` passes its k per stage through (the README's "k3577"); an early commit of ``eca_resnet.py``
  built it with k = 3 everywhere.
- **CBAM.** The official spatial gate concatenates [max; mean] (the paper writes [avg; max]) and has
  a BatchNorm (weight initialised to 0) that the paper's Eq. 3 does not show.
- **MobileNetV2.** The official ECA-MobileNetV2 puts ECA after the BatchNorm of the linear projection of each of the
  17 inverted residual blocks, k = 1 for blocks of fewer than 96 channels and 3 from 96 (31 parameters; the current
  official code; an early commit had k = 1 up to and including 96, 25 parameters): 3,504,903 parameters, "3.34 M"
  in the README's 2^20 units. No official SE-MobileNetV2 exists; the SE row puts SE at the same
  place with r = 16 (+30,013 parameters, 3,534,885 = 3.37 × 2^20); the ECA paper's SE-MobileNetV2 row (3.40 M [mem])
  fits r = 8 (+58,620 → 3,563,492 = 3.40 × 2^20) better, which suggests its SE used r = 8 (not verifiable).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import lightning as L
import torch
from torch.utils.flop_counter import FlopCounterMode

from datamodules.base import default_num_workers
from datamodules.imagenet import ImageNetDataModule
from datamodules.store.install import dataset_folder
from datamodules.synthetic_classification import SyntheticClassificationDataModule
from experiments.base import Experiment, PaperNumber, Variant, register
from lightning_modules.classification import ClassificationModule, scaled_lr
from lightning_modules.classification_models import create_attention_mobilenetv2, create_attention_resnet

_OPTIMISATION = dict(
    base_lr=0.1,
    base_batch_size=256,
    momentum=0.9,
    weight_decay=1e-4,
    lr_gamma=0.1,
    label_smoothing=0.0,
)
RECIPES: dict[str, dict[str, Any]] = {
    "smoke": dict(
        _OPTIMISATION,
        data="synthetic",
        root=None,
        num_classes=8,
        image_size=32,
        num_train=16,
        num_val=16,
        batch_size=8,
        num_workers=0,
        max_epochs=1,
        lr_step_epochs=30,
        layers=(1, 1, 1, 1),
        planes=(8, 16, 32, 64),
    ),
    "small": dict(
        _OPTIMISATION,
        data="synthetic",
        root=None,
        num_classes=8,
        image_size=64,
        num_train=8192,
        num_val=1024,
        batch_size=128,
        num_workers=None,
        max_epochs=30,
        lr_step_epochs=10,
        layers=None,
        planes=None,
    ),
    "paper": dict(
        _OPTIMISATION,
        data="imagenet",
        root=None,
        image_size=224,
        resize_size=256,
        batch_size=256,
        num_workers=None,
        max_epochs=100,
        lr_step_epochs=30,
        layers=None,
        planes=None,
        precision="bf16-mixed",
    ),
}

ATTENTION_PREFIX = {None: "", "se": "SE-", "eca": "ECA-", "cbam": "CBAM-"}


def model_name(depth: int, attention: str | None) -> str:
    """``"ResNet-50"``, ``"SE-ResNet-50"``, ``"ECA-ResNet-101"``, ..."""
    return f"{ATTENTION_PREFIX[attention]}ResNet-{depth}"


_CBAM_TABLE = "CBAM paper, ImageNet-1K table [mem]"
_SE_TABLE = "SE paper Table 2 [mem]"
_ECA_TABLE = "ECA paper Table 2 [mem]"


def _complexity(params_m: float, gflops: float | None, source: str) -> tuple[PaperNumber, ...]:
    numbers = (PaperNumber("params_M", params_m, source),)
    return numbers if gflops is None else (*numbers, PaperNumber("GFLOPs", gflops, source))


def _accuracy(top1_err: float, top5_err: float, source: str) -> tuple[PaperNumber, ...]:
    """Top-1 / top-5 accuracy in % from a paper that prints errors."""
    return (
        PaperNumber("top1", round(100 - top1_err, 3), f"{source} (top-1 err {top1_err})"),
        PaperNumber("top5", round(100 - top5_err, 3), f"{source} (top-5 err {top5_err})"),
    )


# Published parameters (M) and GFLOPs (multiply-adds) per model; see the module docstring for the
# conventions. [mem]: recalled from the paper, not re-checked against the PDF (see the spec's §5).
PAPER_COMPLEXITY: dict[tuple[int, str | None], tuple[PaperNumber, ...]] = {
    (50, None): (
        *_complexity(25.56, 3.858, _CBAM_TABLE),
        *_complexity(24.37, 3.86, "ECA README / Table 2 (M = 2^20)"),
    ),
    (50, "se"): (
        *_complexity(28.09, 3.860, _CBAM_TABLE),
        PaperNumber("GFLOPs", 3.87, _SE_TABLE),
        *_complexity(26.77, 3.87, f"{_ECA_TABLE} (M = 2^20, SE without biases)"),
    ),
    (50, "eca"): _complexity(24.37, 3.86, "ECA README (M = 2^20)"),
    (50, "cbam"): (
        *_complexity(28.09, 3.864, _CBAM_TABLE),
        *_complexity(26.77, 3.87, f"{_ECA_TABLE} (M = 2^20, MLP without biases)"),
    ),
    (101, None): _complexity(44.55, 7.570, _CBAM_TABLE),
    (101, "se"): _complexity(49.33, None, _CBAM_TABLE),
    (101, "eca"): _complexity(42.49, 7.35, "ECA README (M = 2^20)"),
    (101, "cbam"): _complexity(49.33, None, _CBAM_TABLE),
}

# Published ImageNet-1K val accuracy (%), single 224 centre crop.
PAPER_ACCURACY: dict[tuple[int, str | None], tuple[PaperNumber, ...]] = {
    (50, None): (
        *_accuracy(24.56, 7.50, _CBAM_TABLE),
        *_accuracy(24.80, 7.48, f"{_SE_TABLE}, re-implementation"),
    ),
    (50, "se"): (
        *_accuracy(23.29, 6.62, _SE_TABLE),
        *_accuracy(23.14, 6.70, _CBAM_TABLE),
        *_accuracy(22.37, 6.36, "SE README, retrained model"),
    ),
    (50, "eca"): (
        PaperNumber("top1", 77.42, "ECA README, released k3557 weights"),
        PaperNumber("top5", 93.62, "ECA README, released k3557 weights"),
        PaperNumber("top1", 77.48, _ECA_TABLE),
        PaperNumber("top5", 93.68, _ECA_TABLE),
    ),
    (50, "cbam"): (
        *_accuracy(22.66, 6.31, _CBAM_TABLE),
        PaperNumber("top1", 77.622, "attention-module README, 100 epochs"),
        PaperNumber("top5", 93.948, "attention-module README, 100 epochs"),
    ),
    (101, None): _accuracy(23.38, 6.88, _CBAM_TABLE),
    (101, "se"): (
        *_accuracy(22.35, 6.19, _CBAM_TABLE),
        *_accuracy(21.75, 5.72, "SE README, retrained model"),
    ),
    (101, "eca"): (
        PaperNumber("top1", 78.65, "ECA README, released k3357 weights"),
        PaperNumber("top5", 94.34, "ECA README, released k3357 weights"),
    ),
    (101, "cbam"): _accuracy(21.51, 5.69, _CBAM_TABLE),
}


class AttentionResNetExperiment(Experiment):
    """Shared data, network and recipes of the SE / ECA / CBAM experiments.

    A variant's ``params`` are ``depth`` (18, 34, 50, 101), ``attention`` ("se", "eca", "cbam" or None)
    and optionally ``attention_kwargs`` (e.g. ``{"kernel_size": 5}`` for ECA).
    """

    paper = "SE (Hu et al., CVPR 2018) / ECA (Wang et al., CVPR 2020) / CBAM (Woo et al., ECCV 2018)"
    recipes: ClassVar[dict[str, dict[str, Any]]] = RECIPES

    def build_datamodule(self, recipe: Mapping[str, Any]) -> L.LightningDataModule:
        num_workers = default_num_workers() if recipe["num_workers"] is None else recipe["num_workers"]
        if recipe["data"] == "imagenet":
            return ImageNetDataModule(
                dataset_folder("imagenet", recipe["root"]),
                batch_size=recipe["batch_size"],
                num_workers=num_workers,
                crop_size=recipe["image_size"],
                resize_size=recipe["resize_size"],
            )
        if recipe["data"] != "synthetic":
            raise ValueError(f"recipe data must be 'synthetic' or 'imagenet', got {recipe['data']!r}.")
        return SyntheticClassificationDataModule(
            num_classes=recipe["num_classes"],
            image_size=recipe["image_size"],
            num_train=recipe["num_train"],
            num_val=recipe["num_val"],
            num_test=recipe["num_val"],
            batch_size=recipe["batch_size"],
            num_workers=num_workers,
        )

    def build_module(
        self, variant: Variant, recipe: Mapping[str, Any], datamodule: L.LightningDataModule
    ) -> ClassificationModule:
        num_classes = datamodule.num_classes
        timm_kwargs: dict[str, Any] = {}
        if recipe["layers"] is not None:
            timm_kwargs["layers"] = tuple(recipe["layers"])
        if recipe["planes"] is not None:
            timm_kwargs["channels"] = tuple(recipe["planes"])
        network = create_attention_resnet(
            variant.params["depth"],
            variant.params["attention"],
            num_classes=num_classes,
            attention_kwargs=variant.params.get("attention_kwargs"),
            **timm_kwargs,
        )
        return self.classification_module(network, recipe, num_classes)

    @staticmethod
    def classification_module(
        network: torch.nn.Module, recipe: Mapping[str, Any], num_classes: int
    ) -> ClassificationModule:
        """SGD with the recipe's learning rate (scaled by batch size), momentum, weight decay and step schedule."""
        return ClassificationModule(
            network,
            num_classes,
            lr=scaled_lr(recipe["base_lr"], recipe["batch_size"], recipe["base_batch_size"]),
            momentum=recipe["momentum"],
            weight_decay=recipe["weight_decay"],
            lr_step_epochs=recipe["lr_step_epochs"],
            lr_gamma=recipe["lr_gamma"],
            label_smoothing=recipe["label_smoothing"],
        )


@register
class AttentionImageNet(AttentionResNetExperiment):
    name = "attention_blocks.imagenet"
    table = "ImageNet-1K val, ResNet-50/101 ± SE / ECA / CBAM, single 224 centre crop"
    description = "One attention block per residual block (after the last BN, before the addition); r = 16."

    def variants(self) -> list[Variant]:
        return [
            Variant(
                model_name(depth, attention),
                {"depth": depth, "attention": attention},
                (*PAPER_ACCURACY[(depth, attention)], *PAPER_COMPLEXITY[(depth, attention)]),
            )
            for depth in (50, 101)
            for attention in (None, "se", "eca", "cbam")
        ]


@register
class ECAKernelSize(AttentionResNetExperiment):
    name = "attention_blocks.eca_kernel"
    paper = "ECA-Net (Wang et al., CVPR 2020)"
    table = "ECA-ResNet-50, fixed k vs adaptive k (ECA paper Fig. 4)"
    description = "Fig. 4 plots top-1 for k = 3..9 and adaptive k; its values were not retrieved, so none are listed."

    def variants(self) -> list[Variant]:
        fixed = [
            Variant(f"k={k}", {"depth": 50, "attention": "eca", "attention_kwargs": {"kernel_size": k}})
            for k in (3, 5, 7, 9)
        ]
        adaptive = Variant("adaptive k", {"depth": 50, "attention": "eca", "attention_kwargs": {"kernel_size": None}})
        return [*fixed, adaptive]


@register
class CBAMPooling(AttentionResNetExperiment):
    name = "attention_blocks.cbam_pooling"
    paper = "CBAM (Woo et al., ECCV 2018)"
    table = "CBAM-ResNet-50 channel attention only: average / max / both poolings (CBAM paper Table 1)"
    description = "Channel gate without the spatial gate; the paper's Table 1 values are not listed (not verified)."

    def variants(self) -> list[Variant]:
        pools = {"avg": ["avg"], "max": ["max"], "avg & max": ["avg", "max"]}
        return [
            Variant(
                name, {"depth": 50, "attention": "cbam", "attention_kwargs": {"pool_types": pool, "spatial": False}}
            )
            for name, pool in pools.items()
        ]


@register
class CBAMSpatialKernel(AttentionResNetExperiment):
    name = "attention_blocks.cbam_spatial_kernel"
    paper = "CBAM (Woo et al., ECCV 2018)"
    table = "CBAM-ResNet-50 spatial gate kernel size (CBAM paper Table 2: 3 vs 7)"
    description = "Full CBAM (avg & max channel gate, then spatial gate); the paper's values are not listed."

    def variants(self) -> list[Variant]:
        return [
            Variant(f"k={k}", {"depth": 50, "attention": "cbam", "attention_kwargs": {"spatial_kernel_size": k}})
            for k in (3, 5, 7)
        ]


# The ECA paper's MobileNetV2 recipe (Sec. 4.1 [mem]: MobileNetV2's own): SGD, momentum 0.9, weight decay 4e-5,
# batch 96, learning rate 0.045 multiplied by 0.98 after every epoch, 400 epochs; smoke / small as the ResNets'.
def _without_resnet_keys(recipe: Mapping[str, Any], **changes: Any) -> dict[str, Any]:
    """A ResNet recipe without its ``layers`` / ``planes`` keys, with ``changes``; dropout 0.25 as the official
    ECA-MobileNetV2."""
    kept = {key: value for key, value in recipe.items() if key not in ("layers", "planes")}
    return {**kept, "drop_rate": 0.25, **changes}


MOBILENETV2_RECIPES: dict[str, dict[str, Any]] = {
    "smoke": _without_resnet_keys(RECIPES["smoke"]),
    "small": _without_resnet_keys(RECIPES["small"]),
    "paper": _without_resnet_keys(
        RECIPES["paper"],
        base_lr=0.045,
        base_batch_size=96,
        batch_size=96,
        weight_decay=4e-5,
        max_epochs=400,
        lr_step_epochs=1,
        lr_gamma=0.98,
    ),
}

_ECA_MOBILENETV2 = "ECA README, released k13 weights"
PAPER_MOBILENETV2: dict[str | None, tuple[PaperNumber, ...]] = {
    None: (),
    "se": (),
    "eca": (
        PaperNumber("top1", 72.56, _ECA_MOBILENETV2),
        PaperNumber("top5", 90.81, _ECA_MOBILENETV2),
        PaperNumber("params_M", 3.34, "ECA README (M = 2^20)"),
        PaperNumber("GFLOPs", 0.3199, "ECA README (thop's count, not reproduced: 0.3008 G multiply-adds here)"),
    ),
}


@register
class AttentionMobileNetV2(AttentionResNetExperiment):
    name = "attention_blocks.mobilenetv2"
    paper = "ECA-Net (Wang et al., CVPR 2020)"
    table = "ImageNet-1K val, MobileNetV2 ± SE / ECA (ECA paper, MobileNetV2 rows)"
    description = (
        "timm's mobilenetv2_100 (= torchvision's MobileNetV2) with the block after the projection BN of all 17 "
        "inverted residual blocks (official eca_mobilenetv2.py; ECA k = 1 below 96 channels, 3 from 96; SE r = 16). "
        "Only the ECA row's numbers (README) were retrieved; the paper's MobileNetV2 and SE rows were not."
    )
    recipes: ClassVar[dict[str, dict[str, Any]]] = MOBILENETV2_RECIPES

    def variants(self) -> list[Variant]:
        names = {None: "MobileNetV2", "se": "SE-MobileNetV2", "eca": "ECA-MobileNetV2"}
        return [Variant(names[key], {"attention": key}, PAPER_MOBILENETV2[key]) for key in names]

    def build_module(
        self, variant: Variant, recipe: Mapping[str, Any], datamodule: L.LightningDataModule
    ) -> ClassificationModule:
        network = create_attention_mobilenetv2(
            variant.params["attention"],
            num_classes=datamodule.num_classes,
            attention_kwargs=variant.params.get("attention_kwargs"),
            drop_rate=recipe["drop_rate"],
        )
        return self.classification_module(network, recipe, datamodule.num_classes)


def count_macs(model: torch.nn.Module, input_size: int = 224) -> int:
    """Multiply-adds of one ``(1, 3, input_size, input_size)`` forward pass: ``FlopCounterMode`` FLOPs / 2.

    Counts convolutions and matrix products (the papers' convention); pooling, activations and the
    attention products are not counted. Runs on the model's device (``"meta"`` is fastest).
    """
    device = next(model.parameters()).device
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model.eval()(torch.empty(1, 3, input_size, input_size, device=device))
    return counter.get_total_flops() // 2


def complexity_rows(
    depths: Sequence[int] = (50, 101), input_size: int = 224, num_classes: int = 1000
) -> list[dict[str, Any]]:
    """Parameters and multiply-adds of each ResNet-``depth`` ± SE / ECA / CBAM, beside the papers' numbers.

    ``macs`` is the torchvision / timm "v1.5" network we train; ``macs_v1`` the same parameters with the
    stride in the first 1×1 convolution, the layout the SE and CBAM papers' FLOPs are counted on.
    Built on the ``meta`` device: nothing is allocated.
    """
    rows = []
    for depth in depths:
        for attention in (None, "se", "eca", "cbam"):
            model = create_attention_resnet(depth, attention, num_classes, device="meta")
            params = sum(p.numel() for p in model.parameters())
            macs = count_macs(model, input_size)
            v1 = create_attention_resnet(depth, attention, num_classes, stride_in_1x1=True, device="meta")
            rows.append(
                {
                    "model": model_name(depth, attention),
                    "params": params,
                    "macs": macs,
                    "macs_v1": count_macs(v1, input_size),
                    "paper": list(PAPER_COMPLEXITY.get((depth, attention), ())),
                }
            )
    return rows


def _paper_cells(numbers: Sequence[PaperNumber]) -> list[tuple[str, str, str]]:
    """(params, GFLOPs, source) per source, in the order the sources first appear."""
    by_source: dict[str, dict[str, float]] = {}
    for number in numbers:
        by_source.setdefault(number.source, {})[number.metric] = number.value
    return [
        (f"{values['params_M']:.2f}" if "params_M" in values else "—", f"{values.get('GFLOPs', '—')}", source)
        for source, values in by_source.items()
    ] or [("—", "—", "—")]


def complexity_table(depths: Sequence[int] = (50, 101), input_size: int = 224, num_classes: int = 1000) -> str:
    """Markdown: parameters and GMACs (FlopCounterMode FLOPs / 2 at ``input_size``²) beside the papers'."""
    lines = [
        "| model | params | params (M) | params / 2^20 | GMACs (v1.5) | GMACs (v1) | paper params (M) "
        "| paper GFLOPs | source |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for row in complexity_rows(depths, input_size, num_classes):
        measured = (
            f"| {row['model']} | {row['params']:,} | {row['params'] / 1e6:.2f} | {row['params'] / 2**20:.2f} "
            f"| {row['macs'] / 1e9:.3f} | {row['macs_v1'] / 1e9:.3f} "
        )
        for i, (params, gflops, source) in enumerate(_paper_cells(row["paper"])):
            prefix = measured if i == 0 else "| | | | | | "
            lines.append(f"{prefix}| {params} | {gflops} | {source} |")
    return "\n".join(lines)
