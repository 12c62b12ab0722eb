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
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import lightning as L
import torch

PROFILES = ("smoke", "small", "paper")


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
    again, e.g. Table 2's multi-scale row (see :func:`experiments.runner.run_variant`).
    """

    name: str
    params: Mapping[str, Any] = field(default_factory=dict)
    paper: tuple[PaperNumber, ...] = ()
    settings: Mapping[str, Any] = field(default_factory=dict)
    rescores: str | None = None

    def __post_init__(self) -> None:
        if self.rescores == self.name:
            raise ValueError(f"variant {self.name!r} cannot rescore itself.")
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
        """The settings of ``profile``, then ``variant``'s own, then ``overrides`` (an unknown key is an error)."""
        if profile not in PROFILES:
            raise ValueError(f"Unknown profile {profile!r}: expected one of {', '.join(PROFILES)}.")
        if profile not in self.recipes:
            raise ValueError(f"Experiment {self.name!r} has no {profile!r} profile; it has {', '.join(self.recipes)}.")
        recipe = dict(self.recipes[profile])
        if variant is not None:
            recipe = variant.configure(recipe)
        for key, value in (overrides or {}).items():
            if key not in recipe:
                raise ValueError(
                    f"--set {key}=...: the {profile!r} recipe of {self.name!r} has no key {key!r}"
                    f"{did_you_mean(key, recipe)}. Its keys: {', '.join(sorted(recipe))}."
                )
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
