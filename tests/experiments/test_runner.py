import csv
import json
import os
import re
import socket
import threading
import warnings
from pathlib import Path

import lightning as L
import pytest
import timm
import torch
from lightning.pytorch.callbacks import Callback
from torch import nn

from experiments.__main__ import main
from experiments.base import experiment_names, get_experiment
from experiments.builders import backbone_kwargs
from experiments.results import CorruptRecordError, load_records, read_record
from experiments.run_folder import CorruptCheckpointError, RunFolderBusyError, hold_run_folder
from experiments.runner import compile_network, run_id, run_variant, trainer_strategy
from lightning_modules.evaluation import evaluate_segmentation


class Crash(Callback):
    """Stands in for a killed process: dies after the checkpoint of an epoch is written."""

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.current_epoch == self.epoch:
            raise KeyboardInterrupt


def quickstart_run(runs_dir, callbacks=(), wandb="disabled", **kwargs):
    experiment = get_experiment("quickstart")
    overrides = {"max_epochs": 3}
    return run_variant(
        experiment,
        experiment.variant("fcn"),
        "smoke",
        runs_dir,
        overrides,
        seed=3,
        wandb=wandb,
        callbacks=callbacks,
        **kwargs,
    )


QUICKSTART_ARGV = ["run", "quickstart", "--profile", "smoke", "--set", "max_epochs=3", "--seed", "3"]
QUICKSTART_ARGV += ["--wandb", "disabled"]


def quickstart_dir(runs_dir: Path) -> Path:
    """The run folder of :func:`quickstart_run`."""
    experiment = get_experiment("quickstart")
    recipe = experiment.recipe("smoke", {"max_epochs": 3}, experiment.variant("fcn"))
    return runs_dir / "quickstart" / "fcn" / run_id("smoke", recipe, 3)


class EveryStepLogging(Callback):
    """Logs every training step: a smoke epoch's 4 steps are fewer than Lightning's default interval, 50."""

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        trainer.log_every_n_steps = 1


class CrashMidEpoch(Callback):
    """Stands in for a process stopped in the middle of an epoch, after the rows of its first steps were written."""

    def __init__(self, epoch: int, batch: int) -> None:
        self.epoch, self.batch = epoch, batch

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch, batch_idx: int) -> None:
        if trainer.current_epoch == self.epoch and batch_idx == self.batch:
            raise KeyboardInterrupt


def read_csv(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        return list(reader.fieldnames), list(reader)


def validation_rows(rows: list[dict[str, str]]) -> list[dict[str, str]]:
    """The rows of validation scores, one per validation pass (training and learning-rate rows left out)."""
    return [row for row in rows if row["val/mIoU"]]


def row_kind(row: dict[str, str]) -> tuple[str, str, bool, bool]:
    """(epoch, step, a training row?, a learning-rate row?): each appears once in a run's log."""
    return row["epoch"], row["step"], row["train/loss"] != "", row.get("lr-SGD/head", "") != ""


def test_interrupted_run_resumes_and_ends_like_an_uninterrupted_one(tmp_path, capsys):
    _, reference = quickstart_run(tmp_path / "reference")
    interrupted = tmp_path / "interrupted"
    with pytest.raises((KeyboardInterrupt, SystemExit)):
        quickstart_run(interrupted, callbacks=[Crash(epoch=2)])
    (run_dir,) = interrupted.glob("quickstart/fcn/*")
    last = run_dir / "checkpoints" / "last.ckpt"
    note = f"interrupted: the run keeps its last checkpoint, {last}; the same command resumes it.\n"
    assert capsys.readouterr().err.endswith(note)
    assert (run_dir / "checkpoints" / "last.ckpt").is_file() and not (run_dir / "metrics.json").exists()
    interrupted_checkpoint = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=False)
    assert interrupted_checkpoint["epoch"] == 1
    status, resumed = quickstart_run(interrupted)
    assert status == "finished" and resumed["resumed_from"].endswith("last.ckpt")
    assert resumed["timings"]["steps"] == reference["timings"]["steps"]
    # The fit time counts the interrupted attempt up to its checkpoint as well as the resumed one.
    assert resumed["timings"]["fit_seconds"] > interrupted_checkpoint["fit_seconds"] > 0
    assert resumed["metrics"] == reference["metrics"]
    assert resumed["per_class"] == reference["per_class"]


