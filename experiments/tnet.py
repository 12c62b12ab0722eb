"""TNet (Papadopoulos, Korus, Memon, NeurIPS 2021) experiments: the paper's settings, and a benchmark that runs on
a CPU.

- ``tnet.imagenet``: TNet (BagNet-77, 5 × 5 grid, 2 levels, 3 locations) against BagNet-77 on the whole 224 px
  image (official ``ImageNet/results_replication.txt``).
- ``tnet.fmow``: EfficientNet-B0 on the bounding-box crops at 224 and on the whole image at 224 / 448 / 896,
  against TNet at 448 px (2 levels, 2 locations) and at 896 px (3 levels, 2 + 2 locations), the latter
  fine-tuned from the former's final weights (``Variant.starts_from``), as ``fMoW/results_replication.txt``.
- ``tnet.locations``: one TNet, then the same weights evaluated with 1 .. k locations per level; the accuracy
  against attended locations per image, and its plot.
- ``tnet.megapixel_digits``: TNet against the same backbone on the whole image downsampled to the base
  resolution and on the whole image at full resolution, on Megapixel digits (:mod:`datamodules.megapixel_digits`).

Every run also scores the test split after its last validation and measures its cost at the evaluation size:
multiply-adds ×2 per image (``torch.utils.flop_counter``), inference images / s on the device it trained on,
parameters (``metrics.json`` fields ``test`` and ``cost``; the table below the paper one shows them).

Paper numbers: the spec could retrieve none of the paper's own result tables. The only accuracy printed here is
ImageNet top-1 74.62 % for TNet with 5 attended locations, from a third-party survey citing the paper's Table 1
([S], secondary); every other cell says "not retrieved" rather than guess. The FLOPs are the spec's TF-profiler
counts of the official models [C].

Where this code and the official one differ: none in the networks and the loss (the official traversal, top-k
in training too, L2-normalised policy logits, aliasing resize with ``antialias`` off); the training
augmentation's random resize picks among torchvision's interpolation modes rather than TensorFlow's eight
(:mod:`datamodules.inception`); the official code's "advanced evaluation" of 3-level models concatenates the
attended-cell mask where it means the previous levels' probabilities (``location_probs = tf.concat(
[attended_locations, ...])``), which :class:`~lightning_modules.tnet.network.TNetOutput` does not reproduce.
"""

from __future__ import annotations

import dataclasses
import time
from abc import abstractmethod
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import lightning as L
import torch
from torch.utils.flop_counter import FlopCounterMode

from datamodules.base import default_num_workers
from datamodules.imagenet import ImageNetDataModule
from datamodules.megapixel_digits import MegapixelDigitsDataModule
from datamodules.store.install import dataset_folder
from datamodules.synthetic_classification import SyntheticClassificationDataModule
from experiments.base import Experiment, PaperNumber, Variant, register
from experiments.results import percent
from lightning_modules.tnet import (
    TNetModule,
    bagnet77_baseline,
    efficientnet_b0_baseline,
    timm_baseline,
    tnet_fmow,
    tnet_imagenet,
    tnet_timm,
)
from lightning_modules.tnet.module import BaselineModule

_S = "[S] third-party survey citing TNet's Table 1"
_C = "[C] spec: TF profiler on the official model"

_LOSS = dict(ce_weight=0.3, reinforce_weight=0.3, reinforce_scale=0.1, feature_levels=None, lr_drop_fraction=0.8)


# GFLOPs per image of the official models [C] (the spec's TF-profiler counts), by row.
PAPER_GFLOPS = {
    "tnet.imagenet": {"TNet": 14.5, "BagNet-77": 36.92},
    "tnet.fmow": {
        "EN-B0 cropped 224": 0.786,
        "EN-B0 224": 0.786,
        "EN-B0 448": 3.14,
        "EN-B0 896": 12.56,
        "TNet 448": 2.36,
        "TNet 896": 3.9,
    },
}


