"""The warning of a run whose recipe is sized for a GPU and trains on the CPU."""

import re
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


def test_a_cpu_run_warns_of_its_scale_then_of_its_time(recwarn):
    # 420 s for the first step (one-off costs, not counted), then 3 steps of 440 s each.
    callback = CPURunEstimate(RUN, timed_steps=3, clock=FakeClock([420.0, 860.0, 1300.0, 1740.0]))
    trainer = fake_trainer()
    callback.on_train_start(trainer, None)
    steps(callback, trainer, 4)
    steps(callback, trainer, 10)  # no clock left: a third message would raise StopIteration
    messages = [str(warning.message) for warning in recwarn]
    assert messages == [
        f"{RUN} is sized for a GPU and trains on the CPU: 2,700 training steps (60 epochs × 45 batches). "
        f"An estimate of its time follows after 4 steps. {CPU_SET_HINT}",
        f"{RUN} on the CPU: 440.0 s per training step over 3 steps, so about 13 d 18 h for the 2,696 steps left "
        f"(validation not included). {CPU_SET_HINT}",
    ]
    assert 'the "CPU set" in the README\'s "Results" section (CPU_SET=(--set output_stride=16' in messages[0]


def test_a_resumed_run_names_the_steps_done_and_a_max_steps_run_its_limit(recwarn):
    callback = CPURunEstimate(RUN, timed_steps=1, clock=FakeClock([10.0, 12.5]))
    trainer = fake_trainer(global_step=100, max_steps=500)
    callback.on_train_start(trainer, None)
    steps(callback, trainer, 2)
    first, second = (str(warning.message) for warning in recwarn)
    assert first.startswith(f"{RUN} is sized for a GPU and trains on the CPU: 500 training steps, 100 of them done")
    assert second.startswith(f"{RUN} on the CPU: 2.5 s per training step over 1 step, so about 17 min for the 398")


def test_a_gpu_run_is_left_alone(recwarn):
    callback = CPURunEstimate(RUN, clock=FakeClock([]))
    trainer = fake_trainer(device="cuda")
    callback.on_train_start(trainer, None)
    steps(callback, trainer, 10)
    assert not recwarn.list


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


def test_a_run_of_a_gpu_profile_on_the_cpu_warns_at_its_start(tmp_path, monkeypatch):
    experiment = get_experiment("quickstart")
    monkeypatch.setattr(type(experiment), "cpu_profiles", ())  # its smoke profile, as if sized for a GPU
    expected = (
        "quickstart / fcn (smoke profile) is sized for a GPU and trains on the CPU: 4 training steps (1 epoch × 4"
    )
    with pytest.warns(UserWarning, match=re.escape(expected)):
        run_variant(experiment, experiment.variant("fcn"), "smoke", tmp_path, wandb="disabled")
