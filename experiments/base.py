"""Experiment, Variant and the registry: a paper table as a Python class.

An :class:`Experiment` names a paper and one of its tables or figures, builds the DataModule and
the LightningModule of each :class:`Variant` (a row of the table: constructor arguments plus the
paper's published numbers), and holds one recipe per profile:

- ``smoke``: synthetic data and a tiny backbone, seconds on a CPU (what the tests run);
- ``small``: real CamVid or a reduced recipe, minutes;
- ``paper``: the paper's recipe, resolution and schedule.
"""

from __future__ import annotations

import difflib
import typing
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import lightning as L
import torch
from lightning.fabric.connector import _PRECISION_INPUT

from experiments.choices import PROFILES
from lightning_modules.blocks.dual_attention import POSITION_MODES


@dataclass(frozen=True)
class PaperNumber:
    """A published figure: ``metric`` (e.g. ``"mIoU"``), its value and where it is printed."""

    metric: str
    value: float
    source: str


@dataclass(frozen=True)
class Variant:
    """A row of a paper table: its name, constructor arguments and published numbers.

    ``settings`` are recipe values the row changes, e.g. no random scaling in DANet's Table 2 first
    row; a key that a profile's recipe lacks (the synthetic smoke data has no scaling) does not apply
    under that profile, and ``--set`` overrides still have the last word. ``rescores`` names another
    row whose trained network this row evaluates with its own test protocol instead of training
    again, e.g. Table 2's multi-scale row (see :func:`experiments.runner.run_variant`). ``starts_from``
    names another row whose final weights this row starts training from (a fine-tune, e.g. TNet's
    896 px stage after its 448 px one); that row trains first when it has not run.
    """

    name: str
    params: Mapping[str, Any] = field(default_factory=dict)
    paper: tuple[PaperNumber, ...] = ()
    settings: Mapping[str, Any] = field(default_factory=dict)
    rescores: str | None = None
    starts_from: str | None = None

    def __post_init__(self) -> None:
        if self.rescores == self.name:
            raise ValueError(f"variant {self.name!r} cannot rescore itself.")
        if self.starts_from == self.name:
            raise ValueError(f"variant {self.name!r} cannot start from its own weights.")
        if self.rescores is not None and self.starts_from is not None:
            raise ValueError(
                f"variant {self.name!r} trains nothing (it rescores {self.rescores!r}): it cannot start from weights."
            )
        if self.rescores is not None and self.settings:
            raise ValueError(
                f"variant {self.name!r} rescores the trained network of {self.rescores!r}, so it trains with that "
                f"row's recipe and cannot change settings {sorted(self.settings)}."
            )

    def configure(self, recipe: Mapping[str, Any]) -> dict[str, Any]:
        """``recipe`` with this row's ``settings`` applied to the keys it has."""
        return {**recipe, **{key: value for key, value in self.settings.items() if key in recipe}}