def measure_cost(
    module: L.LightningModule, image_size: int, batch: int, min_seconds: float = 2.0, min_batches: int = 5
) -> dict[str, Any]:
    """FLOPs per image (multiply-adds × 2), inference images / s and trainable parameters of ``module`` in
    evaluation mode on ``image_size`` px images, on the device its weights are on.

    Speed: one warm-up batch, then timed batches until both ``min_seconds`` and ``min_batches`` are reached (at
    most 200); ``images_per_s`` is images over the total time, ``images_per_s_std`` the standard deviation of the
    per-batch rates.
    """
    device = next(module.parameters()).device
    module.eval()
    images = torch.rand(batch, 3, image_size, image_size, device=device) * 2 - 1
    times: list[float] = []
    with torch.no_grad():
        counter = FlopCounterMode(display=False)
        with counter:
            module(images[:1])
        module(images)
        while len(times) < 200 and (len(times) < min_batches or sum(times) < min_seconds):
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            started = time.perf_counter()
            module(images)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            times.append(time.perf_counter() - started)
    rates = torch.tensor([batch / t for t in times], dtype=torch.float64)
    return {
        "gflops": counter.get_total_flops() / 1e9,
        "images_per_s": batch * len(times) / sum(times),
        "images_per_s_std": float(rates.std()) if len(times) > 1 else 0.0,
        "timed_batches": len(times),
        "params": sum(p.numel() for p in module.parameters() if p.requires_grad),
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "batch": batch,
        "image_size": image_size,
    }


