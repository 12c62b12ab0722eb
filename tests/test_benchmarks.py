"""The benchmark fixtures stay valid for the DataModules; the data pipeline and position attention benchmarks run."""

from __future__ import annotations

import importlib.util
import json
import math
import multiprocessing
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType, SimpleNamespace

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
common = load_script("common")


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
    crop = common.pair(datamodule.crop_size)
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
        assert len(row) == 9 and row[3].strip() == result.model == "test_resnet"
        assert result.loader_ips > 0 and result.model_ips is not None and result.model_ips > 0
        assert row[-1].strip() == ("yes" if result.loader_ips >= result.model_ips else "no")
    assert set(multiprocessing.active_children()) <= children, "the loader workers are shut down after each dataset"


def test_data_pipeline_sizes_follow_the_device_unless_quick_or_set() -> None:
    # Parsing only: naming the cuda device needs no GPU. A CPU takes the quick sizes without --quick (the full
    # ones, a ResNet-101 step at 768x768 and batch 8, cannot fit there), CUDA the full ones.
    cpu = data_pipeline.parse_args(["--device", "cpu"])
    cuda = data_pipeline.parse_args(["--device", "cuda"])
    cuda_quick = data_pipeline.parse_args(["--device", "cuda", "--quick"])
    cpu_set = data_pipeline.parse_args(["--device", "cpu", "--height", "96", "--backbone", "resnet18"])
    assert (cpu.height, cpu.width, cpu.batch_size, cpu.backbone) == (64, 128, 1, "test_resnet")
    assert (cuda.height, cuda.width, cuda.batch_size, cuda.backbone) == (1024, 2048, 8, "resnet101")
    assert (cuda_quick.height, cuda_quick.batch_size, cuda_quick.small_backbone) == (64, 1, "test_resnet")
    assert (cpu_set.height, cpu_set.width, cpu_set.backbone) == (96, 128, "resnet18")


def test_measure_reports_the_median_of_the_timed_calls(monkeypatch: pytest.MonkeyPatch) -> None:
    # Three timed calls of 10, 50 and 20 ms after two untimed warm-up calls: median 20 ms (the mean would be 26.7).
    clock = iter([0.0, 0.010, 1.0, 1.050, 2.0, 2.020])
    monkeypatch.setattr(common, "time", SimpleNamespace(perf_counter=lambda: next(clock)))
    calls = []
    measured = common.measure(lambda: calls.append(1), torch.device("cpu"), warmup=2, repeats=3)
    assert measured.ms == pytest.approx(20.0) and measured.peak_mib is None and not measured.oom
    assert len(calls) == 5


def test_matmul_peak_counts_two_flops_per_multiply_add(monkeypatch: pytest.MonkeyPatch) -> None:
    products = []

    def fake_measure(call: Callable[[], torch.Tensor], device: torch.device, warmup: int, repeats: int):
        products.append(call())
        return common.Measurement(500.0, None)

    monkeypatch.setattr(common, "measure", fake_measure)
    tflops = common.matmul_peak_tflops(torch.device("cpu"), 64)
    assert tflops == pytest.approx(2 * 64**3 / 0.5 / 1e12)
    assert products[0].shape == (64, 64) and products[0].dtype == torch.bfloat16


def test_model_throughput_is_batch_over_the_median_step(monkeypatch: pytest.MonkeyPatch) -> None:
    timed, batches = [], []
    build = data_pipeline.build

    def recording_build(*args: object) -> tuple[torch.nn.Module, object]:
        network, module = build(*args)
        network.register_forward_hook(lambda _network, inputs, _output: batches.append(tuple(inputs[0].shape)))
        return network, module

    def fake_measure(call: Callable[[], None], device: torch.device, warmup: int, repeats: int) -> common.Measurement:
        call()
        timed.append((device.type, warmup, repeats))
        return common.Measurement(250.0, None)

    monkeypatch.setattr(data_pipeline, "build", recording_build)
    monkeypatch.setattr(data_pipeline, "measure", fake_measure)
    ips = data_pipeline.model_throughput("test_resnet", 5, (32, 48), 3, warmup=2, steps=4, device="cpu")
    assert ips == pytest.approx(3 / 0.25)
    assert timed == [("cpu", 2, 4)]
    assert batches == [(3, 3, 32, 48)], "the training-step benchmark's step runs at the pipeline's batch and crop"
    monkeypatch.setattr(data_pipeline, "measure", lambda *args: common.Measurement(None, None, oom=True))
    assert data_pipeline.model_throughput("test_resnet", 5, (32, 48), 3, warmup=0, steps=1, device="cpu") is None