class DeterministicAtStart(Callback):
    def __init__(self) -> None:
        self.seen: list[bool] = []

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.seen.append(torch.are_deterministic_algorithms_enabled())


def test_set_deterministic_reaches_the_trainer(tmp_path):
    experiment = get_experiment("quickstart")
    record = DeterministicAtStart()
    try:
        run_variant(
            experiment,
            experiment.variant("fcn"),
            "smoke",
            tmp_path,
            {"deterministic": True},
            wandb="disabled",
            callbacks=[record],
        )
    finally:
        torch.use_deterministic_algorithms(False)
    assert record.seen == [True]


def test_a_missing_dataset_is_reported_before_pretrained_weights_are_requested(tmp_path, monkeypatch):
    requested = []

    def create_model(name, **kwargs):
        requested.append((name, kwargs.get("pretrained")))
        raise RuntimeError("the network was built before the data was checked")

    monkeypatch.setattr(timm, "create_model", create_model)
    experiment = get_experiment("danet.ablation")
    root = tmp_path / "cityscapes"
    overrides = {"root": str(root)}
    with pytest.raises(
        FileNotFoundError, match=rf"^the cityscapes folder {re.escape(str(root))} \(the recipe's root, --set root"
    ):
        run_variant(experiment, experiment.variant("FCN-R50"), "paper", tmp_path / "runs", overrides, wandb="disabled")
    assert requested == []
    assert not (tmp_path / "runs").exists()  # no run folder for a run that cannot start
    assert experiment.recipe("paper", overrides, experiment.variant("FCN-R50"))["pretrained"] is True


def test_a_resumed_run_logs_every_step_once_like_an_uninterrupted_one(tmp_path):
    quickstart_run(tmp_path / "reference", callbacks=[EveryStepLogging()])
    reference_header, reference_rows = read_csv(quickstart_dir(tmp_path / "reference") / "logs" / "metrics.csv")
    interrupted = tmp_path / "interrupted"
    with pytest.raises((KeyboardInterrupt, SystemExit)):
        quickstart_run(interrupted, callbacks=[EveryStepLogging(), CrashMidEpoch(epoch=2, batch=2)])
    run_dir = quickstart_dir(interrupted)
    assert torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=False)["global_step"] == 8
    log = run_dir / "logs" / "metrics.csv"
    _, rows = read_csv(log)
    # Steps 8 and 9 were logged after the checkpoint of epoch 1: the resumed run trains them again.
    assert [row["step"] for row in rows if row["epoch"] == "2"] == ["8", "9"]
    stale = sum(int(row["step"]) >= 8 for row in rows) + 1  # and the cut row below
    with log.open("a") as handle:
        handle.write("2,10,1.5")  # the row of step 10, cut by a kill while it was written
    expected = rf"replaced {stale} row\(s\) .*\(those from step 8 on, or cut short by a kill\)"
    with pytest.warns(UserWarning, match=expected):
        status, _ = quickstart_run(interrupted, callbacks=[EveryStepLogging()])
    assert status == "finished"
    header, rows = read_csv(log)
    assert header == reference_header
    steps = [row_kind(row) for row in rows]
    assert steps == [row_kind(row) for row in reference_rows]
    # 12 training steps, their 12 learning rates and 3 validations, each once.
    assert len(set(steps)) == len(steps) == 12 + 12 + 3
    assert rows == reference_rows  # the resumed run logs the numbers of the uninterrupted one


def test_finished_variant_is_skipped(tmp_path):
    status, first = quickstart_run(tmp_path)
    assert status == "finished"
    status, second = quickstart_run(tmp_path)
    assert status == "skipped" and second == first


def test_corrupt_metrics_file_is_reported_and_never_used(tmp_path, capsys):
    _, record = quickstart_run(tmp_path)
    path = next(tmp_path.glob("quickstart/fcn/*/metrics.json"))
    path.write_text(json.dumps(record)[:100])
    with pytest.raises(CorruptRecordError, match=r"metrics\.json is not valid JSON"):
        read_record(path)
    records, problems = load_records(tmp_path, "quickstart")
    assert records == [] and len(problems) == 1
    assert main(["table", "quickstart", "--runs-dir", str(tmp_path)]) == 0
    captured = capsys.readouterr()
    assert "is not valid JSON" in captured.err and "Left out of the table" in captured.err
    assert "| fcn | — | not run |" in captured.out
    path.write_text(json.dumps({"experiment": "quickstart"}))
    with pytest.raises(CorruptRecordError, match="lacks the fields"):
        read_record(path)
    with pytest.warns(UserWarning, match="Running the variant again"):
        status, _ = quickstart_run(tmp_path)
    assert status == "finished"


