"""Imports every experiment module so that each registers itself."""

from experiments import attention_blocks, baselines, quickstart  # noqa: F401
