"""The notebooks are committed without outputs, read the command line's results store and run top to bottom.

The tests run them with the smoke profile and ``$EXPERIMENTS_RUNS_DIR`` in a temporary folder.
"""

import os
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from experiments.results import RUNS_DIR_VARIABLE

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
# What a run or a notebook would leave behind if it wrote into the repository.
ARTEFACT_DIRS = {"runs", "lightning_logs", "wandb", ".ipynb_checkpoints"}
ARTEFACT_SUFFIXES = {".ckpt", ".csv", ".png"}
SKIP_DIRS = {"venv", "__pycache__", "node_modules"}


def artefacts() -> set[Path]:
    found = set()
    for folder, dirs, files in os.walk(ROOT):
        # Skip version control and virtual environments (the README creates .venv in the checkout).
        dirs[:] = [d for d in dirs if d in ARTEFACT_DIRS or not (d.startswith(".") or d in SKIP_DIRS)]
        relative = Path(folder).relative_to(ROOT)
        inside = bool(ARTEFACT_DIRS.intersection(relative.parts))
        found.update(relative / name for name in files if inside or Path(name).suffix in ARTEFACT_SUFFIXES)
    return found


def test_there_are_notebooks():
    expected = {
        "quickstart.ipynb",
        "results_explorer.ipynb",
        "attention_maps.ipynb",
        "gscnn_edges.ipynb",
        "tnet_attention.ipynb",
    }
    assert {path.name for path in NOTEBOOKS} >= expected


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.name)
def test_committed_without_outputs(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    dirty = [
        index
        for index, cell in enumerate(nb.cells)
        if cell.cell_type == "code" and (cell.get("outputs") or cell.get("execution_count") is not None)
    ]
    assert not dirty, f"{path.name}: cells {dirty} have outputs or an execution count; clear them before committing."


def parameter_cell(path: Path) -> str:
    nb = nbformat.read(path, as_version=4)
    code = [cell for cell in nb.cells if cell.cell_type == "code"]
    assert "parameters" in code[0].metadata.get("tags", []), f"{path.name}: the first code cell is not tagged"
    return code[0].source


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.name)
def test_parameter_cell_keeps_the_smoke_profile(path):
    source = parameter_cell(path)
    assert "RUNS_DIR = notebook_runs_dir()" in source
    if "PROFILE" in source:
        assert 'PROFILE = "smoke"' in source


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.name)
def test_notebooks_read_the_runs_the_command_line_writes(path, tmp_path, monkeypatch):
    # Jupyter starts the kernel in notebooks/; `python -m experiments run` from the root writes to <root>/runs.
    monkeypatch.delenv(RUNS_DIR_VARIABLE, raising=False)
    for folder in (ROOT / "notebooks", tmp_path):
        monkeypatch.chdir(folder)
        namespace = {}
        exec(parameter_cell(path), namespace)
        assert Path(namespace["RUNS_DIR"]) == ROOT / "runs", f"with {folder} as the working directory"
    monkeypatch.setenv(RUNS_DIR_VARIABLE, str(tmp_path / "elsewhere"))
    namespace = {}
    exec(parameter_cell(path), namespace)
    assert Path(namespace["RUNS_DIR"]) == tmp_path / "elsewhere"


@pytest.mark.timeout(600)
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.name)
def test_runs_top_to_bottom(path, tmp_path, monkeypatch):
    # The kernel inherits this environment: the packages import from the checkout even when not installed.
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    monkeypatch.setenv("PYTHONDONTWRITEBYTECODE", "1")
    monkeypatch.setenv("OMP_NUM_THREADS", os.environ.get("OMP_NUM_THREADS", "1"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv(RUNS_DIR_VARIABLE, str(tmp_path / "runs"))
    monkeypatch.chdir(tmp_path)
    source = path.read_bytes()
    before = artefacts()
    nb = nbformat.reads(source.decode(), as_version=4)
    NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()

    assert all(cell.get("execution_count") for cell in nb.cells if cell.cell_type == "code")
    assert list(tmp_path.glob("runs/*/*/*/metrics.json")), f"the notebook did not write its run to ${RUNS_DIR_VARIABLE}"
    assert path.read_bytes() == source, "executing the notebook changed the committed file"
    assert artefacts() == before, f"executing {path.name} wrote into the repository: {artefacts() - before}"
