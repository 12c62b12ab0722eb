"""``python -m experiments eval``: score a checkpoint of the results store on a dataset split."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch

from datamodules.store.install import dataset_folder
from experiments.base import check_recipe_value, get_experiment
from experiments.builders import datamodule_class
from experiments.results import describe_protocol, percent, write_json_atomic
from experiments.run_folder import atomic_temp_file
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


# The recipe keys of the DataModule that an evaluation reads, which `eval --set` may change: the rest
# (backbone, heads, ...) describe the trained network and must stay as the run had them.
EVAL_DATA_KEYS = ("eval_short_side", "crop_size", "base_size", "num_workers")


def eval_recipe(recipe: Mapping[str, Any], overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The run's ``recipe`` with ``overrides`` of its DataModule settings (:data:`EVAL_DATA_KEYS`).

    Raises:
        ValueError: for a key that is not a DataModule setting of the run's recipe, or a value that the key
            does not accept (:func:`~experiments.base.check_recipe_value`).
    """
    recipe = dict(recipe)
    for key, value in (overrides or {}).items():
        if key not in EVAL_DATA_KEYS or key not in recipe:
            known = [name for name in EVAL_DATA_KEYS if name in recipe]
            raise ValueError(
                f"--set {key}=...: eval changes only the data settings of the run's recipe "
                f"({', '.join(known) or 'none for this run'}); the network is the run's."
            )
        check_recipe_value(key, value, recipe[key])
        recipe[key] = value
    return recipe


def other_datamodule(data: str, root: str | None, recipe: Mapping[str, Any]) -> L.LightningDataModule:
    """The DataModule of dataset ``data`` (a ``--data`` name) in ``root``, with the run's DataModule settings.

    Without ``root``: the run's own folder when it trained on ``data``, else ``data``'s folder under the data root
    (:func:`~datamodules.store.install.dataset_folder`).
    """
    if root is None and data == recipe.get("data"):
        root = recipe.get("root")
    kwargs = {key: recipe[key] for key in EVAL_DATA_KEYS if key in recipe}
    if isinstance(kwargs.get("crop_size"), list):
        # A recipe read back from a checkpoint holds lists where it had tuples.
        kwargs["crop_size"] = tuple(kwargs["crop_size"])
    return datamodule_class(data)(dataset_folder(data, root), **kwargs)


