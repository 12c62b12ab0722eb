"""Imports every experiment module so that each registers itself."""

from experiments import baselines, quickstart  # noqa: F401
