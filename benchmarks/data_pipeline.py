"""Can each DataModule's training loader keep up with an FCN's training step?

For every benchmark DataModule (on fixture trees of Cityscapes-sized images written to a temporary folder
by ``benchmarks/fixtures.py``, on the real CamVid (``camvid`` under the data root) when it is there, and on the
synthetic scenes) the script builds the DataModule with its default training recipe, times ``--batches``
training batches after ``--warmup`` ones, and compares the images/s with those of ``training_step.py``'s step
(forward, cross-entropy on the main and auxiliary outputs, backward, SGD step) of a dilated FCN at the same crop
size on ``--device``, in the recipes' speed settings on CUDA (bf16 autocast, channels_last). The model is the
``paper`` profile's ResNet-101 (``--backbone``), except for the real CamVid, which the ``small`` profile trains
on the much faster EfficientNet-Lite0 (``--small-backbone``). It prints a markdown table; "keeps up" means the
loader delivers at least as many images/s as the model consumes.

    python benchmarks/data_pipeline.py                  # the full benchmark on CUDA; the --quick sizes on a CPU
    python benchmarks/data_pipeline.py --quick          # a few small images and a tiny model, on any device
"""

from __future__ import annotations

import argparse
import itertools
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import lightning as L
import torch
from torch.utils.data import DataLoader

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:  # run as `python benchmarks/data_pipeline.py`: make the packages importable
    sys.path.insert(0, str(REPO_ROOT))

from benchmarks.common import Variant, fill_device_defaults, measure, pair, print_header  # noqa: E402
from benchmarks.fixtures import write_tree  # noqa: E402
from benchmarks.training_step import build, training_step  # noqa: E402
from datamodules import (  # noqa: E402
    CamVidDataModule,
    CityscapesDataModule,
    CocoStuff10kDataModule,
    PascalContext59DataModule,
    SegmentationDataModule,
    SyntheticSegmentationDataModule,
    VOCAugDataModule,
)
from datamodules.store.root import data_root  # noqa: E402

REAL_CAMVID = data_root() / "camvid"

# name → (DataModule, fixture layout of benchmarks/fixtures.py)
FIXTURE_DATASETS: dict[str, tuple[type[SegmentationDataModule], str]] = {
    "cityscapes": (CityscapesDataModule, "cityscapes"),
    "voc": (VOCAugDataModule, "voc"),
    "pascal_context_59": (PascalContext59DataModule, "pascal_context"),
    "coco_stuff_10k": (CocoStuff10kDataModule, "coco_stuff_10k"),
    "camvid": (CamVidDataModule, "camvid"),
}
DATASETS = (*FIXTURE_DATASETS, "camvid_real", "synthetic")

# Settings left unset on the command line: FULL on CUDA; QUICK, a check that runs in seconds, on a CPU (which cannot
# hold a ResNet-101 step at 768×768, batch 8) and with --quick anywhere.
FULL = dict(
    height=1024,
    width=2048,
    num_images=16,
    batch_size=8,
    batches=20,
    warmup=3,
    model_steps=10,
    model_warmup=3,
    backbone="resnet101",
    small_backbone="tf_efficientnet_lite0",
)
QUICK = dict(
    height=64,
    width=128,
    num_images=2,
    batch_size=1,
    batches=2,
    warmup=1,
    model_steps=1,
    model_warmup=0,
    backbone="test_resnet",
    small_backbone="test_resnet",
)


@dataclass
class Result:
    """One row of the table; ``model_ips`` is ``None`` when the model step ran out of memory."""

    dataset: str
    image_size: str
    crop: tuple[int, int]
    model: str
    workers: int
    loader_ips: float
    model_ips: float | None


def loader_throughput(loader: DataLoader, warmup: int, batches: int) -> float:
    """Training images/s of ``batches`` batches after ``warmup`` ones, cycling over epochs as needed.

    The wall time of the whole run of ``batches`` batches is measured, so worker start-up (during the
    warm-up) is excluded but every stall of the pipeline counts.
    """
    if len(loader) == 0:
        raise ValueError("the training loader yields no batch: the dataset is smaller than one batch.")
    stream = itertools.chain.from_iterable(itertools.repeat(loader))
    for _ in range(warmup):
        next(stream)
    images = 0
    start = time.perf_counter()
    for _ in range(batches):
        images += next(stream)[0].shape[0]
    return images / (time.perf_counter() - start)


