"""``datamodules.store.root``: where the data root and the download folder are, and how the CLI sets them."""

import argparse

from datamodules.store.root import (
    DATA_ROOT_ENV,
    DOWNLOAD_DIR_ENV,
    data_root,
    data_root_origin,
    download_dir,
)
from experiments.data_command import apply_data_root


def test_data_root_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv(DATA_ROOT_ENV, str(tmp_path / "elsewhere"))
    assert data_root() == tmp_path / "elsewhere"
    assert data_root_origin() == f"${DATA_ROOT_ENV} or --data-root"


def test_data_root_is_absolute_and_expands_the_home_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv(DATA_ROOT_ENV, "~/datasets")
    assert data_root() == tmp_path / "home" / "datasets"
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(DATA_ROOT_ENV, "relative/data")
    assert data_root() == tmp_path / "relative" / "data"
    assert data_root().is_absolute()


def test_default_data_root_is_in_the_cache_folder(tmp_path, monkeypatch):
    monkeypatch.delenv(DATA_ROOT_ENV, raising=False)
    monkeypatch.setenv("ATTENTION_PAPERS_CACHE", str(tmp_path / "cache"))
    assert data_root() == tmp_path / "cache" / "data"
    assert data_root_origin() == f"the default; set another with --data-root DIR or ${DATA_ROOT_ENV}"
    monkeypatch.setenv(DATA_ROOT_ENV, "")  # empty: as if unset
    assert data_root() == tmp_path / "cache" / "data"


def test_download_dir_from_the_environment_or_the_cache_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("ATTENTION_PAPERS_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv(DOWNLOAD_DIR_ENV, raising=False)
    assert download_dir() == tmp_path / "cache" / "downloads"
    monkeypatch.setenv(DOWNLOAD_DIR_ENV, str(tmp_path / "archives"))
    assert download_dir() == tmp_path / "archives"
    # outside the data root, wherever that is
    monkeypatch.setenv(DATA_ROOT_ENV, str(tmp_path / "data"))
    assert not download_dir().is_relative_to(data_root())


def test_command_line_options_set_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv(DATA_ROOT_ENV, "before")  # monkeypatch restores both after the test
    monkeypatch.setenv(DOWNLOAD_DIR_ENV, "before")
    monkeypatch.chdir(tmp_path)
    apply_data_root(argparse.Namespace(data_root="data", download_dir="archives"))
    assert data_root() == tmp_path / "data"
    assert download_dir() == tmp_path / "archives"
    apply_data_root(argparse.Namespace(data_root=None))  # no option: the environment stays
    assert data_root() == tmp_path / "data"
