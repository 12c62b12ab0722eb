"""The benchmark fixtures stay valid for the DataModules; the data pipeline and position attention benchmarks run."""

from __future__ import annotations

import importlib.util
import math
import multiprocessing
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
import torch

from datamodules import (
    IGNORE_INDEX,
    CamVidDataModule,
    CityscapesDataModule,
    CocoStuff10kDataModule,
    PascalContext59DataModule,
    PascalContext60DataModule,
    SegmentationDataModule,
    VOCAugDataModule,
)

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def load_script(name: str) -> ModuleType:
    """Import ``benchmarks/<name>.py`` by path (``benchmarks`` is a folder of scripts, not a package)."""
    spec = importlib.util.spec_from_file_location(f"benchmark_{name}", BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


fixtures = load_script("fixtures")
data_pipeline = load_script("data_pipeline")
position_attention = load_script("position_attention")


@pytest.mark.parametrize(
    ("layout", "datamodule_class"),
    [
        ("cityscapes", CityscapesDataModule),
        ("voc", VOCAugDataModule),
        ("pascal_context", PascalContext59DataModule),
        ("pascal_context", PascalContext60DataModule),
        ("coco_stuff_10k", CocoStuff10kDataModule),
        ("camvid", CamVidDataModule),
    ],
)
def test_fixture_tree_loads(layout: str, datamodule_class: type[SegmentationDataModule], tmp_path: Path) -> None:
    root = fixtures.write_tree(layout, tmp_path / layout, num_images=2, height=64, width=128)
    datamodule = datamodule_class(root, num_workers=0)
    datamodule.setup()
    assert len(datamodule.datasets["train"]) == 2
    for dataset in datamodule.datasets.values():
        for index in range(len(dataset)):
            image, label = dataset.load(index)  # checks the size and the converted label values
            assert image.shape == (64, 128, 3)
            assert len(np.unique(label[label != IGNORE_INDEX])) > 1, "the label map keeps several classes"

    image, label = datamodule.datasets["train"][0]
    crop = data_pipeline.pair(datamodule.crop_size)
    assert image.shape == (3, *crop)
    assert label.shape == crop
    values = set(label.unique().tolist())
    assert values <= {*range(datamodule.num_classes), IGNORE_INDEX}
    assert values - {IGNORE_INDEX}


def test_write_tree_rejects_unknown_dataset(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown dataset"):
        fixtures.write_tree("ade20k", tmp_path, 1, 32, 32)


def test_quick_benchmark_prints_a_row_per_dataset(capsys: pytest.CaptureFixture[str]) -> None:
    children = set(multiprocessing.active_children())
    results = data_pipeline.main(["--quick"])
    out = capsys.readouterr().out
    assert "command: python benchmarks/data_pipeline.py --quick" in out
    rows = [line.split("|")[1:-1] for line in out.splitlines() if line.startswith("| ") and "dataset" not in line]
    expected = [name for name in data_pipeline.DATASETS if name != "camvid_real" or data_pipeline.REAL_CAMVID.is_dir()]
    assert [row[0].strip() for row in rows] == expected == [result.dataset for result in results]
    for row, result in zip(rows, results, strict=True):
        assert len(row) == 8
        assert result.loader_ips > 0 and result.model_ips is not None and result.model_ips > 0
        assert row[-1].strip() == ("yes" if result.loader_ips >= result.model_ips else "no")
    assert set(multiprocessing.active_children()) <= children, "the loader workers are shut down after each dataset"


def test_position_attention_benchmark_reports_finite_ratios(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["--device", "cpu", "--batch", "1", "--feature-size", "6", "5", "--channels", "16"]
    argv += ["--full-size", "4", "8", "--crop", "32", "--repeats", "1", "--warmup", "0"]
    rows = position_attention.main(argv)
    out = capsys.readouterr().out
    assert [row.benchmark for row in rows] == ["pam_train", "pam_full", "step"]
    printed = [line.split("|")[1:-1] for line in out.splitlines() if line.startswith(("| pam_", "| step"))]
    assert len(printed) == 3
    for row, cells in zip(rows, printed, strict=True):
        assert row.time_ratio > 0 and math.isfinite(row.time_ratio)
        assert float(cells[6]) > 0 and math.isfinite(float(cells[6]))
        assert row.memory_ratio is None and cells[9].strip() == "n/a", "a CPU allocator keeps no peak"


def test_position_attention_benchmark_reports_oom_instead_of_crashing() -> None:
    def out_of_memory() -> None:
        raise torch.cuda.OutOfMemoryError("CUDA out of memory")

    measurement = position_attention.measure(out_of_memory, torch.device("cpu"), warmup=0, repeats=1)
    assert measurement.oom and measurement.ms is None
    row = position_attention.Comparison(
        "pam_full", "1×512×128×256", 1, position_attention.Measurement(5.0, None), measurement
    )
    assert row.time_ratio is None and "| OOM |" in position_attention.table([row])