def shut_down_workers(loader: DataLoader) -> None:
    """End the persistent worker processes of ``loader`` now rather than at garbage collection."""
    iterator = getattr(loader, "_iterator", None)
    if iterator is not None and hasattr(iterator, "_shutdown_workers"):
        iterator._shutdown_workers()
    loader._iterator = None


def model_throughput(
    backbone: str, num_classes: int, crop: tuple[int, int], batch_size: int, warmup: int, steps: int, device: str
) -> float | None:
    """Training images/s of an FCN (output stride 8, auxiliary head) on a random batch; ``None`` on OOM.

    The step of ``training_step.py`` (its network, loss and SGD update), in bf16 autocast with channels_last and
    ``cudnn.benchmark`` on CUDA, fp32 elsewhere: batch size over the median step time of ``steps`` steps after
    ``warmup`` ones, so that this table's model figure and the training-step table's agree.
    """
    cuda = torch.device(device).type == "cuda"
    torch.backends.cudnn.benchmark = cuda
    variant = Variant.parse("bf16+cl" if cuda else "fp32")
    settings = argparse.Namespace(
        backbone=backbone, num_classes=num_classes, crop=crop, batch=batch_size, device=device
    )
    network, module = build("fcn", variant, settings)
    measured = measure(training_step(network, module, variant, settings), torch.device(device), warmup, steps)
    return None if measured.oom else 1000 * batch_size / measured.ms


def datamodules(
    names: Sequence[str], fixtures: Path, args: argparse.Namespace
) -> Iterator[tuple[str, str, L.LightningDataModule]]:
    """``(name, image size, DataModule)`` of each dataset to time, writing its fixture tree first."""
    options = {"batch_size": args.batch_size} | ({} if args.workers is None else {"num_workers": args.workers})
    for name in names:
        if name in FIXTURE_DATASETS:
            datamodule, layout = FIXTURE_DATASETS[name]
            print(f"writing {args.num_images} {args.height}x{args.width} images of {name} ...", file=sys.stderr)
            root = write_tree(layout, fixtures / name, args.num_images, args.height, args.width)
            yield name, f"{args.height}×{args.width}", datamodule(root, **options)
        elif name == "camvid_real":
            if args.camvid_root.is_dir():
                yield name, "360×480 (real)", CamVidDataModule(args.camvid_root, **options)
            else:
                print(f"skipping camvid_real: {args.camvid_root} not found", file=sys.stderr)
        else:
            synthetic = SyntheticSegmentationDataModule(**options)
            height, width = synthetic.image_size
            yield name, f"{height}×{width} (rendered)", synthetic


def crop_of(datamodule: L.LightningDataModule) -> tuple[int, int]:
    """The training crop: the crop size, or the image size of the synthetic scenes (not cropped)."""
    if isinstance(datamodule, SyntheticSegmentationDataModule):
        return pair(datamodule.image_size)
    return pair(datamodule.crop_size)


def run(args: argparse.Namespace) -> list[Result]:
    """Time every selected DataModule's loader and the model step at each distinct crop size.

    The model of a crop size has the classes of the first dataset with that crop: PASCAL Context 59 reuses
    VOC's 21-class step at 480×480. The number of classes does change the step time somewhat (the logits are
    upsampled to the crop), so that row's model figure is an estimate.
    """
    results = []
    model_ips: dict[tuple[str, tuple[int, int]], float | None] = {}
    with tempfile.TemporaryDirectory(prefix="data_pipeline_") as fixtures:
        for name, image_size, datamodule in datamodules(args.datasets, Path(fixtures), args):
            datamodule.setup("fit")
            loader = datamodule.train_dataloader()
            print(f"timing the {name} loader ({datamodule.num_workers} workers) ...", file=sys.stderr)
            try:
                loader_ips = loader_throughput(loader, args.warmup, args.batches)
            finally:
                shut_down_workers(loader)
            crop = crop_of(datamodule)
            backbone = args.small_backbone if name == "camvid_real" else args.backbone
            if (backbone, crop) not in model_ips:
                print(f"timing the {backbone} FCN step at {crop[0]}x{crop[1]} ...", file=sys.stderr)
                model_ips[backbone, crop] = model_throughput(
                    backbone,
                    datamodule.num_classes,
                    crop,
                    args.batch_size,
                    args.model_warmup,
                    args.model_steps,
                    args.device,
                )
                if torch.device(args.device).type == "cuda":
                    torch.cuda.empty_cache()
            results.append(
                Result(name, image_size, crop, backbone, datamodule.num_workers, loader_ips, model_ips[backbone, crop])
            )
    return results