class Experiment(ABC):
    """A paper table or figure that can be reproduced with one command.

    Subclasses set the class attributes, list their variants and build data and model from a
    recipe: a plain dict of settings per profile, which ``--set key=value`` overrides.
    """

    name: ClassVar[str]
    paper: ClassVar[str]
    table: ClassVar[str]
    description: ClassVar[str] = ""
    recipes: ClassVar[Mapping[str, Mapping[str, Any]]]
    # Keys every recipe of the experiment takes through ``--set`` without listing them, with their default. A recipe
    # holds one only when it is set, so that adding such a key leaves the run ids (hashes of the recipe) of earlier
    # runs unchanged.
    optional_keys: ClassVar[Mapping[str, Any]] = {"deterministic": False}
    # Profiles sized for a CPU; a long run of any other on a CPU prints a note (experiments.progress).
    cpu_profiles: ClassVar[tuple[str, ...]] = ("smoke",)

    @abstractmethod
    def variants(self) -> list[Variant]:
        """The rows of the table, in the paper's order."""

    @abstractmethod
    def build_datamodule(self, recipe: Mapping[str, Any]) -> L.LightningDataModule:
        """The DataModule a run trains and validates on."""

    @abstractmethod
    def build_module(
        self, variant: Variant, recipe: Mapping[str, Any], datamodule: L.LightningDataModule
    ) -> L.LightningModule:
        """The LightningModule of one variant."""

    def extra_tables(self, records: Sequence[Mapping[str, Any]]) -> list[str]:
        """Markdown tables printed after the paper-vs-measured one, from the experiment's ``records`` or from no run
        at all (e.g. parameter counts)."""
        return []

    def extra_charts(self, records: Sequence[Mapping[str, Any]], folder: Path) -> list[Path]:
        """PNG charts written into ``folder`` by ``table`` beside the bar chart of the paper table; none by
        default."""
        return []

    def after_evaluation(
        self,
        trainer: L.Trainer,
        module: L.LightningModule,
        datamodule: L.LightningDataModule,
        recipe: Mapping[str, Any],
    ) -> dict[str, Any]:
        """Fields added to a run's ``metrics.json`` after its last validation (e.g. a test-split score or a measured
        cost); none by default."""
        return {}

    def trainer_kwargs(self, recipe: Mapping[str, Any]) -> dict[str, Any]:
        """Arguments of ``lightning.Trainer`` taken from the recipe.

        ``precision="auto"`` becomes :func:`auto_precision`'s choice and ``cudnn_benchmark`` the Trainer's
        ``benchmark``.
        """
        keys = ("max_epochs", "max_steps", "precision", "accelerator", "devices", "check_val_every_n_epoch")
        kwargs = {key: recipe[key] for key in keys if key in recipe}
        if kwargs.get("precision") == "auto":
            kwargs["precision"] = auto_precision(recipe.get("accelerator", "auto"))
        if "cudnn_benchmark" in recipe:
            kwargs["benchmark"] = recipe["cudnn_benchmark"]
        return kwargs

    def recipe(
        self, profile: str, overrides: Mapping[str, Any] | None = None, variant: Variant | None = None
    ) -> dict[str, Any]:
        """The settings of ``profile``, then ``variant``'s own, then ``overrides``.

        Raises:
            ValueError: for an unknown profile, an unknown key, or an override that the key does not accept
                (:func:`check_recipe_value`), naming the key, the value and what was expected.
        """
        if profile not in PROFILES:
            raise ValueError(f"Unknown profile {profile!r}: expected one of {', '.join(PROFILES)}.")
        if profile not in self.recipes:
            raise ValueError(f"Experiment {self.name!r} has no {profile!r} profile; it has {', '.join(self.recipes)}.")
        recipe = dict(self.recipes[profile])
        if variant is not None:
            recipe = variant.configure(recipe)
        for key, value in (overrides or {}).items():
            if key in self.optional_keys and key not in recipe:
                check_recipe_value(key, value, self.optional_keys[key])
                if value != self.optional_keys[key]:  # the default leaves the recipe, and the run id, as they were
                    recipe[key] = value
                continue
            if key not in recipe:
                known = sorted({*recipe, *self.optional_keys})
                raise ValueError(
                    f"--set {key}=...: the {profile!r} recipe of {self.name!r} has no key {key!r}"
                    f"{did_you_mean(key, known)}. Its keys: {', '.join(known)}."
                )
            check_recipe_value(key, value, recipe[key])
            recipe[key] = value
        return {**recipe, "profile": profile}

    def variant(self, name: str) -> Variant:
        variants = {variant.name: variant for variant in self.variants()}
        if name not in variants:
            raise ValueError(
                f"Experiment {self.name!r} has no variant {name!r}{did_you_mean(name, variants)}. "
                f"Its variants: {', '.join(variants)}."
            )
        return variants[name]


def trains_on_cuda(accelerator: str = "auto") -> bool:
    """Whether a Trainer with this ``accelerator`` setting will train on a CUDA GPU."""
    return accelerator in ("auto", "gpu", "cuda") and torch.cuda.is_available()


def auto_precision(accelerator: str = "auto") -> str:
    """``"bf16-mixed"`` when training will run on a CUDA GPU that supports bf16, else ``"32-true"``."""
    return "bf16-mixed" if trains_on_cuda(accelerator) and torch.cuda.is_bf16_supported() else "32-true"


@dataclass(frozen=True)
class Accepts:
    """What a recipe key accepts: ``check(value)``, and ``expected``, the words of its error ("a float like 0.01")."""

    check: Callable[[Any], bool]
    expected: str


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return _is_int(value) or isinstance(value, float)


def _positive_int(value: Any) -> bool:
    return _is_int(value) and value > 0


def _positive_number(value: Any) -> bool:
    return _is_number(value) and value > 0


def _sequence_of(check: Callable[[Any], bool], length: int | None = None) -> Callable[[Any], bool]:
    """A non-empty tuple / list (JSON gives lists) of ``length`` items (None: any length), each passing ``check``."""

    def accepts(value: Any) -> bool:
        return (
            isinstance(value, (tuple, list))
            and len(value) > 0
            and (length is None or len(value) == length)
            and all(check(item) for item in value)
        )

    return accepts