def test_a_rerun_of_a_finished_checkpoint_stores_the_scores_of_the_whole_split(tmp_path):
    # 32 validation images in batches of 8: the sanity check sees 2 of the 4 batches.
    experiment, variant = get_experiment("quickstart"), get_experiment("quickstart").variant("fcn")
    overrides = {"max_epochs": 2, "num_val": 32}
    _, original = run_variant(experiment, variant, "smoke", tmp_path, overrides, seed=3, wandb="disabled")
    assert "validate_seconds" not in original["timings"]  # the last epoch's validation is the record's
    path = next(tmp_path.glob("quickstart/fcn/*/metrics.json"))
    path.write_text("{")
    with pytest.warns(UserWarning, match="Running the variant again"):
        status, rerun = run_variant(experiment, variant, "smoke", tmp_path, overrides, seed=3, wandb="disabled")
    assert status == "finished" and rerun["resumed_from"].endswith("last.ckpt")
    assert rerun["metrics"] == original["metrics"]
    assert rerun["per_class"] == original["per_class"]
    assert rerun["timings"]["steps"] == original["timings"]["steps"] and "validate_seconds" in rerun["timings"]


def test_a_run_that_trains_nothing_stores_the_scores_of_the_whole_split(tmp_path):
    experiment = get_experiment("quickstart")
    variant = experiment.variant("fcn")
    overrides = {"max_epochs": 0, "num_val": 32}
    _, record = run_variant(experiment, variant, "smoke", tmp_path, overrides, seed=3, wandb="disabled")
    assert record["timings"]["steps"] == 0
    # The same seed builds the same untrained network; score it over all 32 images.
    recipe = experiment.recipe("smoke", overrides, variant)
    L.seed_everything(3, workers=True)
    datamodule = experiment.build_datamodule(recipe)
    module = experiment.build_module(variant, recipe, datamodule)
    datamodule.setup("validate")
    expected = evaluate_segmentation(
        module.network, datamodule.val_dataloader(), datamodule.num_classes, progress=False
    )
    assert record["metrics"]["val/mIoU"] == pytest.approx(expected["mIoU"], abs=1e-6)
    assert record["metrics"]["val/pixel_acc"] == pytest.approx(expected["pixel_acc"], abs=1e-6)


def test_table_shows_measured_beside_paper_with_profile(tmp_path, capsys):
    quickstart_run(tmp_path)
    capsys.readouterr()
    assert main(["table", "quickstart", "--runs-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    record = next(iter(load_records(tmp_path, "quickstart")[0]))
    assert f"| fcn | — | {100 * record['metrics']['val/mIoU']:.1f} |" in out
    assert "| smoke | max_epochs=3 | cpu |" in out  # profile, then what the run changed in its recipe
    png = tmp_path / "quickstart" / "table.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_wandb_offline_writes_a_syncable_run_and_disabled_writes_nothing(tmp_path):
    quickstart_run(tmp_path / "offline", wandb="offline")
    (run_dir,) = (tmp_path / "offline").glob("quickstart/fcn/*")
    (offline_run,) = (run_dir / "wandb").glob("offline-run-*")
    wandb_id = (run_dir / "wandb_id").read_text()
    assert (offline_run / f"run-{wandb_id}.wandb").stat().st_size > 0
    quickstart_run(tmp_path / "disabled", wandb="disabled")
    (run_dir,) = (tmp_path / "disabled").glob("quickstart/fcn/*")
    assert not (run_dir / "wandb").exists() and not (run_dir / "wandb_id").exists()


def test_run_id_depends_on_settings():
    recipe = {"lr": 0.01, "max_epochs": 2}
    assert run_id("smoke", recipe, 0) == run_id("smoke", dict(reversed(recipe.items())), 0)
    assert run_id("smoke", recipe, 0) != run_id("smoke", {**recipe, "lr": 0.02}, 0)
    assert run_id("smoke", recipe, 0) != run_id("smoke", recipe, 1)


def test_ddp_settings():
    assert trainer_strategy("auto", 1) == {"devices": "auto", "num_nodes": 1}
    assert trainer_strategy(2, 1)["strategy"] == "ddp"
    assert trainer_strategy(1, 2)["use_distributed_sampler"] is False
    with pytest.raises(ValueError, match="--num-nodes must be >= 1"):
        trainer_strategy(1, 0)


def test_precision_auto_is_bf16_mixed_on_a_bf16_gpu_and_32_true_elsewhere(monkeypatch):
    experiment = get_experiment("danet.ablation")
    recipe = experiment.recipe("smoke")
    assert recipe["precision"] == "auto" and recipe["cudnn_benchmark"] is True
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert experiment.trainer_kwargs(recipe)["precision"] == "32-true"
    assert experiment.trainer_kwargs(recipe)["benchmark"] is True
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *args, **kwargs: True)
    assert experiment.trainer_kwargs(recipe)["precision"] == "bf16-mixed"
    assert experiment.trainer_kwargs({**recipe, "accelerator": "cpu"})["precision"] == "32-true"
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *args, **kwargs: False)
    assert experiment.trainer_kwargs(recipe)["precision"] == "32-true"
    switched_off = experiment.recipe("smoke", {"precision": "32-true", "cudnn_benchmark": False})
    assert {k: experiment.trainer_kwargs(switched_off)[k] for k in ("precision", "benchmark")} == {
        "precision": "32-true",
        "benchmark": False,
    }


