"""``data download | prepare | verify`` of one dataset, and the dataset folder a recipe reads.

A dataset folder appears under the data root only complete: the downloaded archives are unpacked into a hidden
staging folder beside it (``<root>/.<folder>.partial``), converted there, checked (the paths the release must hold,
the DataModule's layout check and the published split counts), given its checksum manifest, and only then renamed
into place. A failure anywhere removes the staging folder, so the data root is left as it was; the archives stay in
the download folder (:func:`~datamodules.store.root.download_dir`), where a partial one resumes on the next try.
"""

from __future__ import annotations

import os
import shutil
import tarfile
import zipfile
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from filelock import FileLock
from torchvision.datasets.utils import extract_archive

from datamodules.base import image_header_size
from datamodules.imagenet import ImageNetDataModule
from datamodules.store.catalog import DATASETS, DatasetSpec, Source, spec_for_data
from datamodules.store.fetch import DownloadError, check_checksum, fetch
from datamodules.store.manifest import MANIFEST, compare, read_manifest, size_on_disk, write_manifest
from datamodules.store.root import data_root, data_root_origin, download_dir

Say = Callable[[str], None]


class DatasetError(RuntimeError):
    """A dataset command that cannot go on: the message says what is wrong and what to do."""


class DatasetNotFoundError(FileNotFoundError):
    """A recipe's dataset folder that does not exist; the message names the data root and the command to get it."""


def get_spec(name: str) -> DatasetSpec:
    """The dataset ``name`` (``data list`` names them); a ValueError listing the known ones otherwise."""
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; known: {', '.join(DATASETS)}.")
    return DATASETS[name]


def download_command(spec: DatasetSpec, root: Path) -> str:
    return f"python -m experiments data download {spec.name} --data-root {root}"


def dataset_folder(data: str, root: str | os.PathLike | None = None) -> Path:
    """The folder of dataset ``data`` (a recipe's ``data`` value): ``root`` when given (``--set root=DIR``), else
    ``<data root>/<the dataset's folder>``.

    Raises:
        DatasetNotFoundError: the folder does not exist; the message names the data root, where it came from and
            the ``data download`` command that gets the dataset.
        ValueError: ``data`` names no dataset on disk and no ``root`` is given.
    """
    spec = spec_for_data(data)
    if root is not None:
        folder = Path(root).expanduser()
        if not folder.is_dir():
            hint = f" `{download_command(spec, folder.parent)}` fetches it there." if spec is not None else ""
            raise DatasetNotFoundError(f"--set root={root}: the {data} folder {folder} does not exist.{hint}")
        return folder
    if spec is None:
        raise ValueError(f"dataset {data!r} has no folder under the data root: give its folder with --set root=DIR.")
    top = data_root()
    folder = top / spec.folder
    if not folder.is_dir():
        get = (
            f"Get it with:\n  {download_command(spec, top)}"
            if spec.manual is None
            else f"It is downloaded by hand; this says what to fetch and where:\n  {download_command(spec, top)}"
        )
        raise DatasetNotFoundError(
            f"{spec.title} not found: no folder {folder} under the data root {top} ({data_root_origin()}). {get}"
        )
    return folder


# --- checks ---------------------------------------------------------------------------------------------------------


def split_counts(spec: DatasetSpec, folder: Path) -> dict[str, int]:
    """The samples per split that the DataModule finds in ``folder``, after its layout check (which raises
    FileNotFoundError / ValueError naming what is missing)."""
    datamodule = spec.datamodule(folder)
    if hasattr(datamodule, "list_samples"):
        if not folder.is_dir():
            raise datamodule.missing("the dataset folder", folder)
        return {split: len(datamodule.list_samples(split)) for split in spec.splits}
    if isinstance(datamodule, ImageNetDataModule):
        datamodule.check_layout()
        return {
            split: sum(
                sum(1 for entry in os.scandir(klass) if entry.is_file())
                for klass in os.scandir(folder / split)
                if klass.is_dir()
            )
            for split in spec.splits
        }
    return {key: len(listed) for key, listed in datamodule.check_layout(None).items()}


def count_problems(spec: DatasetSpec, counts: Mapping[str, int]) -> list[str]:
    return [
        f"split {split!r} has {counts.get(split, 0):,} samples; the published release has {expected:,}"
        for split, expected in spec.splits.items()
        if counts.get(split, 0) != expected
    ]


def layout_problems(spec: DatasetSpec, folder: Path) -> list[str]:
    """What keeps ``folder`` from being a complete ``spec`` dataset: a failed layout check, or split counts that
    are not the published ones. Empty when it is complete."""
    try:
        counts = split_counts(spec, folder)
    except (FileNotFoundError, ValueError) as err:
        return [str(err)]
    return count_problems(spec, counts)


@dataclass(frozen=True)
class Status:
    """A dataset under the data root: ``state`` is ``absent``, ``incomplete``, ``needs prepare`` or ``valid``."""

    state: str
    folder: Path
    detail: str = ""
    size: int | None = None