def _optional(check: Callable[[Any], bool]) -> Callable[[Any], bool]:
    return lambda value: value is None or check(value)


def _switch(*words: str) -> Callable[[Any], bool]:
    """True, False or one of ``words``."""
    return lambda value: isinstance(value, bool) or (isinstance(value, str) and value in words)


def _size(value: Any) -> bool:
    """A positive side, or a pair (h, w) of them."""
    return _positive_int(value) or _sequence_of(_positive_int, 2)(value)


def _scale_range(value: Any) -> bool:
    return _sequence_of(_positive_number, 2)(value) and value[0] <= value[1]


# Every precision the Lightning Trainer accepts ("32-true", "bf16-mixed", 16, ...), and the recipes' "auto".
PRECISIONS = ("auto", *(choice for literal in typing.get_args(_PRECISION_INPUT) for choice in typing.get_args(literal)))

# Recipe keys whose default value does not say what they accept: a side that may be a pair, a switch that may
# be "auto", a None that stands for a number, tuples of any length. Other keys accept what their default is
# (:func:`accepts_like`).
RECIPE_VALUES: dict[str, Accepts] = {
    "precision": Accepts(
        lambda value: isinstance(value, (str, int)) and not isinstance(value, bool) and value in PRECISIONS,
        "'auto' or a Lightning precision: " + ", ".join(repr(choice) for choice in PRECISIONS[1:]),
    ),
    "channels_last": Accepts(_switch("auto"), "True, False or 'auto'"),
    "attention": Accepts(
        lambda value: value is None or value in ("se", "eca", "cbam"),
        "None, 'se', 'eca' or 'cbam' (an attention block in every residual block of the backbone)",
    ),
    "deterministic": Accepts(_switch("warn"), "True, False or 'warn'"),
    "pretrained": Accepts(_switch("pypi"), "True, False or 'pypi'"),
    "crop_size": Accepts(_size, "a positive side or a pair (h, w) of them, like 768 or (360, 480)"),
    "eval_window": Accepts(_optional(_size), "None (no window) or a positive side or (h, w), like 768"),
    "eval_stride": Accepts(_optional(_size), "None (2/3 of the window) or a positive side or (h, w), like 512"),
    "ms_window": Accepts(_optional(_size), "None (no window) or a positive side or (h, w), like 1024"),
    "ms_stride": Accepts(_optional(_size), "None (2/3 of the window) or a positive side or (h, w), like 512"),
    "eval_short_side": Accepts(_optional(_positive_int), "None (full resolution) or a positive shorter side, like 240"),
    "num_workers": Accepts(
        _optional(lambda value: _is_int(value) and value >= 0),
        "None (the CPUs available, at most 8) or an integer >= 0, like 4",
    ),
    "backbone": Accepts(_optional(lambda value: isinstance(value, str)), "a timm model name like 'resnet50' or None"),
    "root": Accepts(
        _optional(lambda value: isinstance(value, str)),
        "a dataset folder like '/data/camvid' (default: the dataset's folder under the data root)",
    ),
    "coco_checkpoint": Accepts(_optional(lambda value: isinstance(value, str)), "None or a checkpoint file's path"),
    "ms_scales": Accepts(
        _sequence_of(_positive_number), "a tuple of positive scales, any length, like (0.5, 1.0, 1.5)"
    ),
    "multi_grid": Accepts(_sequence_of(_positive_int), "a tuple of positive dilations, any length, like (4, 8, 16)"),
    "scale_range": Accepts(_scale_range, "a pair (low, high) of positive scales with low <= high, like (0.5, 2.0)"),
    "layers": Accepts(_optional(_sequence_of(_positive_int, 4)), "None or 4 blocks per stage, like (1, 1, 1, 1)"),
    "planes": Accepts(_optional(_sequence_of(_positive_int, 4)), "None or 4 stage widths, like (8, 16, 32, 64)"),
    "pam_mode": Accepts(lambda value: value in POSITION_MODES, " or ".join(repr(mode) for mode in POSITION_MODES)),
    "wrn_weights": Accepts(_optional(lambda value: isinstance(value, str)), "None or a WRN-38 state dict file's path"),
    "dual_mode": Accepts(lambda value: value in ("paper", "released"), "'paper' or 'released'"),
    "edge_bce": Accepts(lambda value: value in ("paper", "released"), "'paper' or 'released'"),
    "canny_mode": Accepts(lambda value: value in ("device", "released"), "'device' or 'released'"),
    "onehot_offset": Accepts(lambda value: _is_int(value) and value in (0, 1), "0 (fixed) or 1 (released)"),
    "tau": Accepts(_optional(_positive_number), "None (the mode's default) or a positive temperature, like 1.0"),
    "poly_interval": Accepts(lambda value: value in ("step", "epoch"), "'step' or 'epoch'"),
    "boundary_thresholds": Accepts(
        lambda value: isinstance(value, (tuple, list)) and all(_positive_number(t) and t < 1 for t in value),
        "a tuple of fractions of the image diagonal in (0, 1), like (0.00088, 0.001875, 0.00375, 0.005)",
    ),
    "crop_factors": Accepts(
        lambda value: isinstance(value, (tuple, list)) and all(_is_int(c) and c >= 0 for c in value),
        "a tuple of pixel counts >= 0, like (0, 200, 300, 400)",
    ),
    "locations": Accepts(
        _sequence_of(_positive_int),
        "a tuple of cells per level but the last, any number of levels, like (5,) or (2, 1)",
    ),
    "eval_locations": Accepts(
        _optional(_sequence_of(_positive_int)),
        "None (the trained counts) or a tuple of cells per level but the last, like (3,) or (2, 1)",
    ),
    "crop_reference_height": Accepts(
        _optional(_positive_int), "None (crop factors in pixels of the evaluated image) or a height like 1024"
    ),
}


