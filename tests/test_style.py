import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(shutil.which("ruff") is None, reason="ruff is installed by the test extra")
def test_ruff_clean():
    result = subprocess.run(["ruff", "check", "--no-cache", str(ROOT)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_layers_import_in_one_direction():
    """lightning_modules never imports experiments; datamodules imports neither."""
    forbidden = {"lightning_modules": ("experiments",), "datamodules": ("experiments", "lightning_modules")}
    for package, names in forbidden.items():
        for path in (ROOT / package).rglob("*.py"):
            text = path.read_text()
            for name in names:
                assert f"from {name}" not in text and f"import {name}" not in text, f"{path} imports {name}"