def status(spec: DatasetSpec, root: Path | None = None) -> Status:
    """What ``data list`` shows of ``spec`` under ``root`` (default: the data root). Opens no image."""
    folder = (root or data_root()) / spec.folder
    if not folder.is_dir():
        return Status("absent", folder)
    size = size_on_disk(folder)
    problems = layout_problems(spec, folder)
    if not problems:
        return Status("valid", folder, size=size)
    converted = all((folder / path).exists() for path in spec.converted)
    if spec.convert is not None and not converted and all((folder / path).exists() for path in spec.required):
        return Status("needs prepare", folder, f"run: python -m experiments data prepare {spec.name}", size)
    return Status("incomplete", folder, problems[0], size)


def file_problems(spec: DatasetSpec, folder: Path) -> list[str]:
    """Every image / label pair of a segmentation dataset whose headers are unreadable or whose sizes differ."""
    datamodule = spec.datamodule(folder)
    if not hasattr(datamodule, "list_samples"):
        return []
    problems = []
    for split in spec.splits:
        for image, label in datamodule.list_samples(split):
            try:
                image_size = image_header_size(image)
                label_size = datamodule.label_size(label)
            except (OSError, ValueError) as err:
                problems.append(f"corrupt: {err}")
                continue
            if image_size != label_size:
                problems.append(f"size mismatch: {image} is {image_size}, its label {label} is {label_size}")
    return problems


def verify(spec: DatasetSpec, root: Path | None = None, progress: bool = True, say: Say = print) -> list[str]:
    """``data verify``: the layout check, the split counts, every image / label header, the folder's
    ``MANIFEST.tsv`` and the dataset's reference checksums; returns every problem found (empty: verified)."""
    folder = (root or data_root()) / spec.folder
    if not folder.is_dir():
        return [f"{folder} does not exist; {download_command(spec, folder.parent)}"]
    try:
        counts = split_counts(spec, folder)
    except (FileNotFoundError, ValueError) as err:
        return [f"layout: {err}"]
    say("samples per split: " + ", ".join(f"{split} {count:,}" for split, count in counts.items()))
    problems = count_problems(spec, counts) + file_problems(spec, folder)
    manifest = folder / MANIFEST
    if manifest.is_file():
        entries = read_manifest(manifest)
        say(f"checking {len(entries):,} files against {manifest}")
        problems += compare(folder, entries, progress, MANIFEST)
    else:
        say(f"no {MANIFEST} in {folder}: `python -m experiments data prepare {spec.name}` writes one")
    if spec.reference_manifest is not None:
        entries = read_manifest(spec.reference_manifest)
        say(f"checking {len(entries):,} files against the published checksums ({spec.reference_manifest.name})")
        problems += compare(folder, entries, progress, "reference checksums")
    return problems


# --- download and prepare -------------------------------------------------------------------------------------------


def _extract(source: Source, archive: Path, stage: Path) -> None:
    """Unpack ``archive`` into ``stage / source.unpack`` (only ``source.subfolder`` of it, when set)."""
    target = stage / (source.unpack or ".")
    scratch = stage / f".unpack-{archive.name}"
    try:
        extract_archive(str(archive), str(scratch))
    except (tarfile.TarError, zipfile.BadZipFile, zlib.error, EOFError, OSError) as err:
        archive.unlink(missing_ok=True)
        raise DatasetError(
            f"{archive} is not a complete archive ({type(err).__name__}: {err}); it was deleted, nothing was "
            "installed. Run the command again to download it again."
        ) from err
    inner = scratch / source.subfolder if source.subfolder else scratch
    if not inner.is_dir():
        raise DatasetError(f"{archive} holds no folder {source.subfolder}; nothing was installed.")
    target.mkdir(parents=True, exist_ok=True)
    for entry in inner.iterdir():
        destination = target / entry.name
        if destination.exists():
            raise DatasetError(f"{archive} and another archive both hold {destination.relative_to(stage)}.")
        shutil.move(str(entry), str(destination))
    shutil.rmtree(scratch)


def _unpack(spec: DatasetSpec, files: Mapping[str, Path], stage: Path, progress: bool) -> None:
    if spec.install is not None:
        spec.install(stage, files, progress)
        return
    for source in spec.sources:
        if source.unpack is None:
            destination = stage / (source.place or source.filename)
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(files[source.filename], destination)
        else:
            _extract(source, files[source.filename], stage)


def _convert_and_check(spec: DatasetSpec, folder: Path, progress: bool) -> list[str]:
    """Run ``spec``'s conversion in ``folder`` (idempotent), then :func:`layout_problems`."""
    if spec.convert is not None:
        spec.convert(folder, progress)
    return layout_problems(spec, folder)