def cost_table(experiment: Experiment, records: Sequence[Mapping[str, Any]]) -> str:
    """Markdown: each run's test top-1 / top-5, attended locations, and FLOPs and speed at the evaluation size,
    rows in the experiment's order; the paper column holds the official models' GFLOPs [C]."""
    paper_gflops = PAPER_GFLOPS.get(experiment.name, {})
    lines = [
        f"#### {experiment.name}: test accuracy and cost per image",
        "",
        "| variant | profile | test images | test top-1 | test top-5 | locations | px | GFLOPs | paper GFLOPs [C] "
        "| images/s (± sd) | batch | params | measured on |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    order = {variant.name: i for i, variant in enumerate(experiment.variants())}
    for record in sorted(records, key=lambda r: (order.get(r["variant"], len(order)), r["profile"])):
        test, cost = record.get("test", {}), record.get("cost", {})
        locations = test.get("locations") or "whole image"
        gflops = f"{cost['gflops']:.3f}" if cost else "—"
        speed = f"{cost['images_per_s']:.1f} ± {cost.get('images_per_s_std', 0.0):.1f}" if cost else "—"
        threads = record["hardware"].get("torch_threads")
        device = cost.get("device", record["hardware"]["device"]) + (f", {threads} threads" if threads else "")
        lines.append(
            f"| {record['variant']} | {record['profile']} | {test.get('images', '—')} | {percent(test.get('top1'))} "
            f"| {percent(test.get('top5'))} | {locations} | {cost.get('image_size', '—')} | {gflops} "
            f"| {paper_gflops.get(record['variant'], '—')} | {speed} | {cost.get('batch', '—')} "
            f"| {cost.get('params', 0):,} | {device} |"
        )
    return "\n".join(lines)


class TNetExperiment(Experiment):
    """Shared building of TNet and baseline rows.

    A variant's ``params``: ``model`` (``"tnet"`` or ``"whole"``), and for whole-image rows optionally
    ``input_size`` (resize first) and ``dropout`` / ``drop_path_rate``. Recipes hold the data, the geometry
    (``image_size``, ``locations``, ``eval_locations``) and the loss weights.
    """

    paper = "TNet (Papadopoulos et al., NeurIPS 2021)"

    @abstractmethod
    def tnet_network(self, recipe: Mapping[str, Any], num_classes: int) -> torch.nn.Module:
        """The TNet of the recipe."""

    @abstractmethod
    def baseline_network(self, variant: Variant, recipe: Mapping[str, Any], num_classes: int) -> torch.nn.Module:
        """The whole-image baseline of ``variant``."""

    def build_module(
        self, variant: Variant, recipe: Mapping[str, Any], datamodule: L.LightningDataModule
    ) -> L.LightningModule:
        num_classes = datamodule.num_classes
        if variant.params["model"] == "whole":
            network = self.baseline_network(variant, recipe, num_classes)
            return BaselineModule(
                network,
                num_classes,
                lr=recipe["lr"],
                lr_drop_fraction=recipe["lr_drop_fraction"],
                l2_weight=recipe.get("baseline_l2_weight", 0.0),
            )
        eval_locations = variant.params.get("eval_locations", recipe["eval_locations"])
        return TNetModule(
            self.tnet_network(recipe, num_classes),
            num_classes,
            lr=recipe["lr"],
            ce_weight=recipe["ce_weight"],
            reinforce_weight=recipe["reinforce_weight"],
            reinforce_scale=recipe["reinforce_scale"],
            feature_levels=recipe["feature_levels"],
            lr_drop_fraction=recipe["lr_drop_fraction"],
            eval_locations_per_level=tuple(eval_locations) if eval_locations is not None else None,
        )

    def after_evaluation(
        self,
        trainer: L.Trainer,
        module: L.LightningModule,
        datamodule: L.LightningDataModule,
        recipe: Mapping[str, Any],
    ) -> dict[str, Any]:
        trainer.test(module, datamodule=datamodule, verbose=False)
        test = dict(module.last_scores.get("test", {}))
        loaders = trainer.test_dataloaders
        test["images"] = sum(len(loader.dataset) for loader in (loaders if isinstance(loaders, list) else [loaders]))
        test["locations"] = module.locations_per_image if isinstance(module, TNetModule) else 0
        cost = {}
        if trainer.is_global_zero:
            # Smoke runs time two batches only; the others long enough for a stable rate.
            smoke = recipe["profile"] == "smoke"
            timing = dict(min_seconds=0.0, min_batches=2) if smoke else {}
            cost = measure_cost(module, image_size(recipe), recipe["cost_batch"], **timing)
        return {"test": test, "cost": cost}

    def extra_tables(self, records: Sequence[Mapping[str, Any]]) -> list[str]:
        return [cost_table(self, records)] if records else []


def image_size(recipe: Mapping[str, Any]) -> int:
    """The side of the images a recipe trains on: ``image_size``, times ``resolution_scale`` where the recipe has
    one (the smoke profiles shrink the paper's sizes with it)."""
    return round(recipe["image_size"] * recipe.get("resolution_scale", 1.0))


def _data_workers(recipe: Mapping[str, Any]) -> int:
    return default_num_workers() if recipe["num_workers"] is None else recipe["num_workers"]


def synthetic_datamodule(recipe: Mapping[str, Any]) -> SyntheticClassificationDataModule:
    """The procedural classification images of the smoke and small profiles (test split: as many as val)."""
    return SyntheticClassificationDataModule(
        num_classes=recipe["num_classes"],
        image_size=image_size(recipe),
        num_train=recipe["num_train"],
        num_val=recipe["num_val"],
        num_test=recipe["num_val"],
        batch_size=recipe["batch_size"],
        num_workers=_data_workers(recipe),
    )


_DIGITS: dict[str, Any] = dict(
    _LOSS,
    canvas_size=448,
    digit_size=16,
    noise_strokes=50,
    image_size=448,
    base_resolution=112,
    num_patches=5,
    overlap=0.25,
    locations=(5,),
    eval_locations=None,
    backbone="test_resnet",
    level_norm=True,
    dropout=0.0,
    num_train=2000,
    num_val=500,
    num_test=1000,
    batch_size=32,
    num_workers=None,
    max_epochs=8,
    lr=1e-3,
    cost_batch=16,
)
DIGITS_RECIPES: dict[str, dict[str, Any]] = {
    "smoke": {
        **_DIGITS,
        **dict(canvas_size=128, digit_size=8, noise_strokes=10, image_size=128, base_resolution=32, locations=(2,)),
        **dict(num_train=16, num_val=8, num_test=8, batch_size=8, num_workers=0, max_epochs=1, cost_batch=2),
    },
    "small": _DIGITS,
    "paper": {
        **_DIGITS,
        **dict(backbone="resnet18", num_train=5000, num_val=1000, num_test=1000, batch_size=64, max_epochs=40),
        "cost_batch": 64,
    },
}


class DigitsExperiment(TNetExperiment):
    """Shared data and networks of the Megapixel digits experiments."""

    recipes: ClassVar[dict[str, dict[str, Any]]] = DIGITS_RECIPES
    cpu_profiles: ClassVar[tuple[str, ...]] = ("smoke", "small")

    def build_datamodule(self, recipe: Mapping[str, Any]) -> L.LightningDataModule:
        return MegapixelDigitsDataModule(
            canvas_size=recipe["canvas_size"],
            digit_size=recipe["digit_size"],
            noise_strokes=recipe["noise_strokes"],
            num_train=recipe["num_train"],
            num_val=recipe["num_val"],
            num_test=recipe["num_test"],
            batch_size=recipe["batch_size"],
            num_workers=_data_workers(recipe),
        )

    def tnet_network(self, recipe: Mapping[str, Any], num_classes: int) -> torch.nn.Module:
        return tnet_timm(
            recipe["backbone"],
            num_classes,
            base_resolution=recipe["base_resolution"],
            num_patches=recipe["num_patches"],
            overlap=recipe["overlap"],
            locations_per_level=tuple(recipe["locations"]),
            dropout=recipe["dropout"],
            level_norm=recipe["level_norm"],
        )

    def baseline_network(self, variant: Variant, recipe: Mapping[str, Any], num_classes: int) -> torch.nn.Module:
        input_size = recipe["base_resolution"] if variant.params.get("downsampled") else None
        return timm_baseline(recipe["backbone"], num_classes, input_size=input_size, dropout=recipe["dropout"])


@register
class MegapixelDigits(DigitsExperiment):
    name = "tnet.megapixel_digits"
    table = "Megapixel digits: hard attention against the whole image, downsampled and at full resolution"
    description = (
        "5 handwritten digits of 16 px (3 of the label's class) and 50 noise strokes on a 448 px canvas; the "
        "downsampled row sees them at 4 px."
    )

    def variants(self) -> list[Variant]:
        return [
            Variant("TNet", {"model": "tnet"}),
            Variant("downsampled", {"model": "whole", "downsampled": True}),
            Variant("full resolution", {"model": "whole"}),
        ]

    def extra_tables(self, records: Sequence[Mapping[str, Any]]) -> list[str]:
        return [*super().extra_tables(records), target_table(records)] if records else []


def target_table(records: Sequence[Mapping[str, Any]]) -> str:
    """Markdown: per profile with all three rows run, TNet's test top-1 gain over the downsampled row (points)
    and its FLOPs as a fraction of the full-resolution row's, beside the targets (≥ 10 points, ≤ 1/2)."""
    latest: dict[tuple[str, str], Mapping[str, Any]] = {(r["variant"], r["profile"]): r for r in records}
    lines = [
        "#### Target: TNet ≥ 10 points over the downsampled image at ≤ 1/2 of the full-resolution FLOPs",
        "",
        "| profile | test images | TNet − downsampled (test top-1, points) | TNet / full-resolution GFLOPs | met |",
        "|---|---:|---:|---:|---|",
    ]
    for profile in dict.fromkeys(r["profile"] for r in records):
        rows = [latest.get((name, profile)) for name in ("TNet", "downsampled", "full resolution")]
        if any(row is None or "test" not in row or not row.get("cost") for row in rows):
            continue
        tnet, small, full = rows
        gain = 100 * (tnet["test"]["top1"] - small["test"]["top1"])
        ratio = tnet["cost"]["gflops"] / full["cost"]["gflops"]
        met = "yes" if gain >= 10 and ratio <= 0.5 else "no"
        if profile == "smoke":
            met = "n/a (smoke: too few images to judge)"
        images = tnet["test"].get("images", "—")
        lines.append(f"| {profile} | {images} | {gain:+.1f} | {ratio:.3f} | {met} |")
    return "\n".join(lines)


@register
class Locations(DigitsExperiment):
    name = "tnet.locations"
    table = "accuracy against the number of attended locations at evaluation (one trained TNet)"
    description = "The TNet row trains; each other row evaluates its weights with another number of locations."
    counts: ClassVar[tuple[int, ...]] = (1, 2, 3, 5, 8)

    def variants(self) -> list[Variant]:
        rows = [Variant("TNet", {"model": "tnet"})]
        rows += [
            Variant(f"{k} locations", {"model": "tnet", "eval_locations": (k,)}, rescores="TNet") for k in self.counts
        ]
        return rows

    def extra_tables(self, records: Sequence[Mapping[str, Any]]) -> list[str]:
        return [*super().extra_tables(records), locations_table(records)] if records else []

    def extra_charts(self, records: Sequence[Mapping[str, Any]], folder: Path) -> list[Path]:
        path = plot_locations(records, folder / "locations.png")
        return [path] if path is not None else []


def locations_curve(records: Sequence[Mapping[str, Any]], profile: str) -> list[tuple[float, float, float]]:
    """``(attended locations, test top-1, GFLOPs)`` of the runs of ``profile`` that have all three, by locations."""
    points = {}
    for record in records:
        if record["profile"] == profile and record.get("test") and record.get("cost"):
            points[record["test"]["locations"]] = (record["test"]["top1"], record["cost"]["gflops"])
    return [(k, top1, gflops) for k, (top1, gflops) in sorted(points.items())]


def locations_table(records: Sequence[Mapping[str, Any]]) -> str:
    """Markdown: the accuracy-against-locations curve of each profile."""
    lines = [
        "#### Test top-1 against attended locations per image",
        "",
        "| profile | locations | test top-1 | GFLOPs |",
    ]
    lines.append("|---|---:|---:|---:|")
    for profile in dict.fromkeys(r["profile"] for r in records):
        for k, top1, gflops in locations_curve(records, profile):
            lines.append(f"| {profile} | {k:g} | {percent(top1)} | {gflops:.3f} |")
    return "\n".join(lines)


def plot_locations(records: Sequence[Mapping[str, Any]], path: str | Path) -> Path | None:
    """A PNG of test top-1 against attended locations per image, one line per profile; ``None`` without points."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    figure, axis = plt.subplots(figsize=(5, 3.5))
    plotted = False
    for profile in dict.fromkeys(r["profile"] for r in records):
        curve = locations_curve(records, profile)
        if curve:
            axis.plot([p[0] for p in curve], [100 * p[1] for p in curve], marker="o", label=profile)
            plotted = True
    if not plotted:
        plt.close(figure)
        return None
    axis.set_xlabel("attended locations per image")
    axis.set_ylabel("test top-1 (%)")
    axis.set_title("TNet: accuracy against attended locations")
    axis.legend()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path


_IMAGENET: dict[str, Any] = dict(
    _LOSS,
    data="imagenet",
    root=None,
    image_size=224,
    batch_size=64,
    num_workers=None,
    max_epochs=200,
    lr=1e-4,
    locations=(3,),
    eval_locations=None,
    keep_prob=0.5,
    baseline_keep_prob=0.375,
    cost_batch=64,
)
IMAGENET_RECIPES: dict[str, dict[str, Any]] = {
    "smoke": {
        **_IMAGENET,
        **dict(data="synthetic", root=None, num_classes=4, image_size=96, num_train=2, num_val=2, batch_size=2),
        **dict(num_workers=0, max_epochs=1, locations=(1,), cost_batch=1),
    },
    "small": {
        **_IMAGENET,
        **dict(data="synthetic", root=None, num_classes=8, num_train=2048, num_val=512, max_epochs=20),
        "cost_batch": 16,
    },
    "paper": _IMAGENET,
}


@register
class ImageNetTNet(TNetExperiment):
    name = "tnet.imagenet"
    table = "ImageNet: TNet (BagNet-77, trained with 3 locations, evaluated with 3 and 5) against BagNet-77 (Table 1)"
    description = "TNet's ImageNet setting at 224 px, 2 levels, a 5 x 5 grid with overlap 0.34375."
    recipes: ClassVar[dict[str, dict[str, Any]]] = IMAGENET_RECIPES

    def variants(self) -> list[Variant]:
        return [
            Variant("TNet", {"model": "tnet"}),
            Variant(
                "TNet, 5 locations",
                {"model": "tnet", "eval_locations": (5,)},
                (PaperNumber("top1", 74.62, f"{_S}, 5 attended locations"),),
                rescores="TNet",
            ),
            Variant("BagNet-77", {"model": "whole"}),
        ]

    def build_datamodule(self, recipe: Mapping[str, Any]) -> L.LightningDataModule:
        if recipe["data"] == "imagenet":
            from datamodules.inception import inception_eval_transforms, inception_train_transforms

            size = recipe["image_size"]
            return ImageNetDataModule(
                dataset_folder("imagenet", recipe["root"]),
                batch_size=recipe["batch_size"],
                num_workers=_data_workers(recipe),
                crop_size=size,
                train_transform=inception_train_transforms(size),
                eval_transform=inception_eval_transforms(size),
            )
        return synthetic_datamodule(recipe)

    def tnet_network(self, recipe: Mapping[str, Any], num_classes: int) -> torch.nn.Module:
        return tnet_imagenet(num_classes, tuple(recipe["locations"]), keep_prob=recipe["keep_prob"])

    def baseline_network(self, variant: Variant, recipe: Mapping[str, Any], num_classes: int) -> torch.nn.Module:
        return bagnet77_baseline(num_classes, keep_prob=recipe["baseline_keep_prob"])


FMOW_STAGE_1 = dict(image_size=448, locations=(2,), dropout=0.5, drop_path_rate=0.3, ce_weight=0.2)
FMOW_STAGE_2 = dict(
    image_size=896,
    locations=(2, 1),
    dropout=0.5,
    drop_path_rate=0.5,
    ce_weight=0.05,
    reinforce_weight=0.05,
    feature_levels=2,
    max_epochs=10,
)


def _fmow_recipe(**overrides: Any) -> dict[str, Any]:
    recipe = dict(
        _LOSS,
        data="fmow",
        root=None,
        crop="full",
        max_short_side=None,
        num_classes=4,
        num_train=8,
        num_val=4,
        image_size=448,
        batch_size=64,
        num_workers=None,
        max_epochs=40,
        lr=1e-3,
        locations=(2,),
        eval_locations=None,
        dropout=0.5,
        drop_path_rate=0.3,
        baseline_l2_weight=1e-5,
        cost_batch=64,
        resolution_scale=1.0,
    )
    recipe.update(ce_weight=0.2, reinforce_weight=0.2)
    recipe.update(overrides)
    return recipe


FMOW_RECIPES: dict[str, dict[str, Any]] = {
    # A quarter of the paper's sides: TNet 448 / 896 see 112 / 224 px images, still resized to the 224 px base.
    "smoke": _fmow_recipe(
        data="synthetic",
        root=None,
        num_train=4,
        num_val=2,
        batch_size=2,
        num_workers=0,
        max_epochs=1,
        cost_batch=1,
        resolution_scale=0.25,
    ),
    "small": _fmow_recipe(data="synthetic", root=None, num_classes=8, num_train=512, num_val=128, batch_size=16),
    "paper": _fmow_recipe(),
}


def _baseline(name: str, size: int, epochs: int, batch: int, dropout: float, drop_path: float, crop: str) -> Variant:
    settings = dict(image_size=size, max_epochs=epochs, batch_size=batch, crop=crop, dropout=dropout)
    settings["drop_path_rate"] = drop_path
    return Variant(name, {"model": "whole"}, settings=settings)


@register
class FMoWTNet(TNetExperiment):
    name = "tnet.fmow"
    table = "fMoW: EfficientNet-B0 baselines against TNet at 448 and 896 px (test split)"
    description = (
        "Every fMoW accuracy and timing of the paper is not retrieved; the GFLOPs are the spec's counts [C]. "
        "TNet 896 fine-tunes TNet 448's final weights."
    )
    recipes: ClassVar[dict[str, dict[str, Any]]] = FMOW_RECIPES
    # The rows' epochs and batches are the official commands'; the smoke and small profiles keep their own.
    budget_keys: ClassVar[tuple[str, ...]] = ("max_epochs", "batch_size")

    def recipe(
        self, profile: str, overrides: Mapping[str, Any] | None = None, variant: Variant | None = None
    ) -> dict[str, Any]:
        if variant is not None and profile != "paper":
            settings = {key: value for key, value in variant.settings.items() if key not in self.budget_keys}
            variant = dataclasses.replace(variant, settings=settings)
        return super().recipe(profile, overrides, variant)

    def variants(self) -> list[Variant]:
        return [
            _baseline("EN-B0 cropped 224", 224, 65, 64, 0.75, 0.5, "cropped"),
            _baseline("EN-B0 224", 224, 60, 64, 0.75, 0.5, "full"),
            _baseline("EN-B0 448", 448, 30, 32, 0.75, 0.3, "full"),
            _baseline("EN-B0 896", 896, 30, 32, 0.3, 0.2, "full"),
            Variant("TNet 448", {"model": "tnet"}, settings=FMOW_STAGE_1),
            Variant("TNet 896", {"model": "tnet"}, settings=FMOW_STAGE_2, starts_from="TNet 448"),
        ]

    def build_datamodule(self, recipe: Mapping[str, Any]) -> L.LightningDataModule:
        if recipe["data"] == "fmow":
            from datamodules.fmow import FMoWDataModule

            return FMoWDataModule(
                dataset_folder("fmow", recipe["root"]),
                image_size=image_size(recipe),
                variant=recipe["crop"],
                max_short_side=recipe["max_short_side"],
                batch_size=recipe["batch_size"],
                num_workers=_data_workers(recipe),
            )
        return synthetic_datamodule(recipe)

    def tnet_network(self, recipe: Mapping[str, Any], num_classes: int) -> torch.nn.Module:
        return tnet_fmow(
            num_classes,
            tuple(recipe["locations"]),
            dropout=recipe["dropout"],
            drop_path_rate=recipe["drop_path_rate"],
        )

    def baseline_network(self, variant: Variant, recipe: Mapping[str, Any], num_classes: int) -> torch.nn.Module:
        return efficientnet_b0_baseline(num_classes, recipe["dropout"], recipe["drop_path_rate"])