@pytest.mark.parametrize(("name", "variant"), [("danet.ablation", "DANet-R50"), ("sanet.fcn_se", "SANet-R50")])
def test_bf16_mixed_precision_a_gpu_run_takes_trains_and_validates(name, variant, tmp_path):
    # What precision="auto" picks on a GPU, run here on the CPU: autocast through the attention blocks, the
    # papers' losses and the metrics.
    experiment = get_experiment(name)
    overrides = {"precision": "bf16-mixed"}
    _, record = run_variant(experiment, experiment.variant(variant), "smoke", tmp_path, overrides, wandb="disabled")
    assert record["precision"] == "bf16-mixed"
    assert record["metrics"] and all(0.0 <= value <= 1.0 for value in record["metrics"].values())


def test_channels_last_auto_is_on_for_a_cuda_run_only(monkeypatch):
    recipe = get_experiment("danet.ablation").recipe("small")
    assert recipe["channels_last"] == "auto"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert backbone_kwargs(recipe)["channels_last"] is False
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert backbone_kwargs(recipe)["channels_last"] is True
    assert backbone_kwargs({**recipe, "accelerator": "cpu"})["channels_last"] is False
    assert backbone_kwargs({**recipe, "channels_last": False})["channels_last"] is False


@pytest.mark.parametrize("name", ["baselines.camvid", "danet.ablation", "sanet.fcn_se"])
def test_channels_last_switch_reaches_every_network(name):
    experiment = get_experiment(name)
    for channels_last in (True, False):
        recipe = experiment.recipe("smoke", {"channels_last": channels_last})
        datamodule = experiment.build_datamodule(recipe)
        for variant in experiment.variants():
            network = experiment.build_module(variant, recipe, datamodule).network
            # 1×1 kernels are contiguous in both formats; a k×k kernel with several input channels tells them apart.
            convs = [m for m in network.modules() if isinstance(m, nn.Conv2d)]
            kernels = [m.weight for m in convs if m.kernel_size != (1, 1) and m.weight.shape[1] > 1]
            assert kernels, variant.name
            formats = {w.is_contiguous(memory_format=torch.channels_last) for w in kernels}
            assert formats == {channels_last}, f"{variant.name}: channels_last={channels_last}"


