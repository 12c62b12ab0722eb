"""Run one variant of an experiment under a profile, resumably, and store its results.

A run's folder is ``runs/<experiment>/<variant>/<run-id>/`` where the run id is derived from the
profile, the seed and the recipe, so that the same command finds the same folder again:

- ``metrics.json`` present and valid: the variant is finished and skipped;
- ``checkpoints/last.ckpt`` present without ``metrics.json``: the run was interrupted and resumes
  from that checkpoint, with the random number generators restored, so that it ends where an
  uninterrupted run would have.

The stored scores always come from a full validation pass over the split with the final network: when
training ends without one at its last step (a checkpoint that was already final, ``max_epochs=0``, a
skipped last validation), the runner validates once more (:class:`ValidatedStep`).

A row that rescores another (``Variant.rescores``) trains nothing: its folder has the other run's
id and holds the scores of that run's network under the row's own test protocol.

One command at a time works in a run folder (:mod:`experiments.run_folder`): it holds the folder's lock,
removes the partial files of a killed run, and refuses to resume an unreadable checkpoint unless asked to
restart; ``logs/metrics.csv`` is continued on resume (:class:`~experiments.tracking.ResumableCSVLogger`).
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

import lightning as L
import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO
from lightning.fabric.utilities.rank_zero import rank_zero_only
from lightning.fabric.utilities.seed import _collect_rng_states, _set_rng_states
from lightning.pytorch.callbacks import Callback, LearningRateMonitor, ModelCheckpoint
from lightning.pytorch.loggers import Logger
from timm.layers import convert_sync_batchnorm

from datamodules.store.catalog import spec_for_data
from datamodules.store.install import dataset_folder
from experiments.base import Experiment, Variant
from experiments.cost import RunCost
from experiments.evaluate import load_checkpoint
from experiments.progress import cpu_run_callbacks
from experiments.results import CorruptRecordError, environment, git_state, read_record, write_json_atomic
from experiments.run_folder import (
    CorruptCheckpointError,
    atomic_temp_file,
    checkpoint_problem,
    hold_run_folder,
    move_aside,
    remove_partial_files,
)
from experiments.tracking import (
    LogEveryEpoch,
    ResumableCSVLogger,
    WandbMode,
    finishing_wandb,
    make_wandb_logger,
    wandb_callbacks,
)
from lightning_modules.add_attention import restore_attention_hooks

RESULTS_FILE = "metrics.json"


class RunState(Callback):
    """Stores the run (experiment, variant, recipe) and the RNG states in every checkpoint.

    ``eval`` rebuilds the network from the run; the RNG states make a resumed run draw the same
    random numbers (shuffling, dropout) as an uninterrupted one.
    """

    def __init__(self, run: dict[str, Any]) -> None:
        self.run = run

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]) -> None:
        checkpoint["run"] = self.run
        states = _collect_rng_states()
        # numpy's state array as a tensor: Lightning loads checkpoints with torch.load(weights_only=True).
        name, keys, *rest = states["numpy"]
        checkpoint["rng_states"] = {**states, "numpy": (name, torch.from_numpy(keys), *rest)}

    def on_load_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]) -> None:
        if "rng_states" in checkpoint:
            states = dict(checkpoint["rng_states"])
            name, keys, *rest = states["numpy"]
            _set_rng_states({**states, "numpy": (name, keys.numpy(), *rest)})


class FitTime(Callback):
    """The training time of a run over all its attempts, in seconds: this attempt's, plus the time that the
    checkpoint it resumed from had recorded (``checkpoint["fit_seconds"]``). Work done after an interrupted
    attempt's last checkpoint is done again, so it counts once.
    """

    def __init__(self, clock: Callable[[], float] = time.perf_counter) -> None:
        self.clock = clock
        self.before = 0.0
        self.started: float | None = None

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.started = self.clock()

    def on_load_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]) -> None:
        self.before = float(checkpoint.get("fit_seconds", 0.0))

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]) -> None:
        checkpoint["fit_seconds"] = self.seconds()

    def seconds(self) -> float:
        """The time so far (0 for the current attempt before its fit starts)."""
        return self.before + (0.0 if self.started is None else self.clock() - self.started)


class ValidatedStep(Callback):
    """Remembers the training step of the last full validation pass (the sanity check's two batches do not count).

    A run's scores must be those of its final network over the whole split. Fit leaves the module's
    ``last_scores`` stale or partial when no full validation ran at the last step: a resumed run whose
    checkpoint was already final (only the sanity check runs), ``max_epochs=0``, a ``max_steps`` stop
    mid-epoch, or a last epoch that ``check_val_every_n_epoch`` skips.
    """

    def __init__(self) -> None:
        self.step: int | None = None

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.sanity_checking:
            self.step = trainer.global_step


class InterruptNote(Callback):
    """On Ctrl-C, says what the interrupted run keeps and how to go on (Lightning then exits with code 1)."""

    def __init__(self, last: Path) -> None:
        self.last = last

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        if not isinstance(exception, KeyboardInterrupt) or not trainer.is_global_zero:
            return
        kept = f"its last checkpoint, {self.last}" if self.last.is_file() else "no checkpoint (one per epoch)"
        print(f"interrupted: the run keeps {kept}; the same command resumes it.", file=sys.stderr, flush=True)


class AtomicCheckpointIO(TorchCheckpointIO):
    """Writes a checkpoint to a temporary file and renames it, so that a killed process never leaves
    a half-written ``last.ckpt`` (Lightning writes the target file in place)."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: str | Path, storage_options: Any = None) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = atomic_temp_file(path)
        try:
            super().save_checkpoint(checkpoint, tmp, storage_options)
            os.replace(tmp, path)
        finally:
            Path(tmp).unlink(missing_ok=True)


def run_id(profile: str, recipe: Mapping[str, Any], seed: int) -> str:
    """``<profile>-seed<seed>-<hash of the recipe>``: the same settings give the same folder."""
    digest = hashlib.sha256(json.dumps(dict(recipe), sort_keys=True, default=str).encode()).hexdigest()[:8]
    return f"{profile}-seed{seed}-{digest}"


def compile_network(module: L.LightningModule) -> None:
    """``torch.compile`` the module's ``network`` in place (``nn.Module.compile``: the state-dict keys stay)."""
    network = getattr(module, "network", None)
    if not isinstance(network, torch.nn.Module):
        raise ValueError(
            f"compile=True needs a LightningModule with a `network` attribute; {type(module).__name__} has none."
        )
    network.compile()


def trainer_strategy(devices: int | str, num_nodes: int) -> dict[str, Any]:
    """Lightning DDP when more than one process trains, else the defaults (SyncBatchNorm: see run_variant)."""
    if num_nodes < 1:
        raise ValueError(f"--num-nodes must be >= 1, got {num_nodes}.")
    distributed = num_nodes > 1 or (isinstance(devices, int) and devices > 1) or devices == -1
    if not distributed:
        return {"devices": devices, "num_nodes": num_nodes}
    # The DataModules give distributed samplers that do not repeat samples at evaluation, so that
    # scores over a split are exact; Lightning's own sampler would pad the last batch.
    return {"devices": devices, "num_nodes": num_nodes, "strategy": "ddp", "use_distributed_sampler": False}


def _first_process() -> bool:
    """Whether this is the first process of its job: the processes of a DDP run share its folder.

    Lightning's DDP launcher starts the others with ``LOCAL_RANK`` set, torchrun and SLURM set ``RANK`` /
    ``SLURM_PROCID``; the first process of another node has ``NODE_RANK`` set.
    """
    return rank_zero_only.rank == 0 and os.environ.get("NODE_RANK", "0") == "0"


@contextmanager
def _holding(run_dir: Path, wait: bool) -> Iterator[None]:
    """The run folder locked, then cleared of a killed run's partial files, for the body (first process only).

    Raises RunFolderBusyError naming the holder when another command runs in the folder, unless ``wait``.
    """
    if not _first_process():
        yield
        return
    with hold_run_folder(run_dir, wait):
        remove_partial_files(run_dir)
        yield


def _restart(run_dir: Path) -> None:
    """Move the run's checkpoint, CSV log and W&B id aside (``<name>.restart-<time>``, an unreadable checkpoint
    ``last.ckpt.corrupt-<time>``): nothing of the earlier attempt is deleted, nothing of it is continued."""
    last = run_dir / "checkpoints" / "last.ckpt"
    if last.is_file():
        move_aside(last, "restart" if checkpoint_problem(last) is None else "corrupt")
    for path in (run_dir / "logs" / "metrics.csv", run_dir / "wandb_id"):
        if path.is_file():
            move_aside(path, "restart")


def _resume_point(run_dir: Path, restart: bool) -> Path | None:
    """The checkpoint to resume from: ``checkpoints/last.ckpt`` when present, None to train from scratch.

    Raises CorruptCheckpointError naming an unreadable checkpoint and the way out, ``--restart``, which
    moves the earlier attempt aside (:func:`_restart`) instead of resuming it.
    """
    if restart:
        if _first_process():
            _restart(run_dir)
        return None
    last = run_dir / "checkpoints" / "last.ckpt"
    if not last.is_file():
        return None
    problem = checkpoint_problem(last)
    if problem is not None:
        raise CorruptCheckpointError(
            f"{last} is not a readable checkpoint: {problem}. Run again with --restart "
            "(run_variant(..., restart=True)) to move it aside as last.ckpt.corrupt-<time> and train the "
            "variant from scratch."
        )
    return last


def _finished_record(results: Path) -> dict[str, Any] | None:
    """The record of a finished run, or None; a corrupt ``metrics.json`` is removed with a warning."""
    if not results.exists():
        return None
    try:
        return read_record(results)
    except CorruptRecordError as err:
        warnings.warn(f"{err} Running the variant again.", stacklevel=4)
        results.unlink()
        return None


def _build(
    experiment: Experiment, variant: Variant, recipe: Mapping[str, Any], seed: int, stage: str = "fit"
) -> tuple[L.LightningDataModule, L.LightningModule]:
    """The run's DataModule and LightningModule, built after seeding, the network compiled when the recipe asks.

    The files that ``stage`` reads are checked first (the DataModule's ``check_layout``, where it has one): a missing
    dataset is a ``FileNotFoundError`` naming it before the network is built and its weights are downloaded.
    """
    L.seed_everything(seed, workers=True)
    datamodule = experiment.build_datamodule(recipe)
    if hasattr(datamodule, "check_layout"):
        datamodule.check_layout(stage)
    module = experiment.build_module(variant, recipe, datamodule)
    if recipe.get("compile", False):
        compile_network(module)
    return datamodule, module


def best_checkpoint(module: L.LightningModule, run_dir: Path) -> ModelCheckpoint | None:
    """``checkpoints/best.ckpt``: the epoch with the highest validation ``module.monitor`` (e.g. ``val/mIoU``), or
    None for a module that names no such score."""
    monitor = getattr(module, "monitor", None)
    if monitor is None:
        return None
    return ModelCheckpoint(
        dirpath=run_dir / "checkpoints",
        filename="best",
        monitor=monitor,
        mode="max",
        save_top_k=1,
        enable_version_counter=False,
        auto_insert_metric_name=False,
    )


def describe_run(
    experiment: Experiment,
    variant: Variant,
    recipe: Mapping[str, Any],
    seed: int,
    run_dir: Path,
    trainer: L.Trainer,
    resume_from: Path | None,
) -> str:
    """One line on what trains where: the row, profile, seed, device(s), precision and folder (or checkpoint)."""
    device = trainer.strategy.root_device
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else device.type
    devices = f"{trainer.world_size} × {name}" if trainer.world_size > 1 else name
    start = f"resuming from {resume_from}" if resume_from is not None else f"into {run_dir}"
    return (
        f"{experiment.name} / {variant.name}: {recipe['profile']} profile, seed {seed}, {devices}, "
        f"precision {trainer.precision}, {start}"
    )


def _logging(
    run_dir: Path,
    wandb: WandbMode,
    experiment: Experiment,
    variant: Variant,
    recipe: Mapping[str, Any],
    datamodule: L.LightningDataModule,
) -> tuple[list[Logger], list[Callback]]:
    """The CSV logger, and unless ``wandb`` is ``disabled`` the W&B logger with its media callbacks."""
    csv = ResumableCSVLogger(run_dir, name="logs", version="")
    wandb_logger = make_wandb_logger(wandb, run_dir, experiment, variant, recipe)
    if wandb_logger is None:
        return [csv], []
    return [csv, wandb_logger], wandb_callbacks(datamodule)


def check_dataset_folder(recipe: Mapping[str, Any]) -> None:
    """Raise DatasetNotFoundError (naming the data root and the ``data download`` command) when the recipe reads a
    dataset from disk whose folder does not exist: before a run folder is made for a run that cannot start."""
    data = recipe.get("data")
    if isinstance(data, str) and (recipe.get("root") is not None or spec_for_data(data) is not None):
        dataset_folder(data, recipe.get("root"))


def data_folder(datamodule: L.LightningDataModule) -> str | None:
    """The dataset folder a run read (resolved: the data root or ``--set root=``), None for generated data."""
    root = getattr(datamodule, "root", None)
    return None if root is None else str(Path(root).resolve())


def _record(
    experiment: Experiment,
    variant: Variant,
    recipe: Mapping[str, Any],
    seed: int,
    run_dir: Path,
    trainer: L.Trainer,
    module: L.LightningModule,
    code: Mapping[str, Any],
    fields: Mapping[str, Any],
) -> dict[str, Any]:
    """The ``metrics.json`` record of a run: what ran, on what, its validation scores and the paper's numbers,
    then ``fields`` (timings, what it resumed from or rescored)."""
    scores = getattr(module, "last_scores", {}).get("val", {})
    return {
        "experiment": experiment.name,
        "paper": experiment.paper,
        "table": experiment.table,
        "variant": variant.name,
        "variant_params": dict(variant.params),
        "profile": recipe["profile"],
        "recipe": recipe,
        "seed": seed,
        "run_id": run_dir.name,
        "git": code,
        **environment(),
        "world_size": trainer.world_size,
        "precision": trainer.precision,
        "metrics": {f"val/{key}": value for key, value in scores.items() if not isinstance(value, Mapping)},
        "per_class": {
            "val/IoU": scores.get("iou_per_class", {}),
            **{f"val/{key}": values for key, values in scores.get("boundary_F_per_class", {}).items()},
        },
        "paper_numbers": [vars(number) for number in variant.paper],
        **fields,
    }


def run_variant(
    experiment: Experiment,
    variant: Variant,
    profile: str,
    runs_dir: str | Path = "runs",
    overrides: Mapping[str, Any] | None = None,
    seed: int = 0,
    wandb: WandbMode = "offline",
    devices: int | str = "auto",
    num_nodes: int = 1,
    callbacks: Sequence[Callback] = (),
    restart: bool = False,
    wait: bool = False,
) -> tuple[Literal["finished", "skipped"], dict[str, Any]]:
    """Train and validate ``variant`` (or skip it when finished); returns its ``metrics.json`` record.

    An interrupted run resumes from its checkpoint; ``restart`` trains it from scratch instead, its
    checkpoint, CSV log and W&B id moved aside (an unreadable checkpoint raises CorruptCheckpointError
    without it). Another command running in the same folder raises RunFolderBusyError naming it, unless
    ``wait``, which waits for it to end (then the variant is usually finished and skipped).

    A row that ``rescores`` another trains nothing. The paper scores one network under several test
    protocols (DANet Table 2: ``+MS`` is the ``+MG`` network tested at several scales), so such a
    row runs (or finds) the other row with the same profile, overrides and seed, then validates that
    run's final checkpoint once with its own protocol (:func:`rescore`). Its folder has the other
    run's id; its record names the checkpoint under ``rescores``.
    """
    if variant.rescores is not None:
        source = experiment.variant(variant.rescores)
        if source.rescores is not None:
            raise ValueError(
                f"variant {variant.name!r} rescores {source.name!r}, which trains nothing itself: "
                f"name the row that trains ({source.rescores!r})."
            )
        _, trained = run_variant(
            experiment, source, profile, runs_dir, overrides, seed, wandb, devices, num_nodes, callbacks, restart, wait
        )
        source_dir = Path(runs_dir) / experiment.name / source.name / trained["run_id"]
        run_dir = Path(runs_dir) / experiment.name / variant.name / trained["run_id"]
        recipe = experiment.recipe(profile, overrides, source)
        return rescore(
            experiment, variant, recipe, seed, source_dir, run_dir, wandb, devices, num_nodes, callbacks, wait
        )
    start = None
    if variant.starts_from is not None:
        _check_start_chain(experiment, variant)
        source = experiment.variant(variant.starts_from)
        _, trained = run_variant(
            experiment, source, profile, runs_dir, overrides, seed, wandb, devices, num_nodes, callbacks, False, wait
        )
        start = Path(runs_dir) / experiment.name / source.name / trained["run_id"] / "checkpoints" / "last.ckpt"
    recipe = experiment.recipe(profile, overrides, variant)
    run_dir = Path(runs_dir) / experiment.name / variant.name / run_id(profile, recipe, seed)
    if not (run_dir / RESULTS_FILE).is_file():
        check_dataset_folder(recipe)
    with _holding(run_dir, wait), finishing_wandb():
        return _train(experiment, variant, recipe, seed, run_dir, wandb, devices, num_nodes, callbacks, restart, start)


def _train(
    experiment: Experiment,
    variant: Variant,
    recipe: Mapping[str, Any],
    seed: int,
    run_dir: Path,
    wandb: WandbMode,
    devices: int | str,
    num_nodes: int,
    callbacks: Sequence[Callback],
    restart: bool,
    start: Path | None = None,
) -> tuple[Literal["finished", "skipped"], dict[str, Any]]:
    """:func:`run_variant`'s training, in a run folder this job holds; ``start`` is the checkpoint of the row the
    variant ``starts_from``, whose weights a run that does not resume loads before training."""
    results = run_dir / RESULTS_FILE
    finished = _finished_record(results)
    if finished is not None:
        return "skipped", finished
    resume_from = _resume_point(run_dir, restart)
    datamodule, module = _build(experiment, variant, recipe, seed)
    if start is not None and resume_from is None:
        _check_source_checkpoint(start, variant, variant.starts_from, "starts from the weights of")
        module.load_state_dict(load_checkpoint(start)["state_dict"])
    strategy = trainer_strategy(devices, num_nodes)
    if "strategy" in strategy:
        # timm's conversion keeps the fused activation of its BatchNormAct2d (EfficientNet), which
        # Trainer(sync_batchnorm=True) silently drops.
        module = restore_attention_hooks(convert_sync_batchnorm(module))
    run = {"experiment": experiment.name, "variant": variant.name, "recipe": recipe, "seed": seed}
    loggers, media = _logging(run_dir, wandb, experiment, variant, recipe, datamodule)
    validated = ValidatedStep()
    fit_time = FitTime()
    cost = RunCost()
    best = best_checkpoint(module, run_dir)
    trainer = L.Trainer(
        default_root_dir=run_dir,
        logger=loggers,
        callbacks=[
            # monitor=None, save_top_k=1: one checkpoint, overwritten at the end of every epoch.
            ModelCheckpoint(dirpath=run_dir / "checkpoints", filename="last", enable_version_counter=False),
            *([best] if best is not None else []),
            LearningRateMonitor(logging_interval="step"),
            LogEveryEpoch(),
            InterruptNote(run_dir / "checkpoints" / "last.ckpt"),
            RunState(run),
            fit_time,
            validated,
            cost,
            *cpu_run_callbacks(experiment, variant, recipe),
            *media,
            *callbacks,
        ],
        enable_model_summary=False,
        plugins=[AtomicCheckpointIO()],
        deterministic=recipe.get("deterministic", False),
        **strategy,
        **experiment.trainer_kwargs(recipe),
    )
    # The code that trains, taken before training: commits made while a long run goes on are not its code.
    code = git_state()
    if trainer.is_global_zero:
        print(describe_run(experiment, variant, recipe, seed, run_dir, trainer, resume_from), flush=True)
    trainer.fit(module, datamodule=datamodule, ckpt_path=resume_from)
    timings: dict[str, Any] = {"fit_seconds": fit_time.seconds(), "steps": trainer.global_step}
    if validated.step != trainer.global_step:
        started = time.perf_counter()
        trainer.validate(module, datamodule=datamodule, verbose=False)
        timings["validate_seconds"] = time.perf_counter() - started
    fields = {"resumed_from": str(resume_from) if resume_from is not None else None, "timings": timings}
    if start is not None:
        fields["starts_from"] = {"variant": variant.starts_from, "checkpoint": str(start)}
    fields.update(experiment.after_evaluation(trainer, module, datamodule, recipe))
    if best is not None and best.best_model_score is not None:
        fields["best"] = {
            "metric": best.monitor,
            "score": float(best.best_model_score),
            "checkpoint": str(best.best_model_path),
        }
    fields["data_folder"] = data_folder(datamodule)
    fields["run_cost"] = cost.summary(trainer, module)
    record = _record(experiment, variant, recipe, seed, run_dir, trainer, module, code, fields)
    if trainer.is_global_zero:
        write_json_atomic(results, record)
    return "finished", record


def rescore(
    experiment: Experiment,
    variant: Variant,
    recipe: Mapping[str, Any],
    seed: int,
    source_dir: Path,
    run_dir: Path,
    wandb: WandbMode = "offline",
    devices: int | str = "auto",
    num_nodes: int = 1,
    callbacks: Sequence[Callback] = (),
    wait: bool = False,
) -> tuple[Literal["finished", "skipped"], dict[str, Any]]:
    """Validate the final checkpoint of the run in ``source_dir`` with ``variant``'s test protocol.

    ``recipe`` is the one that trained it; the record goes to ``run_dir``. Skipped when finished.
    ``run_dir`` is locked as in :func:`run_variant` (``wait`` likewise).
    """
    with _holding(run_dir, wait), finishing_wandb():
        return _rescore(experiment, variant, recipe, seed, source_dir, run_dir, wandb, devices, num_nodes, callbacks)


def _check_start_chain(experiment: Experiment, variant: Variant) -> None:
    """Raise unless every row up ``variant``'s ``starts_from`` chain trains, and the chain has no loop."""
    seen, row = [variant.name], variant
    while row.starts_from is not None:
        row = experiment.variant(row.starts_from)
        if row.rescores is not None:
            raise ValueError(
                f"{seen[-1]!r} starts from the weights of {row.name!r}, which trains nothing (it rescores "
                f"{row.rescores!r}): name the row that trains."
            )
        if row.name in seen:
            raise ValueError(f"rows that start from each other's weights: {' -> '.join([*seen, row.name])}.")
        seen.append(row.name)


def _check_source_checkpoint(checkpoint: Path, variant: Variant, source: str | None, relation: str) -> None:
    """Raise unless ``checkpoint``, the final one of the row ``source`` that ``variant`` uses, is there and readable."""
    source_dir = checkpoint.parent.parent
    if not checkpoint.is_file():
        raise FileNotFoundError(
            f"{variant.name!r} {relation} {source!r}, but its run has no checkpoint {checkpoint}. "
            f"Delete {source_dir / RESULTS_FILE} to train {source!r} again."
        )
    problem = checkpoint_problem(checkpoint)
    if problem is not None:
        raise CorruptCheckpointError(
            f"{variant.name!r} {relation} {source!r}, but its checkpoint {checkpoint} is not readable: {problem}. "
            f"Delete {source_dir / RESULTS_FILE} and run again with --restart to train {source!r} again."
        )


def _rescore(
    experiment: Experiment,
    variant: Variant,
    recipe: Mapping[str, Any],
    seed: int,
    source_dir: Path,
    run_dir: Path,
    wandb: WandbMode,
    devices: int | str,
    num_nodes: int,
    callbacks: Sequence[Callback],
) -> tuple[Literal["finished", "skipped"], dict[str, Any]]:
    """:func:`rescore`'s validation, in a run folder this job holds."""
    results = run_dir / RESULTS_FILE
    finished = _finished_record(results)
    if finished is not None:
        return "skipped", finished
    checkpoint = source_dir / "checkpoints" / "last.ckpt"
    _check_source_checkpoint(checkpoint, variant, variant.rescores, "scores the network of")
    datamodule, module = _build(experiment, variant, recipe, seed, stage="validate")
    # nn.Module.compile keeps the state-dict keys, so the checkpoint loads into the compiled network too.
    module.load_state_dict(load_checkpoint(checkpoint)["state_dict"])
    loggers, media = _logging(run_dir, wandb, experiment, variant, recipe, datamodule)
    trainer = L.Trainer(
        default_root_dir=run_dir,
        logger=loggers,
        callbacks=[*media, *callbacks],
        enable_checkpointing=False,
        enable_model_summary=False,
        deterministic=recipe.get("deterministic", False),
        **trainer_strategy(devices, num_nodes),
        **experiment.trainer_kwargs(recipe),
    )
    code = git_state()
    started = time.perf_counter()
    trainer.validate(module, datamodule=datamodule, verbose=False)
    seconds = time.perf_counter() - started
    fields = {
        "rescores": {"variant": variant.rescores, "checkpoint": str(checkpoint)},
        "resumed_from": None,
        "timings": {"validate_seconds": seconds},
    }
    fields.update(experiment.after_evaluation(trainer, module, datamodule, recipe))
    fields["data_folder"] = data_folder(datamodule)
    record = _record(experiment, variant, recipe, seed, run_dir, trainer, module, code, fields)
    if trainer.is_global_zero:
        write_json_atomic(results, record)
    return "finished", record
