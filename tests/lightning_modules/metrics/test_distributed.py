"""Scores over a split under DDP (2 CPU processes, gloo) equal the single-process scores."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist

from datamodules.synthetic import SyntheticSegmentationDataModule
from lightning_modules.metrics import BoundaryFScore, SegmentationScores

NUM_VAL = 5  # odd: a padding sampler would count one image twice on two processes


def fixed_network() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Conv2d(3, 4, 3, padding=1).eval()


def split_scores() -> dict:
    datamodule = SyntheticSegmentationDataModule(num_classes=4, image_size=24, num_val=NUM_VAL, batch_size=2)
    datamodule.setup("validate")
    network = fixed_network()
    scores, boundary = SegmentationScores(4), BoundaryFScore(4)
    seen = 0
    with torch.no_grad():
        for images, labels in datamodule.val_dataloader():
            preds = network(images).argmax(1)
            scores.update(preds, labels)
            boundary.update(preds, labels)
            seen += len(images)
    result = scores.compute()
    return {
        "mIoU": float(result["mIoU"]),
        "iou": result["iou"].tolist(),
        "pixel_acc": float(result["pixel_acc"]),
        "boundary": boundary.compute()["f_mean"].tolist(),
        "seen": seen,
    }


def worker(rank: int, store: str, out: str) -> None:
    """One DDP process; run as ``python test_distributed.py RANK STORE OUT`` (a fresh interpreter: forking
    a pytest process whose earlier tests started OpenMP or W&B threads can deadlock)."""
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=2)
    try:
        result = split_scores()
        with open(f"{out}.{rank}", "w") as handle:
            json.dump(result, handle)
    finally:
        dist.destroy_process_group()


def test_ddp_scores_equal_single_process(tmp_path):
    single = split_scores()
    assert single["seen"] == NUM_VAL
    root = Path(__file__).resolve().parents[3]
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")]),
        "OMP_NUM_THREADS": "1",
    }
    workers = [
        subprocess.Popen([sys.executable, __file__, str(rank), str(tmp_path / "store"), str(tmp_path / "out")], env=env)
        for rank in range(2)
    ]
    for process in workers:
        assert process.wait(timeout=120) == 0
    ranks = [json.loads((tmp_path / f"out.{rank}").read_text()) for rank in range(2)]
    # each process saw a disjoint part of the split, together all of it once
    assert sorted(r["seen"] for r in ranks) == [2, 3]
    for result in ranks:
        assert result["mIoU"] == single["mIoU"]
        assert result["iou"] == single["iou"]
        assert result["pixel_acc"] == single["pixel_acc"]
        assert result["boundary"] == pytest.approx(single["boundary"], abs=1e-12)


if __name__ == "__main__":
    worker(int(sys.argv[1]), sys.argv[2], sys.argv[3])
