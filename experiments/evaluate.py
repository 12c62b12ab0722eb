"""``python -m experiments eval``: score a checkpoint of the results store on a dataset split."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import lightning as L
import torch

from experiments.base import get_experiment
from experiments.builders import datamodule_class
from experiments.results import write_json_atomic
from lightning_modules.evaluation import evaluate_segmentation
from lightning_modules.inference import COMBINES


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """A checkpoint written by ``experiments run``, with the run it belongs to."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist.")
    # Our own Lightning checkpoint: optimizer state and the run's recipe (plain Python values).
    checkpoint = torch.load(path, map_location="cpu", weights_only=False)
    if "run" not in checkpoint:
        raise ValueError(
            f"checkpoint {path} has no 'run' entry: only checkpoints written by `python -m experiments run` "
            "name the experiment and variant needed to rebuild the network."
        )
    return checkpoint


def predict_kwargs(
    multi_scale: bool, flip: bool, sliding: bool, window: Sequence[int] | None, combine: str = "softmax"
) -> dict[str, Any]:
    """The inference protocol of the CLI flags (see :mod:`lightning_modules.inference`).

    ``combine`` (``"softmax"``, ``"logits"`` or ``"exp_sum"``) is how multi-scale / flipped passes combine.
    """
    window_kwargs = {"window": tuple(window)} if sliding else {}
    if sliding and window is None:
        raise ValueError("--sliding needs the window size: the training crop of the recipe or --window H W.")
    if combine not in COMBINES:
        raise ValueError(f"--combine must be one of {', '.join(COMBINES)}, got {combine!r}.")
    if combine != "softmax" and not (multi_scale or flip):
        raise ValueError("--combine says how --multi-scale / --flip passes combine: add one of them.")
    if multi_scale or flip:
        scales = {} if multi_scale else {"scales": (1.0,)}
        combined = {} if combine == "softmax" else {"combine": combine}
        return {"mode": "multiscale", "flip": flip, **scales, **window_kwargs, **combined}
    if sliding:
        return {"mode": "sliding", **window_kwargs}
    return {"mode": "single"}


def load_trained(
    ckpt: str | Path, data: str | None = None, root: str | None = None
) -> tuple[L.LightningModule, L.LightningDataModule, Mapping[str, Any]]:
    """The LightningModule of a run's checkpoint with its trained weights, a DataModule, and the run's description.

    The DataModule is the run's own (its recipe), or ``data`` (a ``--data`` name) read from ``root``.
    """
    checkpoint = load_checkpoint(ckpt)
    run: Mapping[str, Any] = checkpoint["run"]
    experiment = get_experiment(run["experiment"])
    recipe = dict(run["recipe"])
    if data is None:
        datamodule = experiment.build_datamodule(recipe)
    else:
        kwargs = {"num_workers": recipe.get("num_workers")}
        datamodule = datamodule_class(data)(root or recipe.get("root"), **kwargs)
    module = experiment.build_module(experiment.variant(run["variant"]), recipe, datamodule)
    module.load_state_dict(checkpoint["state_dict"])
    return module, datamodule, run


def evaluate_checkpoint(
    ckpt: str | Path,
    data: str | None = None,
    root: str | None = None,
    split: str = "test",
    multi_scale: bool = False,
    flip: bool = False,
    sliding: bool = False,
    window: Sequence[int] | None = None,
    crop_factors: Sequence[int] = (),
    device: str | None = None,
    combine: str = "softmax",
) -> dict[str, Any]:
    """Rebuild the run's network, load its weights and score it on ``split``; writes ``eval-<split>.json``."""
    if split not in ("val", "test"):
        raise ValueError(f"split must be 'val' or 'test', got {split!r}.")
    module, datamodule, run = load_trained(ckpt, data, root)
    recipe = run["recipe"]
    datamodule.setup("validate" if split == "val" else "test")
    loader = datamodule.val_dataloader() if split == "val" else datamodule.test_dataloader()
    if sliding and window is None and "crop_size" in recipe:
        crop = recipe["crop_size"]
        window = (crop, crop) if isinstance(crop, int) else tuple(crop)
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    result = evaluate_segmentation(
        module.network,
        loader,
        datamodule.num_classes,
        class_names=datamodule.class_names,
        predict_kwargs=predict_kwargs(multi_scale, flip, sliding, window, combine),
        crop_factors=crop_factors,
        device=device,
    )
    record = {
        "checkpoint": str(ckpt),
        "experiment": run["experiment"],
        "variant": run["variant"],
        "profile": recipe.get("profile"),
        "split": split,
        "protocol": predict_kwargs(multi_scale, flip, sliding, window, combine),
        "device": torch.cuda.get_device_name(0) if device.startswith("cuda") else "cpu",
        **result,
    }
    write_json_atomic(Path(ckpt).resolve().parent.parent / f"eval-{split}.json", record)
    return record


def format_evaluation(record: Mapping[str, Any]) -> str:
    """Markdown: the overall scores, then per-class IoU and boundary F."""
    thresholds = list(record["boundary_F"])
    lines = [
        f"{record['experiment']} / {record['variant']} ({record['profile']} profile), split {record['split']}, "
        f"protocol {record['protocol']}, device {record['device']}",
        "",
        "| mIoU | pixel acc | mean class acc | " + " | ".join(f"boundary F @{t}" for t in thresholds) + " |",
        "|---:|---:|---:|" + "---:|" * len(thresholds),
        f"| {record['mIoU']:.4f} | {record['pixel_acc']:.4f} | {record['mean_class_acc']:.4f} | "
        + " | ".join(f"{record['boundary_F'][t]:.4f}" for t in thresholds)
        + " |",
        "",
        "| class | IoU | " + " | ".join(f"F @{t}" for t in thresholds) + " |",
        "|---|---:|" + "---:|" * len(thresholds),
    ]
    for name, iou in record["iou_per_class"].items():
        f_values = " | ".join(f"{record['boundary_F_per_class'][t][name]:.4f}" for t in thresholds)
        lines.append(f"| {name} | {iou:.4f} | {f_values} |")
    if record["crop_factor_mIoU"]:
        lines += ["", "| crop factor (px) | mIoU |", "|---:|---:|"]
        lines += [f"| {crop} | {value:.4f} |" for crop, value in record["crop_factor_mIoU"].items()]
    return "\n".join(lines)