def install(spec: DatasetSpec, files: Mapping[str, Path], root: Path, progress: bool = True, say: Say = print) -> Path:
    """Unpack ``files`` (by file name) into ``root / spec.folder`` through a staging folder: convert, check, write
    the manifest, then rename. Raises DatasetError, with the data root left as it was, when a check fails."""
    folder = root / spec.folder
    stage = root / f".{spec.folder}.partial"
    if stage.exists():
        shutil.rmtree(stage)
    stage.mkdir(parents=True)
    try:
        say(f"unpacking into {stage}")
        _unpack(spec, files, stage, progress)
        missing = [path for path in spec.required if not (stage / path).exists()]
        if missing:
            raise DatasetError(
                f"the downloaded files of {spec.name} lack {', '.join(missing)}: not the published release "
                f"(files: {', '.join(str(path) for path in files.values())}). Nothing was installed; delete those "
                "files and run the command again to download them again."
            )
        problems = _convert_and_check(spec, stage, progress)
        if problems:
            raise DatasetError(
                f"{spec.name} is incomplete after unpacking: {'; '.join(problems)}. Nothing was installed; delete the "
                f"downloaded files ({', '.join(str(path) for path in files.values())}) and run the command again."
            )
        write_manifest(stage, progress)
        os.replace(stage, folder)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    return folder


def _checked(source: Source, path: Path, progress: bool) -> Path:
    if source.checksum is not None:
        check_checksum(path, source.checksum, source.checksum_source, progress)
    return path


def download(
    spec: DatasetSpec, root: Path | None = None, downloads: Path | None = None, progress: bool = True, say: Say = print
) -> Path | None:
    """``data download``: fetch, check, install (see :func:`install`) and verify ``spec``; for a dataset behind a
    login, say what to fetch and return None. A dataset already valid under the root is left alone.

    Raises:
        DownloadError, ChecksumError: a file that could not be fetched or is not the published one.
        DatasetError: files that do not make the published dataset, or a folder in the way.
    """
    root = root or data_root()
    downloads = downloads or download_dir()
    folder = root / spec.folder
    if spec.manual is not None:
        say(spec.manual.format(folder=folder))
        then = f"python -m experiments data prepare {spec.name} --data-root {root}"
        say(f"Put the files in {downloads} (or set ATTN_DOWNLOAD_DIR), then run: {then}" if spec.sources else then)
        return None
    downloads.mkdir(parents=True, exist_ok=True)
    with FileLock(downloads / f".{spec.name}.lock"):
        if folder.is_dir():
            return prepare(spec, root, downloads, progress, say)
        files = {}
        for source in spec.sources:
            say(f"{source.filename} ({source.size}) from {source.url}")
            files[source.filename] = _checked(
                source, fetch(source.url, downloads / source.filename, progress), progress
            )
        folder = install(spec, files, root, progress, say)
    say(f"{spec.title}: installed in {folder}")
    return folder


def prepare(
    spec: DatasetSpec, root: Path | None = None, downloads: Path | None = None, progress: bool = True, say: Say = print
) -> Path:
    """``data prepare``: install ``spec`` from archives already in the download folder when its folder is absent
    (the datasets behind a login), run its conversion (idempotent: what is done is skipped), check it and write its
    manifest when it has none.

    Raises:
        DatasetError: files missing, or a folder that is still not the published dataset after the conversion.
    """
    root = root or data_root()
    downloads = downloads or download_dir()
    folder = root / spec.folder
    if not folder.is_dir():
        if not spec.sources:
            raise DatasetError(f"{folder} does not exist. {spec.manual.format(folder=folder)}")
        files = {source.filename: downloads / source.filename for source in spec.sources}
        missing = [name for name, path in files.items() if not path.is_file()]
        if missing:
            how = spec.manual.format(folder=folder) if spec.manual else download_command(spec, root)
            raise DatasetError(
                f"{folder} does not exist and {', '.join(missing)} {'is' if len(missing) == 1 else 'are'} not in "
                f"{downloads}. {how}"
            )
        checked = {
            source.filename: files[source.filename]
            if spec.install
            else _checked(source, files[source.filename], progress)
            for source in spec.sources
        }
        folder = install(spec, checked, root, progress, say)
        say(f"{spec.title}: installed in {folder}")
        return folder
    problems = _convert_and_check(spec, folder, progress)
    if problems:
        raise DatasetError(
            f"{folder} is not the complete {spec.title}: {'; '.join(problems)}. Complete it, or move it aside and run "
            f"`{download_command(spec, root)}` to get the published release."
        )
    if (folder / MANIFEST).is_file():
        say(f"{spec.title}: {folder} is prepared and has its {MANIFEST}")
    elif os.access(folder, os.W_OK):
        write_manifest(folder, progress)
        say(f"{spec.title}: {folder} is prepared; checksums written to {folder / MANIFEST}")
    else:
        say(f"{spec.title}: {folder} is prepared; it is read-only, so no {MANIFEST} was written")
    return folder


__all__ = [
    "DatasetError",
    "DatasetNotFoundError",
    "DownloadError",
    "Status",
    "dataset_folder",
    "download",
    "get_spec",
    "layout_problems",
    "prepare",
    "status",
    "verify",
]
