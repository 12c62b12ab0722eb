"""The data root: the one folder under which every dataset has its own folder (``<data root>/camvid``, ...).

Resolved, first match wins, as:

1. ``--data-root DIR`` on the command line (``python -m experiments`` sets :data:`DATA_ROOT_ENV` for the command,
   so that the processes a DDP run starts see it too);
2. the environment variable :data:`DATA_ROOT_ENV` (``ATTN_DATA_ROOT``);
3. the per-user default, ``data`` in the cache folder (``~/.cache/attention-papers/data`` on Linux; the cache folder
   moves with ``ATTENTION_PAPERS_CACHE``).

A recipe's ``root`` key, when set (``--set root=DIR``), names one dataset's folder directly and bypasses the root.
"""

from __future__ import annotations

import os
from pathlib import Path

from datamodules.base import cache_dir

DATA_ROOT_ENV = "ATTN_DATA_ROOT"
DOWNLOAD_DIR_ENV = "ATTN_DOWNLOAD_DIR"


def data_root() -> Path:
    """The data root (see the module docstring), absolute; it need not exist."""
    configured = os.environ.get(DATA_ROOT_ENV)
    root = Path(configured).expanduser() if configured else cache_dir() / "data"
    return root.absolute()


def data_root_origin() -> str:
    """Where :func:`data_root` comes from, in words, for error messages."""
    if os.environ.get(DATA_ROOT_ENV):
        return f"${DATA_ROOT_ENV} or --data-root"
    return f"the default; set another with --data-root DIR or ${DATA_ROOT_ENV}"


def download_dir() -> Path:
    """Where archives are downloaded (and partial downloads kept for resuming): ``$ATTN_DOWNLOAD_DIR``, else
    ``downloads`` in the cache folder. Outside the data root, so that a failed download leaves the root as it was."""
    configured = os.environ.get(DOWNLOAD_DIR_ENV)
    return Path(configured).expanduser().absolute() if configured else default_download_dir()


def default_download_dir() -> Path:
    """``downloads`` in the cache folder: :func:`download_dir` without ``$ATTN_DOWNLOAD_DIR``."""
    return (cache_dir() / "downloads").absolute()
