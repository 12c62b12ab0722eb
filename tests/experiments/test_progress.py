"""The warning of a run whose recipe is sized for a GPU and trains on the CPU."""

import time
from types import SimpleNamespace

import pytest

from experiments.base import get_experiment
from experiments.progress import CPU_SET_HINT, CPURunEstimate, cpu_run_callbacks, format_duration
from experiments.runner import run_variant

RUN = "baselines.camvid / fcn (small profile)"


def fake_trainer(device="cpu", max_epochs=60, batches=45, global_step=0, max_steps=None):
    total = batches * max_epochs if max_steps is None else max_steps
    return SimpleNamespace(
        strategy=SimpleNamespace(root_device=SimpleNamespace(type=device)),
        max_epochs=max_epochs,
        num_training_batches=batches,
        estimated_stepping_batches=total,
        global_step=global_step,
        is_global_zero=True,
    )


class FakeClock:
    def __init__(self, times):
        self.times = iter(times)

    def __call__(self):
        return next(self.times)


def steps(callback, trainer, count):
    for _ in range(count):
        trainer.global_step += 1
        callback.on_train_batch_end(trainer, None, None, None, 0)


def test_a_long_cpu_run_prints_its_scale_and_time_once(capsys):
    # 420 s for the first step (one-off costs, not counted), then 3 steps of 440 s each.
    callback = CPURunEstimate(RUN, timed_steps=3, clock=FakeClock([420.0, 860.0, 1300.0, 1740.0]))
    trainer = fake_trainer()
    callback.on_train_start(trainer, None)
    assert capsys.readouterr().err == ""  # nothing before there is an estimate
    steps(callback, trainer, 4)
    steps(callback, trainer, 10)  # no clock left: a second note would raise StopIteration
    assert capsys.readouterr().err == (
        f"note: {RUN} is sized for a GPU and trains on the CPU: 2,700 training steps (60 epochs × 45 batches), "
        f"440.0 s per step, so about 13 d 18 h for the steps left (validation not included). {CPU_SET_HINT}\n"
    )
    assert 'the "CPU set" in the README\'s "Results" section (CPU_SET=(--set output_stride=16' in CPU_SET_HINT


def test_a_resumed_run_names_the_steps_done_and_a_max_steps_run_its_limit(capsys):
    callback = CPURunEstimate(RUN, timed_steps=1, clock=FakeClock([10.0, 12.5]))
    trainer = fake_trainer(global_step=100, max_steps=1000)
    callback.on_train_start(trainer, None)
    steps(callback, trainer, 2)
    assert capsys.readouterr().err.startswith(
        f"note: {RUN} is sized for a GPU and trains on the CPU: 1,000 training steps, 100 of them done before, "
        "2.5 s per step, so about 37 min for the steps left"
    )


def test_a_cpu_run_that_ends_soon_prints_nothing(capsys):
    # 2.5 s a step for the 398 steps left is 17 minutes: under the 30-minute threshold (the README's CPU set).
    callback = CPURunEstimate(RUN, timed_steps=1, clock=FakeClock([10.0, 12.5]))
    trainer = fake_trainer(global_step=100, max_steps=500)
    callback.on_train_start(trainer, None)
    steps(callback, trainer, 2)
    assert capsys.readouterr().err == ""


def test_a_gpu_run_is_left_alone(capsys):
    callback = CPURunEstimate(RUN, clock=FakeClock([]))
    trainer = fake_trainer(device="cuda")
    callback.on_train_start(trainer, None)
    steps(callback, trainer, 10)
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize(
    ("seconds", "text"), [(44.6, "45 s"), (840, "14 min"), (3 * 3600 + 12 * 60, "3 h 12 min"), (53 * 3600, "2 d 5 h")]
)
def test_format_duration(seconds, text):
    assert format_duration(seconds) == text


def test_only_profiles_sized_for_a_gpu_get_the_callback():
    camvid, quickstart = get_experiment("baselines.camvid"), get_experiment("quickstart")
    (callback,) = cpu_run_callbacks(camvid, camvid.variant("fcn"), camvid.recipe("small"))
    assert callback.run == RUN
    assert cpu_run_callbacks(camvid, camvid.variant("fcn"), camvid.recipe("smoke")) == []
    assert cpu_run_callbacks(quickstart, quickstart.variant("fcn"), quickstart.recipe("small")) == []


def test_a_long_run_of_a_gpu_profile_on_the_cpu_prints_its_note(tmp_path, monkeypatch, capsys):
    experiment = get_experiment("quickstart")
    monkeypatch.setattr(type(experiment), "cpu_profiles", ())  # its smoke profile, as if sized for a GPU
    monkeypatch.setattr(CPURunEstimate.__init__, "__defaults__", (1, 0.0, time.perf_counter))  # any run is long
    overrides = {"max_epochs": 2}
    run_variant(experiment, experiment.variant("fcn"), "smoke", tmp_path, overrides, wandb="disabled")
    expected = "note: quickstart / fcn (smoke profile) is sized for a GPU and trains on the CPU: 8 training steps (2"
    assert capsys.readouterr().err.count(expected) == 1
