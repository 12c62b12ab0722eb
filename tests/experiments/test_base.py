"""Variant settings and rescoring rows, and how a recipe is put together: profile, then row, then --set."""

import pytest

from experiments.base import Variant, experiment_names, get_experiment


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
