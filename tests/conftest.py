"""Test-wide settings: no network, few threads, paths to the shared data."""

import os

# Read by huggingface_hub at import time: pretrained=True fails at once instead of retrying.
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture
def camvid_root() -> Path:
    root = SHARED_DATA / "camvid"
    if not root.is_dir():
        pytest.skip(f"real CamVid not found at {root}")
    return root


@pytest.fixture(autouse=True, scope="session")
def file_check_cache(tmp_path_factory):
    """The DataModules' file check cache (datamodules.base.FileSizeCache) in a temporary folder, not the user's."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ATTENTION_PAPERS_CACHE", str(tmp_path_factory.mktemp("cache")))
        yield
