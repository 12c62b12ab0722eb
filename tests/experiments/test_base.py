"""Variant settings and rescoring rows, and how a recipe is put together: profile, then row, then --set."""

import re

import pytest

from experiments.base import Variant, check_recipe_value, experiment_names, get_experiment


def test_row_settings_apply_between_the_profile_and_the_overrides():
    experiment = get_experiment("danet.strategies")
    no_augmentation = experiment.variant("DANet-R101")
    assert no_augmentation.settings == {"scale_range": (1.0, 1.0)}
    assert experiment.recipe("paper")["scale_range"] == (0.75, 2.0)
    assert experiment.recipe("paper", variant=no_augmentation)["scale_range"] == (1.0, 1.0)
    assert experiment.recipe("paper", variant=experiment.variant("DANet-R101+DA"))["scale_range"] == (0.75, 2.0)
    overridden = experiment.recipe("paper", {"scale_range": (0.5, 1.5)}, no_augmentation)
    assert overridden["scale_range"] == (0.5, 1.5), "--set has the last word"
    # The synthetic smoke data has no random scaling: the row's setting does not apply there.
    assert "scale_range" not in experiment.recipe("smoke", variant=no_augmentation)


def test_configure_leaves_the_recipe_it_is_given_alone():
    row = Variant("row", settings={"lr": 0.1, "absent": 1})
    recipe = {"lr": 0.01, "batch_size": 8}
    assert row.configure(recipe) == {"lr": 0.1, "batch_size": 8}
    assert recipe == {"lr": 0.01, "batch_size": 8}


def test_a_rescoring_row_cannot_change_settings_or_rescore_itself():
    with pytest.raises(ValueError, match=r"'ms' rescores the trained network of 'mg'.*\['lr'\]"):
        Variant("ms", rescores="mg", settings={"lr": 0.1})
    with pytest.raises(ValueError, match="cannot rescore itself"):
        Variant("ms", rescores="ms")


@pytest.mark.parametrize("name", experiment_names())
def test_rows_change_known_settings_and_rescore_earlier_training_rows(name):
    experiment = get_experiment(name)
    keys = set().union(*(recipe.keys() for recipe in experiment.recipes.values()))
    seen: dict[str, Variant] = {}
    for variant in experiment.variants():
        assert set(variant.settings) <= keys, f"{variant.name}: settings no profile of {name} has"
        if variant.rescores is not None:
            assert variant.rescores in seen, f"{variant.name} rescores {variant.rescores!r}, not a row before it"
            assert seen[variant.rescores].rescores is None, "the rescored row must train"
        seen[variant.name] = variant


@pytest.mark.parametrize(
    ("name", "profile", "key", "value", "expected"),
    [
        ("baselines.camvid", "small", "max_epochs", "abc", "an integer like 60"),
        ("baselines.camvid", "small", "lr", "abc", "a float like 0.01"),
        (
            "baselines.camvid",
            "small",
            "crop_size",
            (1, 2, 3),
            "a positive side or a pair (h, w) of them, like 768 or (360, 480)",
        ),
        ("baselines.camvid", "small", "lr", True, "a float like 0.01"),
        ("baselines.camvid", "small", "max_epochs", 2.5, "an integer like 60"),
        ("baselines.camvid", "small", "compile", 1, "True or False"),
        ("baselines.camvid", "small", "channels_last", "yes", "True, False or 'auto'"),
        ("baselines.camvid", "small", "pretrained", "imagenet", "True, False or 'pypi'"),
        (
            "baselines.camvid",
            "small",
            "eval_short_side",
            0,
            "None (full resolution) or a positive shorter side, like 240",
        ),
        (
            "baselines.camvid",
            "small",
            "num_workers",
            -1,
            "None (the CPUs available, at most 8) or an integer >= 0, like 4",
        ),
        ("baselines.camvid", "small", "backbone", 18, "a timm model name like 'resnet50' or None"),
        (
            "danet.strategies",
            "paper",
            "scale_range",
            (2.0, 0.5),
            "a pair (low, high) of positive scales with low <= high",
        ),
        ("danet.strategies", "paper", "ms_scales", (), "a tuple of positive scales, any length, like (0.5, 1.0, 1.5)"),
        (
            "danet.strategies",
            "paper",
            "multi_grid",
            (4, 8.5),
            "a tuple of positive dilations, any length, like (4, 8, 16)",
        ),
        ("danet.strategies", "paper", "pam_mode", "flash", "'fused' or 'fused_heads' or 'naive'"),
        ("danet.strategies", "paper", "eval_window", (768,), "None (no window) or a positive side or (h, w), like 768"),
        ("attention_blocks.imagenet", "smoke", "layers", (1, 1, 1), "None or 4 blocks per stage, like (1, 1, 1, 1)"),
        ("quickstart", "small", "deterministic", "yes", "True, False or 'warn'"),
    ],
)
def test_a_bad_override_names_the_key_the_value_and_what_was_expected(name, profile, key, value, expected):
    with pytest.raises(ValueError, match=re.escape(f"--set {key}={value!r}: expected {expected}")):
        get_experiment(name).recipe(profile, {key: value})


