"""Test-wide settings: no network, few threads, paths to the shared data."""

import os

# Read by huggingface_hub at import time: pretrained=True fails at once instead of retrying.
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
# The data root of every test (datamodules.store.root), set before any test runs so that no dataset of the user's
# own data root is read: the real CamVid beside this repository.
os.environ["ATTN_DATA_ROOT"] = str(SHARED_DATA)


@pytest.fixture
def camvid_root() -> Path:
    root = SHARED_DATA / "camvid"
    if not root.is_dir():
        pytest.skip(f"real CamVid not found at {root}")
    return root


@pytest.fixture
def empty_data_root(tmp_path, monkeypatch) -> Path:
    """A data root holding an empty folder per dataset: the DataModules of the ``paper`` recipes can be built (not
    set up) without the datasets."""
    from datamodules.store.catalog import DATASETS

    root = tmp_path / "data"
    for spec in DATASETS.values():
        (root / spec.folder).mkdir(parents=True)
    monkeypatch.setenv("ATTN_DATA_ROOT", str(root))
    return root


@pytest.fixture(autouse=True, scope="session")
def file_check_cache(tmp_path_factory):
    """The DataModules' file check cache (datamodules.base.FileSizeCache) in a temporary folder, not the user's."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ATTENTION_PAPERS_CACHE", str(tmp_path_factory.mktemp("cache")))
        yield