def test_compile_switch_compiles_the_network_in_place(tmp_path, monkeypatch):
    experiment = get_experiment("baselines.camvid")
    recipe = experiment.recipe("smoke")
    module = experiment.build_module(experiment.variant("fcn"), recipe, experiment.build_datamodule(recipe))
    keys = set(module.state_dict())
    compile_network(module)
    assert module.network._compiled_call_impl is not None and set(module.state_dict()) == keys
    with pytest.raises(ValueError, match="needs a LightningModule with a `network` attribute"):
        compile_network(L.LightningModule())

    compiled = []
    monkeypatch.setattr(nn.Module, "compile", lambda self, *args, **kwargs: compiled.append(type(self).__name__))
    for flag in (False, True):
        _, record = run_variant(
            experiment, experiment.variant("fcn"), "smoke", tmp_path, {"compile": flag}, wandb="disabled"
        )
        assert record["precision"] == ("bf16-mixed" if torch.cuda.is_available() else "32-true")
    assert compiled == ["FCN"], "compile=True compiles the network of the run, compile=False nothing"


@pytest.mark.parametrize("name", experiment_names())
def test_every_experiment_runs_its_smoke_profile(name, tmp_path):
    experiment = get_experiment(name)
    for variant in experiment.variants():
        status, record = run_variant(experiment, variant, "smoke", tmp_path, wandb="disabled")
        assert "val/mIoU" in record["metrics"] or "val/top1" in record["metrics"]
        assert status == "finished"
        assert record["metrics"] and all(0.0 <= value <= 1.0 for value in record["metrics"].values())


class LastValidation(Callback):
    """Keeps the weights and the test protocol of the module at the end of the last validation."""

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.state = {key: value.detach().clone() for key, value in pl_module.state_dict().items()}
        self.protocol = (pl_module.eval_mode, dict(pl_module.eval_kwargs))
        self.trained = pl_module.trainer.state.fn == "fit"


def test_a_rescoring_row_scores_the_trained_network_of_its_row_without_training(tmp_path, capsys):
    experiment = get_experiment("danet.strategies")
    ms, mg = experiment.variant("DANet-R101+DA+MG+MS"), experiment.variant("DANet-R101+DA+MG")
    assert ms.rescores == mg.name
    last = LastValidation()
    status, record = run_variant(experiment, ms, "smoke", tmp_path, wandb="disabled", callbacks=[last])
    assert status == "finished"
    (trained_dir,) = tmp_path.glob(f"danet.strategies/{mg.name}/*")
    assert (trained_dir / "metrics.json").is_file(), "the rescored row trains first when it has not run"
    checkpoint = trained_dir / "checkpoints" / "last.ckpt"
    assert record["rescores"] == {"variant": mg.name, "checkpoint": str(checkpoint)}
    assert record["run_id"] == trained_dir.name and "fit_seconds" not in record["timings"]
    assert not (tmp_path / "danet.strategies" / ms.name / record["run_id"] / "checkpoints").exists()

    # The last validation is the rescoring one: no training, the +MG weights, the +MS protocol.
    recipe = experiment.recipe("smoke")
    trained = torch.load(checkpoint, weights_only=False)["state_dict"]
    untrained = experiment.build_module(ms, recipe, experiment.build_datamodule(recipe)).state_dict()
    assert not last.trained
    assert last.state.keys() == trained.keys()
    assert all(torch.equal(last.state[key], trained[key]) for key in trained)
    assert any(not torch.equal(untrained[key], trained[key]) for key in trained)
    mode, kwargs = last.protocol
    assert mode == "multiscale" and kwargs["scales"] == recipe["ms_scales"] and kwargs["flip"]

    datamodule = experiment.build_datamodule(recipe)
    module = experiment.build_module(ms, recipe, datamodule)
    module.load_state_dict(trained)
    datamodule.setup("validate")
    expected = evaluate_segmentation(
        module.network,
        datamodule.val_dataloader(),
        datamodule.num_classes,
        predict_kwargs={"mode": mode, **kwargs},
        progress=False,
    )
    assert record["metrics"]["val/mIoU"] == pytest.approx(expected["mIoU"], abs=1e-6)
    assert record["metrics"]["val/pixel_acc"] == pytest.approx(expected["pixel_acc"], abs=1e-6)

    stored = json.loads(json.dumps(record))  # the record as read back: tuples are lists
    assert run_variant(experiment, ms, "smoke", tmp_path, wandb="disabled") == ("skipped", stored)
    capsys.readouterr()
    assert main(["table", "danet.strategies", "--runs-dir", str(tmp_path)]) == 0
    assert f"| none: scores {mg.name} |" in capsys.readouterr().out