def table(results: Sequence[Result]) -> str:
    """The results as a markdown table."""
    lines = [
        "| dataset | image size | crop | model | workers | loader img/s | model img/s | loader/model | keeps up |",
        "|---|---|---|---|---:|---:|---:|---:|---|",
    ]
    for r in results:
        model_ips = "OOM" if r.model_ips is None else f"{r.model_ips:.1f}"
        ratio = "n/a" if r.model_ips is None else f"{r.loader_ips / r.model_ips:.2f}"
        keeps_up = "n/a" if r.model_ips is None else ("yes" if r.loader_ips >= r.model_ips else "no")
        lines.append(
            f"| {r.dataset} | {r.image_size} | {r.crop[0]}×{r.crop[1]} | {r.model} | {r.workers} "
            f"| {r.loader_ips:.1f} | {model_ips} | {ratio} | {keeps_up} |"
        )
    return "\n".join(lines)


def defaults_of(key: str) -> str:
    """A setting's two defaults, for its help."""
    return f"(CUDA default {FULL[key]}, CPU {QUICK[key]})"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--quick", action="store_true", help="few small images, test_resnet, 1-2 batches (the CPU default) on CUDA too"
    )
    parser.add_argument("--datasets", nargs="+", choices=DATASETS, default=list(DATASETS), help="what to time")
    parser.add_argument("--height", type=int, help=f"fixture image height {defaults_of('height')}")
    parser.add_argument("--width", type=int, help=f"fixture image width {defaults_of('width')}")
    parser.add_argument("--num-images", type=int, help=f"training images per fixture tree {defaults_of('num_images')}")
    parser.add_argument("--batch-size", type=int, help=f"training batch size {defaults_of('batch_size')}")
    parser.add_argument("--workers", type=int, help="loader processes (default: each DataModule's own default)")
    parser.add_argument("--batches", type=int, help=f"timed loader batches {defaults_of('batches')}")
    parser.add_argument("--warmup", type=int, help=f"untimed loader batches first {defaults_of('warmup')}")
    parser.add_argument("--model-steps", type=int, help=f"timed model steps {defaults_of('model_steps')}")
    parser.add_argument("--model-warmup", type=int, help=f"untimed model steps first {defaults_of('model_warmup')}")
    parser.add_argument("--backbone", help=f"timm backbone of the FCN {defaults_of('backbone')}")
    parser.add_argument(
        "--small-backbone", help=f"backbone of the FCN on the real CamVid {defaults_of('small_backbone')}"
    )
    parser.add_argument(
        "--camvid-root",
        type=Path,
        default=REAL_CAMVID,
        help="the real CamVid (default: camvid under the data root, %(default)s)",
    )
    parser.add_argument(
        "--device", default="cuda" if torch.cuda.is_available() else "cpu", help="model device (default: %(default)s)"
    )
    args = parser.parse_args(argv)
    fill_device_defaults(args, QUICK if args.quick else FULL, QUICK)
    if args.num_images < args.batch_size:
        parser.error(f"--num-images ({args.num_images}) must be at least --batch-size ({args.batch_size}).")
    if min(args.batches, args.model_steps) < 1 or min(args.warmup, args.model_warmup) < 0:
        parser.error("--batches and --model-steps must be >= 1, --warmup and --model-warmup >= 0.")
    return args


def main(argv: Sequence[str] | None = None) -> list[Result]:
    """Run the benchmark and print its settings and table; return the rows."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    results = run(args)
    print_header(
        "data_pipeline.py",
        argv,
        torch.device(args.device),
        f"FCN {args.backbone} ({args.small_backbone} on the real CamVid), output stride 8, aux head; "
        f"batch size {args.batch_size}",
        f"loader: {args.batches} batches after {args.warmup}; "
        f"model: median of {args.model_steps} steps after {args.model_warmup}",
    )
    print(table(results))
    return results


if __name__ == "__main__":
    main()