def load_trained(
    ckpt: str | Path,
    data: str | None = None,
    root: str | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> tuple[L.LightningModule, L.LightningDataModule, Mapping[str, Any]]:
    """The LightningModule of a run's checkpoint with its trained weights, a DataModule, and the run's description.

    The DataModule is the run's own (its recipe), or ``data`` (a ``--data`` name; the run's dataset when only
    ``root`` is given) read from ``root``, with the run's DataModule settings (evaluation size, crop, base size,
    workers) either way, changed by ``overrides`` (:func:`eval_recipe`). The description's recipe is the one
    evaluated.
    """
    checkpoint = load_checkpoint(ckpt)
    run: Mapping[str, Any] = checkpoint["run"]
    experiment = get_experiment(run["experiment"])
    recipe = eval_recipe(run["recipe"], overrides)
    if data is None and root is not None:
        data = recipe.get("data")  # the run's dataset, in another folder
    datamodule = experiment.build_datamodule(recipe) if data is None else other_datamodule(data, root, recipe)
    module = experiment.build_module(experiment.variant(run["variant"]), recipe, datamodule)
    module.load_state_dict(checkpoint["state_dict"])
    return module, datamodule, {**run, "recipe": recipe}


def data_protocol(datamodule: L.LightningDataModule, data: str | None, recipe: Mapping[str, Any]) -> dict[str, Any]:
    """What an evaluation reads: the dataset's name, its folder, and the evaluation size (``eval_short_side``:
    the shorter side in pixels, None for the full image)."""
    root = getattr(datamodule, "root", None)
    return {
        "data": data or recipe.get("data") or type(datamodule).__name__,
        "root": None if root is None else str(root),
        "eval_short_side": getattr(datamodule, "eval_short_side", None),
    }


def describe_evaluation(
    run: Mapping[str, Any], split: str, data: Mapping[str, Any], inference: Mapping[str, Any]
) -> str:
    """One line saying what is scored, on what, how and at what size, e.g. for ``eval`` to print before it starts:
    ``"evaluating quickstart / fcn (small profile) on synthetic, split val: flip + single scale, full resolution"``.
    """
    where = f" in {data['root']}" if data["root"] is not None else ""
    return (
        f"evaluating {run['experiment']} / {run['variant']} ({run['recipe'].get('profile')} profile) on "
        f"{data['data']}{where}, split {split}: {describe_protocol(inference, data['eval_short_side'])}"
    )


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
    overrides: Mapping[str, Any] | None = None,
    announce: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Rebuild the run's network, load its weights and score it on ``split``; writes ``eval-<split>.json`` and the
    per-image statistics ``eval-<split>.npz`` (:func:`write_per_image`), which ``compare`` resamples.

    ``overrides`` change the run's DataModule settings (:func:`eval_recipe`); ``announce`` receives the
    protocol (:func:`describe_evaluation`) before the evaluation starts.
    """
    if split not in ("val", "test"):
        raise ValueError(f"split must be 'val' or 'test', got {split!r}.")
    module, datamodule, run = load_trained(ckpt, data, root, overrides)
    recipe = run["recipe"]
    datamodule.setup("validate" if split == "val" else "test")
    loader = datamodule.val_dataloader() if split == "val" else datamodule.test_dataloader()
    if sliding and window is None and "crop_size" in recipe:
        crop = recipe["crop_size"]
        window = (crop, crop) if isinstance(crop, int) else tuple(crop)
    inference = predict_kwargs(multi_scale, flip, sliding, window, combine)
    data_fields = data_protocol(datamodule, data, recipe)
    if announce is not None:
        announce(describe_evaluation(run, split, data_fields, inference))
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    result = evaluate_segmentation(
        module.network,
        loader,
        datamodule.num_classes,
        class_names=datamodule.class_names,
        predict_kwargs=inference,
        crop_factors=crop_factors,
        device=device,
        per_image=True,
    )
    folder = Path(ckpt).resolve().parent.parent
    write_per_image(folder / f"eval-{split}.npz", result.pop("per_image"), datamodule.class_names)
    record = {
        "checkpoint": str(ckpt),
        "experiment": run["experiment"],
        "variant": run["variant"],
        "profile": recipe.get("profile"),
        "split": split,
        **data_fields,
        "protocol": inference,
        "device": torch.cuda.get_device_name(0) if device.startswith("cuda") else "cpu",
        **result,
    }
    write_json_atomic(folder / f"eval-{split}.json", record)
    return record


def write_per_image(path: Path, arrays: Mapping[str, Any], class_names: Sequence[str]) -> None:
    """The per-image statistics of an evaluation (``evaluate_segmentation(..., per_image=True)``) as one
    compressed ``.npz``, written to a temporary file and renamed: ``true_positive``, ``labelled``, ``predicted``
    ``(N, K)``, ``boundary_F`` ``(N, T, K)``, ``has_label`` ``(N,)``, ``thresholds`` ``(T,)`` and ``class_names``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = atomic_temp_file(path)
    try:
        with open(tmp, "wb") as file:
            np.savez_compressed(file, class_names=np.asarray(list(class_names)), **arrays)
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)


def format_evaluation(record: Mapping[str, Any]) -> str:
    """Markdown, scores in %: the overall scores, then per-class IoU and boundary F (``eval-<split>.json`` keeps
    the fractions)."""
    thresholds = list(record["boundary_F"])
    lines = [
        f"{record['experiment']} / {record['variant']} ({record['profile']} profile), split {record['split']}, "
        f"device {record['device']}; scores in %",
        "",
        "| mIoU | pixel acc | mean class acc | " + " | ".join(f"boundary F @{t}" for t in thresholds) + " |",
        "|---:|---:|---:|" + "---:|" * len(thresholds),
        "| "
        + " | ".join(percent(value, 2) for value in (record["mIoU"], record["pixel_acc"], record["mean_class_acc"]))
        + " | "
        + " | ".join(percent(record["boundary_F"][t], 2) for t in thresholds)
        + " |",
        "",
        "| class | IoU | " + " | ".join(f"F @{t}" for t in thresholds) + " |",
        "|---|---:|" + "---:|" * len(thresholds),
    ]
    for name, iou in record["iou_per_class"].items():
        f_values = " | ".join(percent(record["boundary_F_per_class"][t][name], 2) for t in thresholds)
        lines.append(f"| {name} | {percent(iou, 2)} | {f_values} |")
    if record["crop_factor_mIoU"]:
        lines += ["", "| crop factor (px) | mIoU |", "|---:|---:|"]
        lines += [f"| {crop} | {percent(value, 2)} |" for crop, value in record["crop_factor_mIoU"].items()]
    return "\n".join(lines)