def test_rescoring_again_keeps_the_logs_of_the_trained_row_and_its_own(tmp_path):
    experiment = get_experiment("danet.strategies")
    ms, mg = experiment.variant("DANet-R101+DA+MG+MS"), experiment.variant("DANet-R101+DA+MG")
    run_variant(experiment, ms, "smoke", tmp_path, wandb="disabled")
    (trained_dir,) = tmp_path.glob(f"danet.strategies/{mg.name}/*")
    (rescored_dir,) = tmp_path.glob(f"danet.strategies/{ms.name}/*")
    trained_rows = validation_rows(read_csv(trained_dir / "logs" / "metrics.csv")[1])
    _, rescored_rows = read_csv(rescored_dir / "logs" / "metrics.csv")
    assert [row["epoch"] for row in trained_rows] == ["0"] and len(rescored_rows) == 1
    # Both rows killed before their records were written: the trained row validates its final checkpoint
    # again, the rescoring row rescores it again.
    (trained_dir / "metrics.json").unlink()
    (rescored_dir / "metrics.json").unlink()
    status, _ = run_variant(experiment, ms, "smoke", tmp_path, wandb="disabled")
    assert status == "finished" and (trained_dir / "metrics.json").is_file()
    trained_after = validation_rows(read_csv(trained_dir / "logs" / "metrics.csv")[1])
    assert trained_after[:1] == trained_rows and len(trained_after) == 2  # the epoch kept, the new validation added
    assert trained_after[1]["val/mIoU"] == trained_rows[0]["val/mIoU"]
    _, rescored_after = read_csv(rescored_dir / "logs" / "metrics.csv")
    assert rescored_after == rescored_rows  # its validation, once


def test_an_unreadable_checkpoint_is_named_and_restart_moves_it_aside(tmp_path, capsys):
    with pytest.raises((KeyboardInterrupt, SystemExit)):
        quickstart_run(tmp_path, callbacks=[Crash(epoch=2)])
    run_dir = quickstart_dir(tmp_path)
    last = run_dir / "checkpoints" / "last.ckpt"
    truncated = last.read_bytes()[:10_000]  # a copy cut short, a full disk
    last.write_bytes(truncated)
    message = rf"{re.escape(str(last))} is not a readable checkpoint: truncated zip .*--restart"
    with pytest.raises(CorruptCheckpointError, match=message):
        quickstart_run(tmp_path)
    capsys.readouterr()
    assert main([*QUICKSTART_ARGV, "--runs-dir", str(tmp_path)]) == 2
    assert re.search(message, capsys.readouterr().err)

    assert main([*QUICKSTART_ARGV, "--runs-dir", str(tmp_path), "--restart"]) == 0
    record = json.loads((run_dir / "metrics.json").read_text())
    assert record["resumed_from"] is None and record["timings"]["steps"] == 12
    (aside,) = (run_dir / "checkpoints").glob("last.ckpt.corrupt-*")
    assert aside.read_bytes() == truncated
    (old_log,) = (run_dir / "logs").glob("metrics.csv.restart-*")
    assert [row["epoch"] for row in validation_rows(read_csv(old_log)[1])] == ["0", "1"]
    assert [row["epoch"] for row in validation_rows(read_csv(run_dir / "logs" / "metrics.csv")[1])] == ["0", "1", "2"]


def test_a_restarted_run_moves_a_readable_checkpoint_aside_and_finished_runs_stay_skipped(tmp_path):
    with pytest.raises((KeyboardInterrupt, SystemExit)):
        quickstart_run(tmp_path, callbacks=[Crash(epoch=1)])
    run_dir = quickstart_dir(tmp_path)
    status, record = quickstart_run(tmp_path, restart=True)
    assert status == "finished" and record["resumed_from"] is None
    assert len(list((run_dir / "checkpoints").glob("last.ckpt.restart-*"))) == 1
    assert quickstart_run(tmp_path, restart=True)[0] == "skipped"


