"""Imports every experiment module so that each registers itself."""

from experiments import attention_blocks, baselines, danet, gscnn, quickstart, sanet, tnet  # noqa: F401