def test_a_bad_precision_lists_what_lightning_accepts():
    with pytest.raises(
        ValueError, match=r"--set precision='fp32': expected 'auto' or a Lightning precision: .*'bf16-mixed'"
    ):
        get_experiment("baselines.camvid").recipe("small", {"precision": "fp32"})


@pytest.mark.parametrize(
    ("name", "profile", "key", "value"),
    [
        ("baselines.camvid", "small", "lr", 1),  # an int where a float is expected
        ("baselines.camvid", "small", "crop_size", 240),  # a side where the recipe has (h, w)
        ("baselines.camvid", "small", "crop_size", [240, 320]),  # a recipe read back from JSON
        ("danet.strategies", "paper", "crop_size", (512, 1024)),  # (h, w) where the recipe has a side
        ("baselines.camvid", "small", "channels_last", False),
        ("baselines.camvid", "small", "precision", "32-true"),
        ("baselines.camvid", "small", "precision", 32),
        ("baselines.camvid", "small", "pretrained", False),
        ("baselines.camvid", "small", "eval_short_side", 240),  # None in the recipe
        ("baselines.camvid", "small", "num_workers", 0),
        ("baselines.camvid", "small", "root", "elsewhere"),
        ("danet.strategies", "paper", "backbone", "resnet18"),  # None in the recipe
        ("danet.strategies", "paper", "ms_scales", (1.0,)),  # any length
        ("danet.strategies", "paper", "ms_scales", (0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0, 2.2, 2.5)),
        ("danet.strategies", "paper", "multi_grid", (2, 4)),
        ("danet.strategies", "paper", "eval_window", None),  # 768 in the recipe
        ("danet.strategies", "paper", "scale_range", (1, 1)),
        ("attention_blocks.imagenet", "smoke", "layers", None),
        ("quickstart", "smoke", "deterministic", True),
        ("quickstart", "smoke", "deterministic", "warn"),
    ],
)
def test_an_override_of_another_accepted_kind_is_taken(name, profile, key, value):
    assert get_experiment(name).recipe(profile, {key: value})[key] == value


@pytest.mark.parametrize("name", experiment_names())
def test_every_recipe_passes_its_own_checks_and_knows_deterministic(name):
    experiment = get_experiment(name)
    for profile, recipe in experiment.recipes.items():
        # An optional key: taken by --set, and absent (so not in the run id's hash) until it is set.
        assert "deterministic" not in experiment.recipe(profile)
        assert experiment.recipe(profile, {"deterministic": True})["deterministic"] is True
        for variant in experiment.variants():
            for key, value in variant.configure(recipe).items():
                check_recipe_value(key, value, value)