def accepts_like(default: Any) -> Accepts | None:
    """What a value replacing ``default`` must be: the same kind (an int where a float is expected is fine; a
    bool is never a number), a tuple / list of the same length whose items each match; None when anything goes."""
    if default is None:
        return None
    if isinstance(default, bool):
        return Accepts(lambda value: isinstance(value, bool), "True or False")
    if _is_int(default):
        return Accepts(_is_int, f"an integer like {default!r}")
    if isinstance(default, float):
        return Accepts(_is_number, f"a float like {default!r}")
    if isinstance(default, str):
        return Accepts(lambda value: isinstance(value, str), f"a string like {default!r}")
    if isinstance(default, (tuple, list)):
        items = [accepts_like(item) for item in default]
        return Accepts(
            lambda value: (
                isinstance(value, (tuple, list))
                and len(value) == len(items)
                and all(rule is None or rule.check(item) for rule, item in zip(items, value, strict=True))
            ),
            f"a tuple of {len(items)} like {tuple(default)!r}",
        )
    return Accepts(lambda value: isinstance(value, type(default)), f"a {type(default).__name__} like {default!r}")


def check_recipe_value(key: str, value: Any, default: Any) -> None:
    """Raise ``ValueError`` unless ``value`` may replace the recipe's ``default`` for ``key`` (:data:`RECIPE_VALUES`).

    The message names the key, the value given and what was expected, e.g.
    ``--set lr='abc': expected a float like 0.01.``
    """
    accepts = RECIPE_VALUES.get(key) or accepts_like(default)
    if accepts is not None and not accepts.check(value):
        raise ValueError(f"--set {key}={value!r}: expected {accepts.expected}.")


REGISTRY: dict[str, type[Experiment]] = {}


def register(cls: type[Experiment]) -> type[Experiment]:
    """Class decorator adding an Experiment to the registry under its ``name``."""
    if cls.name in REGISTRY:
        raise ValueError(f"Two experiments are named {cls.name!r}: {REGISTRY[cls.name]} and {cls}.")
    REGISTRY[cls.name] = cls
    return cls


def did_you_mean(name: str, choices: Any) -> str:
    """``" (did you mean 'x'?)"`` for the closest of ``choices``, or an empty string."""
    close = difflib.get_close_matches(name, list(choices), n=3, cutoff=0.5)
    return f" (did you mean {' or '.join(repr(c) for c in close)}?)" if close else ""


def experiment_names() -> list[str]:
    """Every registered experiment, after importing the modules that register them."""
    import experiments.catalog  # noqa: F401

    return sorted(REGISTRY)


def get_experiment(name: str) -> Experiment:
    """Instantiate the registered experiment ``name``, with a "did you mean" on a typo."""
    if name not in experiment_names():
        raise ValueError(
            f"Unknown experiment {name!r}{did_you_mean(name, REGISTRY)}. "
            f"Known experiments: {', '.join(sorted(REGISTRY))}."
        )
    return REGISTRY[name]()