def test_a_second_command_in_the_same_run_folder_names_the_first_or_waits_for_it(tmp_path, capsys):
    run_dir = quickstart_dir(tmp_path)
    held, release = threading.Event(), threading.Event()

    def first_command() -> None:
        with hold_run_folder(run_dir):
            held.set()
            release.wait(timeout=30)

    thread = threading.Thread(target=first_command)
    thread.start()
    assert held.wait(timeout=10)
    busy = rf"{re.escape(str(run_dir))} is in use by pid {os.getpid()} on {re.escape(socket.gethostname())}, started "
    with pytest.raises(RunFolderBusyError, match=busy + r".*--wait"):
        quickstart_run(tmp_path)
    assert main([*QUICKSTART_ARGV, "--runs-dir", str(tmp_path)]) == 2
    assert re.search(busy, capsys.readouterr().err)
    assert not (run_dir / "checkpoints").exists()  # it trained nothing

    threading.Timer(1.0, release.set).start()
    assert main([*QUICKSTART_ARGV, "--runs-dir", str(tmp_path), "--wait"]) == 0
    thread.join()
    record = json.loads((run_dir / "metrics.json").read_text())
    assert record["resumed_from"] is None and record["timings"]["steps"] == 12
    assert (run_dir / "run.lock").read_text() == ""


def test_partial_files_of_a_killed_run_are_removed_when_it_runs_again(tmp_path):
    with pytest.raises((KeyboardInterrupt, SystemExit)):
        quickstart_run(tmp_path, callbacks=[Crash(epoch=2)])
    run_dir = quickstart_dir(tmp_path)
    partial = [
        run_dir / "checkpoints" / ".last.ckpt.k2x_9q0a.tmp",  # killed while the checkpoint of epoch 2 was written
        run_dir / "checkpoints" / ".best.ckpt.b3st_0ne.tmp",
        run_dir / ".metrics.json.0abcdefg.tmp",
        run_dir / "logs" / ".metrics.csv.zz_zz_zz.tmp",
    ]
    kept = [
        run_dir / "checkpoints" / ".last.ckpt.notes.tmp",  # not a name of ours
        run_dir / "checkpoints" / "last.ckpt.corrupt-20250101-000000",
        tmp_path / "quickstart" / "other-run" / "checkpoints" / ".last.ckpt.k2x_9q0a.tmp",
    ]
    for path in partial + kept:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch()
    status, record = quickstart_run(tmp_path)
    assert status == "finished" and record["resumed_from"].endswith("last.ckpt")
    assert [path for path in partial if path.exists()] == []
    assert all(path.exists() for path in kept)


def test_a_rescoring_row_names_the_missing_checkpoint(tmp_path):
    experiment = get_experiment("danet.strategies")
    mg = experiment.variant("DANet-R101+DA+MG")
    run_variant(experiment, mg, "smoke", tmp_path, wandb="disabled")
    (checkpoint,) = tmp_path.glob(f"danet.strategies/{mg.name}/*/checkpoints/last.ckpt")
    checkpoint.write_bytes(checkpoint.read_bytes()[:10_000])
    with pytest.raises(CorruptCheckpointError, match=r"last\.ckpt is not readable: truncated zip .*Delete .*--restart"):
        run_variant(experiment, experiment.variant("DANet-R101+DA+MG+MS"), "smoke", tmp_path, wandb="disabled")
    checkpoint.unlink()
    with pytest.raises(FileNotFoundError, match=r"no checkpoint .*last\.ckpt\. Delete .*metrics\.json"):
        run_variant(experiment, experiment.variant("DANet-R101+DA+MG+MS"), "smoke", tmp_path, wandb="disabled")


def test_a_run_keeps_its_best_checkpoint_logs_learning_rates_and_every_epochs_training_rows(tmp_path):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _, record = quickstart_run(tmp_path)
    assert not [w for w in caught if "logging interval" in str(w.message)]
    run_dir = quickstart_dir(tmp_path)
    _, rows = read_csv(run_dir / "logs" / "metrics.csv")
    # 4 training batches an epoch, fewer than Lightning's default interval of 50: every epoch still logs one.
    assert sorted({row["epoch"] for row in rows if row["train/loss"]}) == ["0", "1", "2"]
    # The poly schedule lr · (1 - step / 12) ** 0.9 of each group, at the steps that were logged.
    lrs = [
        (int(row["step"]), float(row["lr-SGD/backbone"]), float(row["lr-SGD/head"]))
        for row in rows
        if row["lr-SGD/head"]
    ]
    assert [step for step, _, _ in lrs] == [3, 7, 11]
    for step, backbone, head in lrs:
        assert backbone == pytest.approx(0.01 * (1 - step / 12) ** 0.9, rel=1e-6)
        assert head == pytest.approx(10 * backbone, rel=1e-6)
    # best.ckpt holds the epoch with the highest val/mIoU, and the record says which and how high.
    scores = [float(row["val/mIoU"]) for row in rows if row["val/mIoU"]]
    assert record["best"]["metric"] == "val/mIoU"
    assert record["best"]["score"] == pytest.approx(max(scores), abs=1e-7)
    best = torch.load(run_dir / "checkpoints" / "best.ckpt", weights_only=False)
    assert best["epoch"] == scores.index(max(scores)) and best["run"]["variant"] == "fcn"
    assert record["best"]["checkpoint"] == str(run_dir / "checkpoints" / "best.ckpt")


