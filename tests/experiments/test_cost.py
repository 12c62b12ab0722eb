"""The cost every run records (experiments/cost.py) and the table that shows it."""

import json

import torch
from torch.utils.flop_counter import FlopCounterMode

from experiments.__main__ import main
from experiments.cost import format_cost_table, rate
from experiments.evaluate import load_trained


def test_a_run_records_its_parameters_multiply_adds_speeds_and_memory(tmp_path, capsys):
    argv = ["run", "quickstart", "--profile", "smoke", "--runs-dir", str(tmp_path), "--wandb", "disabled"]
    assert main(argv) == 0
    (results,) = tmp_path.glob("quickstart/fcn/*/metrics.json")
    cost = json.loads(results.read_text())["run_cost"]
    module, _, _ = load_trained(results.parent / "checkpoints" / "last.ckpt")
    assert cost["params"] == sum(p.numel() for p in module.parameters() if p.requires_grad)
    assert cost["eval_size"] == [32, 32]  # the smoke scenes' size: the validation loader's
    network = module.network.eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        network(torch.zeros(1, 3, 32, 32))
    assert cost["macs_per_image"] == counter.get_total_flops() // 2 > 0
    assert cost["train_images_per_s"] > 0 and cost["inference_images_per_s"] > 0
    assert cost["peak_memory_mib"] > 0 and cost["memory_kind"] == "process peak RSS"
    assert cost["hardware"].startswith("cpu (")
    capsys.readouterr()
    assert main(["table", "quickstart", "--runs-dir", str(tmp_path)]) == 0
    (row,) = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| fcn | smoke | 0 |")]
    cells = [cell.strip() for cell in row.split("|")[1:-1]]
    assert cells[3] == f"{cost['params'] / 1e6:.2f}"
    assert cells[4] == f"{cost['macs_per_image'] / 1e9:.3f} (32×32)"
    assert cells[8] == cost["hardware"]


def test_rates_and_a_table_without_costs():
    assert rate(64, 2.0) == 32.0
    assert rate(0, 2.0) is None and rate(10, 0.0) is None
    assert format_cost_table([{"variant": "a", "profile": "smoke", "seed": 0}]) == ""


def test_a_cpu_peak_counts_from_its_reset_on_linux():
    import numpy as np
    import pytest

    from experiments.cost import LINUX_CLEAR_REFS, peak_memory_mib, reset_peak_memory

    if not LINUX_CLEAR_REFS.exists():
        pytest.skip("the peak resident set is reset through Linux's /proc/self/clear_refs")
    cpu = torch.device("cpu")
    block = np.ones(256 * 2**20 // 8)  # 256 MiB, touched
    before = peak_memory_mib(cpu)
    del block
    reset_peak_memory(cpu)
    after = peak_memory_mib(cpu)
    # The 256 MiB block was freed before the reset: the next run of --seeds does not inherit its peak.
    assert before - after > 200
