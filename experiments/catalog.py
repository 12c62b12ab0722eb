"""Imports every experiment module so that each registers itself."""

from experiments import quickstart  # noqa: F401