def test_the_command_line_prints_what_a_user_needs_once(tmp_path):
    import subprocess
    import sys

    command = [sys.executable, "-m", "experiments", "run", "quickstart", "--profile", "smoke"]
    done = subprocess.run(
        [*command, "--runs-dir", str(tmp_path), "--wandb", "offline"], capture_output=True, text=True, check=True
    )
    output = done.stdout + done.stderr
    for noise in ("Seed set", "GPU available", "TPU available", "Tip:", "anonymous", "logging interval", "Loading `"):
        assert noise not in output, noise
    assert output.count("quickstart / fcn: smoke profile, seed 0, cpu, precision 32-true, into ") == 1


@pytest.mark.parametrize("name", experiment_names())
def test_wandb_tags_are_ones_wandb_accepts(name):
    from experiments.tracking import wandb_tags

    experiment = get_experiment(name)
    tags = wandb_tags(experiment, experiment.recipe(next(iter(experiment.recipes))))
    assert tags[1] == name and all(1 <= len(tag) <= 64 for tag in tags)


def test_wandb_starts_for_an_experiment_with_a_long_table_title(tmp_path):
    from experiments.tracking import make_wandb_logger

    experiment = get_experiment("danet.ablation")
    assert len(experiment.table) > 64  # W&B refused such a title as a tag, and the run went without W&B
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # "W&B could not start" would fail the test
        logger = make_wandb_logger(
            "offline", tmp_path, experiment, experiment.variant("DANet-R50"), experiment.recipe("smoke")
        )
    assert logger is not None and logger.experiment.config["table"] == experiment.table
    assert logger.experiment.name == f"DANet-R50 · {tmp_path.name}"  # the run folder names the seed
    logger.experiment.finish()


def test_each_run_of_one_process_gets_its_own_wandb_run(tmp_path):
    import wandb

    experiment = get_experiment("quickstart")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for seed in (0, 1):
            run_variant(experiment, experiment.variant("fcn"), "smoke", tmp_path, seed=seed, wandb="offline")
            assert wandb.run is None  # finished with its variant
    assert not [w for w in caught if "already in progress" in str(w.message)]
    ids = []
    for run_dir in sorted(tmp_path.glob("quickstart/fcn/*")):
        (offline,) = run_dir.glob("wandb/offline-run-*")  # each run folder has its own W&B run
        ids.append((run_dir / "wandb_id").read_text())
        assert offline.name.endswith(ids[-1])
    assert len(set(ids)) == 2


def test_a_runs_files_are_readable_by_the_other_users_of_a_shared_store(tmp_path):
    # tempfile.mkstemp, behind the atomic writes, creates files readable by their owner only (0600).
    umask = os.umask(0o022)
    try:
        quickstart_run(tmp_path)
    finally:
        os.umask(umask)
    run_dir = quickstart_dir(tmp_path)
    for path in ("metrics.json", "checkpoints/last.ckpt", "checkpoints/best.ckpt", "logs/metrics.csv"):
        assert (run_dir / path).stat().st_mode & 0o777 == 0o644, path


def test_fit_time_adds_the_time_its_checkpoint_recorded():
    from experiments.runner import FitTime

    clock = iter([10.0, 14.0, 15.5])
    fit_time = FitTime(clock=lambda: next(clock))
    fit_time.on_load_checkpoint(None, None, {"fit_seconds": 100.0})  # the earlier attempts: 100 s
    fit_time.on_fit_start(None, None)  # this attempt starts at 10 s
    checkpoint: dict = {}
    fit_time.on_save_checkpoint(None, None, checkpoint)  # at 14 s
    assert checkpoint["fit_seconds"] == 104.0
    assert fit_time.seconds() == 105.5