def test_position_attention_benchmark_reports_every_mode_against_naive(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["--device", "cpu", "--batch", "1", "--feature-size", "6", "5", "--channels", "16"]
    argv += ["--full-size", "4", "8", "--repeats", "1", "--warmup", "0"]
    rows = position_attention.main(argv)
    out = capsys.readouterr().out
    assert [row.benchmark for row in rows] == ["pam_train", "pam_full"]
    printed = [line.split("|")[1:-1] for line in out.splitlines() if line.startswith("| pam_")]
    assert [(cells[0].strip(), cells[2].strip()) for cells in printed] == [
        (name, mode) for name in ("pam_train", "pam_full") for mode in ("fused", "fused_heads", "naive")
    ]
    for cells in printed:
        assert float(cells[3]) > 0 and math.isfinite(float(cells[6]))
        assert cells[5].strip() == "n/a" and cells[7].strip() == "n/a", "a CPU allocator keeps no peak"
    for row in rows:
        assert row.time_ratio("naive") == 1.0


def test_position_attention_benchmark_reports_oom_instead_of_crashing() -> None:
    def out_of_memory() -> None:
        raise torch.cuda.OutOfMemoryError("CUDA out of memory")

    oom = common.measure(out_of_memory, torch.device("cpu"), warmup=0, repeats=1)
    assert oom.oom and oom.ms is None
    row = position_attention.Comparison(
        "pam_full", "1×512×128×256", 1, {"fused": common.Measurement(5.0, 100.0), "naive": oom}
    )
    assert row.time_ratio("fused") is None and row.memory_ratio("fused") is None
    assert "| naive | OOM |" in position_attention.table([row])


def test_position_attention_mode_that_fails_is_a_failed_row(monkeypatch: pytest.MonkeyPatch) -> None:
    pam_module = position_attention.pam_module

    def module_or_fail(channels: int, mode: str, device: torch.device) -> torch.nn.Module:
        if mode == "fused_heads":
            raise RuntimeError("no kernel for these shapes")
        return pam_module(channels, mode, device)

    monkeypatch.setattr(position_attention, "pam_module", module_or_fail)
    argv = ["--device", "cpu", "--batch", "1", "--feature-size", "4", "4", "--channels", "16", "--only", "pam_train"]
    (row,) = position_attention.main([*argv, "--repeats", "1", "--warmup", "0"])
    assert row.measured["fused_heads"].error == "RuntimeError: no kernel for these shapes"
    assert row.time_ratio("fused_heads") is None and row.time_ratio("fused") > 0
    assert "| fused_heads | failed | failed | failed | n/a | n/a |" in position_attention.table([row])


training_step = load_script("training_step")
inference = load_script("inference")


def test_variant_names_parse_into_precision_and_switches() -> None:
    assert common.Variant.parse("bf16+cl+compile") == common.Variant("bf16+cl+compile", "bf16", True, True, "fused")
    assert common.Variant.parse("naive") == common.Variant("naive", "fp32", False, False, "naive")
    assert common.Variant.parse("tf32+fused_heads").pam_mode == "fused_heads"
    for bad in ("fp16", "bf16+tf32", "cl+cl", "naive+fused_heads", ""):
        with pytest.raises(ValueError, match="expected one of"):
            common.Variant.parse(bad)


def test_training_step_defaults_are_tiny_on_a_cpu_and_the_full_sizes_on_cuda() -> None:
    # Parsing only: naming the cuda device needs no GPU. With `compile` (inductor builds of four models) a CPU run
    # took minutes; without it and without `tf32` (a CUDA switch), seconds.
    cpu = training_step.parse_args(["--device", "cpu"])
    cuda = training_step.parse_args(["--device", "cuda"])
    settings = ("backbone", "crop", "batch", "repeats", "warmup", "peak_size")
    assert tuple(getattr(cpu, key) for key in settings) == ("test_resnet", 64, 2, 2, 1, 512)
    assert cpu.variants == ["fp32", "bf16", "bf16+cl", "bf16+cl+naive", "bf16+cl+fused_heads"]
    assert tuple(getattr(cuda, key) for key in settings) == ("resnet101", 768, 8, 10, 3, 8192)
    assert cuda.variants == list(training_step.DEFAULT_VARIANTS) and "bf16+cl+compile" in cuda.variants
    chosen = training_step.parse_args(["--device", "cpu", "--variants", "bf16+cl+compile", "--crop", "96"])
    assert (chosen.variants, chosen.crop, chosen.batch) == (["bf16+cl+compile"], 96, 2)


def test_training_step_row_derives_rates_and_mfu_from_time_flops_and_peak() -> None:
    # 8 images in 100 ms: 80 img/s; 2e12 FLOPs in 0.1 s: 20 TFLOP/s, half of a 40 TFLOP/s peak.
    row = training_step.Row("danet", "bf16", 8, common.Measurement(100.0, 512.0), flops=2e12, peak_tflops=40.0)
    assert row.images_per_second == pytest.approx(80.0)
    assert row.achieved_tflops == pytest.approx(20.0)
    assert row.mfu == pytest.approx(0.5)
    oom = training_step.Row("danet", "fp32", 8, common.Measurement(None, None, oom=True), 2e12, 40.0)
    assert oom.mfu is None and "| OOM |" in training_step.table([oom])


@pytest.mark.parametrize("groups", [1, 4, 8])
def test_flop_count_of_a_convolution_step_matches_the_formula(groups: int) -> None:
    # Forward: 2·B·H·W·Cout·(Cin / groups)·k² FLOPs; the input and the weight gradient each cost as much again.
    # (PyTorch's own formula charges a grouped weight gradient `groups` times.)
    conv = torch.nn.Conv2d(8, 16, 3, padding=1, groups=groups, bias=False)
    x = torch.randn(2, 8, 6, 6, requires_grad=True)
    forward = 2 * 2 * 6 * 6 * 16 * (8 // groups) * 9
    assert training_step.count_flops(lambda: conv(x).sum().backward()) == 3 * forward
    assert training_step.count_flops(lambda: conv(x.detach()).sum().backward()) == 2 * forward, "no input gradient"


def test_training_step_benchmark_measures_every_model_and_writes_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["--device", "cpu", "--crop", "32", "--batch", "2", "--repeats", "1", "--warmup", "1"]  # ASPP BN: B > 1
    argv += ["--variants", "fp32", "bf16+cl+compile", "naive", "--compile-backend", "eager", "--peak-size", "64"]
    argv += ["--profile", "--top", "3", "--json", str(tmp_path / "steps.json")]
    rows = training_step.main(argv)
    out = capsys.readouterr().out
    expected = [(model, "fp32") for model in common.MODELS] + [(model, "bf16+cl+compile") for model in common.MODELS]
    assert sorted((row.model, row.variant) for row in rows) == sorted([*expected, ("danet", "naive")])
    for row in rows:
        assert row.measured.ms > 0 and row.flops > 0 and math.isfinite(row.mfu) and row.mfu > 0
    danet = [row.flops for row in rows if row.model == "danet"]
    assert len(danet) == 3 and len(set(danet)) == 1, "every variant of a model is charged its model FLOPs"
    assert "top 3 kernels of fcn bf16+cl" in out and "| danet | naive |" in out, "the recipes' CUDA settings"
    saved = json.loads((tmp_path / "steps.json").read_text())
    assert saved["benchmark"] == "training_step" and len(saved["rows"]) == len(rows)
    assert saved["rows"][0]["flops"] == rows[0].flops and saved["profile"]


def test_a_failing_variant_is_a_failed_row_and_the_table_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    build = training_step.build

    def build_or_fail(model: str, variant: common.Variant, args: object) -> object:
        if variant.compile:
            raise RuntimeError("the compiler failed\nits long log")
        return build(model, variant, args)

    monkeypatch.setattr(training_step, "build", build_or_fail)
    argv = ["--device", "cpu", "--crop", "32", "--batch", "2", "--repeats", "1", "--warmup", "0", "--peak-size", "64"]
    argv += ["--models", "fcn", "danet", "--variants", "fp32+compile", "fp32", "--json", str(tmp_path / "s.json")]
    argv += ["--profile", "--profile-variant", "fp32+compile"]
    rows = training_step.main(argv)
    captured = capsys.readouterr()
    assert [(row.model, row.variant, row.measured.missing) for row in rows] == [
        ("fcn", "fp32+compile", "failed"),
        ("fcn", "fp32", None),
        ("danet", "fp32+compile", "failed"),
        ("danet", "fp32", None),
    ]
    assert rows[0].measured.error == "RuntimeError: the compiler failed" and rows[0].mfu is None
    assert rows[1].measured.ms > 0 and rows[3].mfu > 0
    assert "| fcn | fp32+compile | failed | failed | failed |" in captured.out
    assert (
        "Traceback" in captured.err and "fcn fp32+compile: failed (RuntimeError: the compiler failed)" in captured.err
    )
    assert "danet fp32: " in captured.err and " ms" in captured.err, "each result reaches the log as it is measured"
    saved = json.loads((tmp_path / "s.json").read_text())
    assert saved["rows"][2]["measured"]["error"] == "RuntimeError: the compiler failed"
    assert saved["profile"] == "failed: RuntimeError: the compiler failed", "a failed profile still writes the rows"
    with pytest.raises(SystemExit):
        training_step.parse_args(["--device", "cpu", "--profile-variant", "fp16"])
    assert "--profile-variant: " in capsys.readouterr().err
    with pytest.raises(SystemExit):
        inference.parse_args(["--device", "cpu", "--variants", "fp32", "fp16"])
    assert "argument --variants: variant 'fp16'" in capsys.readouterr().err


def test_inference_rows_of_a_variant_that_fails_say_so(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    build_network = inference.build_network

    def build_or_fail(model: str, variant: common.Variant, *args: object, **kwargs: object) -> object:
        if variant.compile:
            raise RuntimeError("the compiler failed")
        return build_network(model, variant, *args, **kwargs)

    monkeypatch.setattr(inference, "build_network", build_or_fail)
    argv = ["--device", "cpu", "--image-size", "32", "64", "--window", "32", "--stride", "16", "--scales", "0.75"]
    argv += ["--repeats", "1", "--warmup", "0", "--models", "fcn", "--variants", "fp32+compile", "fp32"]
    rows = inference.main(argv)
    out = capsys.readouterr().out
    assert [(row.variant, row.protocol, row.measured.missing) for row in rows] == [
        ("fp32+compile", "single", "failed"),
        ("fp32+compile", "ms_flip", "failed"),
        ("fp32", "single", None),
        ("fp32", "ms_flip", None),
    ]
    assert "| fcn | fp32+compile | single | failed | failed | failed | failed |" in out


def test_inference_benchmark_times_both_protocols(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["--device", "cpu", "--image-size", "32", "64", "--window", "32", "--stride", "16", "--scales", "0.75"]
    argv += ["--repeats", "1", "--warmup", "0", "--models", "fcn", "danet", "--variants", "fp32", "naive"]
    argv += ["--json", str(tmp_path / "inference.json")]
    rows = inference.main(argv)
    out = capsys.readouterr().out
    keys = [(row.model, row.variant, row.protocol) for row in rows]
    assert keys == [
        ("fcn", "fp32", "single"),
        ("fcn", "fp32", "ms_flip"),
        ("danet", "fp32", "single"),
        ("danet", "fp32", "ms_flip"),
        ("danet", "naive", "single"),
        ("danet", "naive", "ms_flip"),
    ]
    assert all(row.measured.ms > 0 and row.images_per_second > 0 for row in rows)
    assert "| danet | naive | single |" in out and "| n/a | n/a |" in out, "a CPU allocator keeps no peak"
    assert json.loads((tmp_path / "inference.json").read_text())["rows"][-1]["protocol"] == "ms_flip"


plot_benchmarks = load_script("plot_benchmarks")


def test_plot_draws_both_benchmarks_and_names_a_bad_file(tmp_path: Path) -> None:
    measured = {"ms": 50.0, "peak_mib": 2048.0, "oom": False}
    oom = {"ms": None, "peak_mib": None, "oom": True}
    failed = {"ms": None, "peak_mib": None, "oom": False, "error": "RuntimeError: the compiler failed"}
    steps = {
        "benchmark": "training_step",
        "device": "GPU X",
        "rows": [
            {"model": "danet", "variant": "bf16", "measured": measured, "images_per_second": 160.0, "mfu": 0.4},
            {"model": "danet", "variant": "fp32", "measured": oom, "images_per_second": None, "mfu": None},
            {"model": "danet", "variant": "compile", "measured": failed, "images_per_second": None, "mfu": None},
        ],
    }
    infer = {
        "benchmark": "inference",
        "device": "GPU X",
        "rows": [
            {"model": "fcn", "variant": "bf16", "protocol": "single", "measured": measured, "images_per_second": 20.0}
        ],
    }
    files = []
    for name, payload in (("steps.json", steps), ("inference.json", infer)):
        files.append(tmp_path / name)
        files[-1].write_text(json.dumps(payload))
    output = plot_benchmarks.main([*map(str, files), "-o", str(tmp_path / "plot.png")])
    assert output.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    rows = steps["rows"] + infer["rows"]
    assert [plot_benchmarks.missing(row) for row in rows[1:3]] == ["OOM", "failed"]
    assert plot_benchmarks.inference_note(infer["rows"][0]) == "2.0 GiB"
    (tmp_path / "other.json").write_text(json.dumps({"benchmark": "data_pipeline", "rows": []}))
    with pytest.raises(SystemExit, match=r"other\.json: field 'benchmark' is 'data_pipeline'"):
        plot_benchmarks.main([str(tmp_path / "other.json")])


gscnn_step = load_script("gscnn_step")


def test_gscnn_official_canny_is_opencv_of_the_normalised_tensor_cast_to_uint8() -> None:
    import cv2

    # A normalised value of -1.2 becomes 255 through NumPy's uint8 cast (wrap-around), 2.7 becomes 2: the
    # released code's Canny sees a step from 2 to 255 where the image had a mild one.
    images = torch.full((2, 3, 16, 16), 2.7)
    images[0, :, :, 8:] = -1.2
    edges = gscnn_step.official_canny(images)
    assert edges.shape == (2, 1, 16, 16) and edges.dtype == torch.float32
    host = np.full((16, 16, 3), 2, dtype=np.uint8)
    host[:, 8:] = 255
    torch.testing.assert_close(edges[0, 0], torch.from_numpy(cv2.Canny(host, 10, 100)).float())
    assert set(edges[0].unique().tolist()) == {0.0, 255.0} and edges[1].abs().sum() == 0


def test_gscnn_step_benchmark_times_both_canny_paths_and_the_memory_saving(tmp_path, capsys) -> None:
    argv = ["--device", "cpu", "--crop", "32", "--repeats", "1", "--warmup", "0", "--threads", "1"]
    result = gscnn_step.main([*argv, "--memory", "--json", str(tmp_path / "gscnn.json")])
    assert set(result["canny"]) == {"device", "official-cpu"}
    assert all(row["ms"] > 0 for row in result["canny"].values())
    assert result["memory_mib"]["stored"] > 0 and result["memory_mib"]["checkpointed"] >= 0
    out = capsys.readouterr().out
    assert "| device |" in out and "| official-cpu |" in out and "| checkpoint_shape_stream=True |" in out
    saved = json.loads((tmp_path / "gscnn.json").read_text())
    assert saved["benchmark"] == "gscnn_step" and saved["rows"][0]["canny"]["device"]["ms"] > 0


tnet_throughput = load_script("tnet_throughput")


def test_tnet_throughput_defaults_follow_the_device() -> None:
    cpu, cuda = (tnet_throughput.parse_args(["--device", name]) for name in ("cpu", "cuda"))
    assert (cpu.batch, cpu.image_size, cpu.locations) == (4, 896, [2, 1])
    assert (cuda.batch, cuda.image_size, cuda.dtype) == (64, 896, "fp32"), "the paper's timing batch"


def test_tnet_throughput_counts_tnet_as_its_extractor_passes_and_heads(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from torch.utils.flop_counter import FlopCounterMode

    argv = ["--device", "cpu", "--image-size", "224", "--batch", "1", "--repeats", "1", "--warmup", "0"]
    result = tnet_throughput.main([*argv, "--threads", "1", "--json", str(tmp_path / "tnet.json")])
    tnet, baseline = result["rows"]
    ratios = result["ratios"]

    def flops(module: torch.nn.Module, *inputs: torch.Tensor) -> int:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            module(*inputs)
        return counter.get_total_flops()

    # Module by module: 1 + 2 + 2 extractor passes at 224 px and fusions, the location module on the 1 + 2
    # inputs of the first two levels, the classifier on the mean (in eval mode, not on each feature).
    network = tnet_throughput.build(tnet_throughput.parse_args(argv), "tnet")
    image = torch.zeros(1, 3, 224, 224)
    grid, feature = network.extractor(image)
    extractor, classifier = flops(network.extractor, image), flops(network.classifier, feature)
    fusion = flops(network.fusion, feature, torch.zeros(1, network.fusion.encoding_channels))
    expected = 5 * (extractor + fusion) + 3 * flops(network.location, grid, feature) + classifier
    assert tnet.gflops == pytest.approx(expected / 1e9, rel=1e-12)
    assert baseline.gflops == pytest.approx((extractor + classifier) / 1e9, rel=1e-12), "EN-B0 on the 224 px image"
    assert (tnet.spec_gflops, baseline.spec_gflops) == (pytest.approx(5 * 0.786), 0.786)
    assert all(row.measured.ms > 0 and row.peak_mib > 0 for row in (tnet, baseline))
    assert ratios.speedup == pytest.approx(tnet.images_per_second / baseline.images_per_second)
    assert ratios.flops == pytest.approx(tnet.gflops / baseline.gflops)
    assert ratios.memory == pytest.approx(tnet.peak_mib / baseline.peak_mib)

    out = capsys.readouterr().out
    printed = {line.split("|")[1].strip(): line.split("|")[2:-1] for line in out.splitlines() if line.startswith("| ")}
    rows = [printed["TNet-fMoW, k = (2, 1)"], printed["EfficientNet-B0"]]
    for column, ratio in ((2, "FLOPs"), (6, "speed-up (images/s)"), (7, "peak memory")):
        quotient = float(rows[0][column]) / float(rows[1][column])  # GFLOPs, images/s, peak MiB
        assert float(printed[ratio][0].strip(" ×")) == pytest.approx(quotient, rel=5e-3), ratio
    saved = json.loads((tmp_path / "tnet.json").read_text())
    assert saved["benchmark"] == "tnet_throughput" and saved["ratios"]["flops"] == ratios.flops
    assert [row["model"] for row in saved["rows"]] == ["tnet", "efficientnet_b0"]


attention_cost = load_script("attention_cost")


def test_attention_cost_counts_each_block_and_gives_ratios_to_the_plain_network(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["--device", "cpu", "--models", "mobilenetv2", "--batch", "2", "--image-size", "32"]
    rows = attention_cost.main(
        [*argv, "--repeats", "1", "--warmup", "0", "--threads", "1", "--json", str(tmp_path / "c.json")]
    )
    by_block = {row.attention: row for row in rows}
    assert list(by_block) == ["none", "se", "eca", "cbam"]
    plain = by_block["none"]
    # The blocks' own parameters over MobileNetV2's 17 block widths (official placement; r = 16; ECA k 1 / 3).
    widths = [16, 24, 24, 32, 32, 32, 64, 64, 64, 64, 96, 96, 96, 160, 160, 160, 320]
    se = sum(2 * c * (c // 16) + c // 16 + c for c in widths)
    eca = sum(1 if c < 96 else 3 for c in widths)
    assert plain.params == 3_504_872
    assert (by_block["se"].params, by_block["eca"].params) == (plain.params + se, plain.params + eca)
    assert by_block["cbam"].params == plain.params + se + 17 * (2 * 7 * 7 + 2)
    assert by_block["eca"].macs - plain.macs == sum(c * (1 if c < 96 else 3) for c in widths)  # the 1-D convs
    assert all(row.inference > 0 and row.training > 0 and row.missing is None for row in rows)
    out = capsys.readouterr().out
    lines = {
        line.split("|")[2].strip(): line.split("|") for line in out.splitlines() if line.startswith("| MobileNetV2")
    }
    eca_cells = [cell.strip() for cell in lines["eca"]]
    assert float(eca_cells[8]) == pytest.approx(by_block["eca"].inference / plain.inference, abs=1e-3)
    assert float(eca_cells[10]) == pytest.approx(by_block["eca"].training / plain.training, abs=1e-3)
    assert [cell.strip() for cell in lines["none"]][4] == "1.0000"
    saved = json.loads((tmp_path / "c.json").read_text())
    assert saved["benchmark"] == "attention_cost" and [row["attention"] for row in saved["rows"]] == list(by_block)


def test_attention_cost_times_the_networks_interleaved_in_rotating_order(monkeypatch: pytest.MonkeyPatch) -> None:
    order: list[str] = []
    durations = {"a": iter([5.0, 1.0, 3.0]), "b": iter([2.0, 9.0, 4.0])}

    def fake_measure(call, device, warmup, repeats):  # one timed call, its duration taken from the script above
        assert (warmup, repeats) == (0, 1)
        name = call()
        return attention_cost.Measurement(next(durations[name]), None)

    monkeypatch.setattr(attention_cost, "measure", fake_measure)
    calls = {name: (lambda name=name: order.append(name) or name) for name in ("a", "b")}
    result = attention_cost.interleaved(calls, torch.device("cpu"), warmup=1, repeats=3)
    assert order == ["a", "b", "a", "b", "b", "a", "a", "b"]  # warm-up round, then a-first, b-first, a-first
    assert (result["a"].ms, result["b"].ms) == (3.0, 4.0)  # medians of (5, 1, 3) and (2, 9, 4)
