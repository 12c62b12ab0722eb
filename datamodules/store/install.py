"""``data download | prepare | verify`` of one dataset, and the dataset folder a recipe reads.

A dataset folder appears under the data root only complete: the downloaded archives are unpacked into a hidden
staging folder beside it (``<root>/.<folder>.partial``), converted there, checked (the paths the release must hold,
the DataModule's layout check and the published split counts), given its checksum manifest, and only then renamed
into place. A failure anywhere removes the staging folder, so the data root is left as it was; the archives stay in
the download folder (:func:`~datamodules.store.root.download_dir`), where a partial one resumes on the next try.
"""

from __future__ import annotations

import gzip
import hashlib
import lzma
import os
import shutil
import tarfile
import zipfile
import zlib
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from filelock import FileLock, Timeout
from torchvision.datasets.utils import extract_archive

from datamodules.base import cache_dir, image_header_size
from datamodules.imagenet import ImageNetDataModule
from datamodules.store.catalog import DATASETS, DatasetSpec, Source, spec_for_data
from datamodules.store.fetch import DownloadError, check_checksum, fetch
from datamodules.store.manifest import MANIFEST, compare, read_manifest, size_on_disk, write_manifest
from datamodules.store.root import data_root, data_root_origin, default_download_dir, download_dir

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


def command(action: str, spec: DatasetSpec, root: Path, downloads: Path | None = None) -> str:
    """The ``python -m experiments data`` command line of ``action`` on ``spec`` with these folders."""
    line = f"python -m experiments data {action} {spec.name} --data-root {root}"
    if downloads is not None and downloads != default_download_dir():
        line += f" --download-dir {downloads}"
    return line


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
            hint = (
                f" Without a root the run reads {data_root() / spec.folder} ({command('download', spec, data_root())} "
                "gets it there)."
                if spec is not None
                else ""
            )
            raise DatasetNotFoundError(
                f"the {data} folder {folder} (the recipe's root, --set root=... or --root) does not exist.{hint}"
            )
        return folder
    if spec is None:
        raise ValueError(f"dataset {data!r} has no folder under the data root: give its folder with --set root=DIR.")
    top = data_root()
    folder = top / spec.folder
    if not folder.is_dir():
        get = (
            f"Get it with:\n  {command('download', spec, top)}"
            if spec.manual is None
            else f"It is downloaded by hand; this says what to fetch and where:\n  {command('download', spec, top)}"
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
        return [f"{folder} does not exist; {command('download', spec, folder.parent)}"]
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

# What a damaged archive raises while it is unpacked (gzip's BadGzipFile is an OSError; other OSErrors, a full disk
# say, are no fault of the archive).
CORRUPT_ARCHIVE = (tarfile.TarError, zipfile.BadZipFile, gzip.BadGzipFile, lzma.LZMAError, zlib.error, EOFError)


def _redo(spec: DatasetSpec, files: Mapping[str, Path]) -> str:
    """What to do with downloaded ``files`` that do not make the dataset."""
    named = ", ".join(str(path) for path in files.values())
    if spec.manual is not None:
        return f"Replace {named} with the published files ({spec.title}: `data download {spec.name}` says which)."
    return f"Delete {named} and run the command again to download them again."


def _extract(source: Source, archive: Path, stage: Path) -> None:
    """Unpack ``archive`` into ``stage / source.unpack`` (only ``source.subfolder`` of it, when set)."""
    target = stage / (source.unpack or ".")
    scratch = stage / f".unpack-{archive.name}"
    try:
        extract_archive(str(archive), str(scratch))
    except CORRUPT_ARCHIVE as err:
        archive.unlink(missing_ok=True)
        raise DatasetError(
            f"{archive} is not a complete archive ({type(err).__name__}: {err}); it was deleted, nothing was "
            "installed. Run the command again to download it again (a file downloaded by hand: put a good copy back)."
        ) from err
    except OSError as err:
        raise DatasetError(f"cannot unpack {archive} ({err}); the archive is kept, nothing was installed.") from err
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
        try:
            spec.install(stage, files, progress)
        except RuntimeError as err:
            # torchvision's ImageNet parsers raise RuntimeError for an archive whose MD5 is not the published one.
            raise DatasetError(f"{spec.name}: {err} Nothing was installed. {_redo(spec, files)}") from err
        return
    for source in spec.sources:
        if source.unpack is None:
            destination = stage / (source.place or source.filename)
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(files[source.filename], destination)
        else:
            _extract(source, files[source.filename], stage)


def _convert_and_check(spec: DatasetSpec, folder: Path, progress: bool) -> list[str]:
    """Run ``spec``'s conversion in ``folder`` (idempotent), then :func:`layout_problems`; a conversion that cannot
    run is a problem too."""
    if spec.convert is not None:
        try:
            spec.convert(folder, progress)
        except (FileNotFoundError, ValueError) as err:
            return [f"the conversion stopped: {err}"]
    return layout_problems(spec, folder)


def content_problems(spec: DatasetSpec, folder: Path, progress: bool = True) -> list[str]:
    """The image / label files that are unreadable or of mismatched sizes, and the files that differ from the
    dataset's reference checksums."""
    problems = file_problems(spec, folder)
    if spec.reference_manifest is not None:
        problems += compare(folder, read_manifest(spec.reference_manifest), progress, "reference checksums")
    return problems


def install(spec: DatasetSpec, files: Mapping[str, Path], root: Path, progress: bool = True, say: Say = print) -> Path:
    """Unpack ``files`` (by file name) into ``root / spec.folder`` through a staging folder: convert, check the
    layout, the counts, every file and the reference checksums, write the manifest, then rename. Raises DatasetError,
    with the data root left as it was (a data root this call created is removed again), when a check fails.
    Call it holding :func:`working_on`."""
    folder = root / spec.folder
    stage = root / f".{spec.folder}.partial"
    created = [path for path in (root, *root.parents) if not path.exists()]
    try:
        if stage.exists():
            shutil.rmtree(stage)  # a killed earlier attempt's: working_on keeps out a running one
        stage.mkdir(parents=True)
    except OSError as err:
        raise DatasetError(f"cannot create {stage} in the data root {root}: {err}") from err
    try:
        say(f"unpacking into {stage}")
        _unpack(spec, files, stage, progress)
        missing = [path for path in spec.required if not (stage / path).exists()]
        if missing:
            raise DatasetError(
                f"the downloaded files of {spec.name} lack {', '.join(missing)}: not the published release. Nothing "
                f"was installed. {_redo(spec, files)}"
            )
        problems = _convert_and_check(spec, stage, progress) or content_problems(spec, stage, progress)
        if problems:
            shown = "; ".join(problems[:5]) + (f"; and {len(problems) - 5} more" if len(problems) > 5 else "")
            raise DatasetError(
                f"{spec.name} is not the published release after unpacking: {shown}. Nothing was installed. "
                f"{_redo(spec, files)}"
            )
        write_manifest(stage, progress)
        if folder.exists():
            raise DatasetError(f"{folder} appeared while {spec.name} was being installed; nothing was installed.")
        os.replace(stage, folder)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        for path in created:
            try:
                path.rmdir()
            except OSError:
                break
        raise
    return folder


def _checked(source: Source, path: Path, progress: bool) -> Path:
    if source.checksum is not None:
        check_checksum(path, source.checksum, source.checksum_source, progress)
    return path


@contextmanager
def working_on(spec: DatasetSpec, root: Path, say: Say = print) -> Iterator[None]:
    """Hold the lock of ``spec``'s folder under ``root`` (one ``download`` / ``prepare`` at a time per folder; the
    lock file is in the user's cache folder, not in the data root). Says so when it waits for another command."""
    digest = hashlib.sha256(str((root / spec.folder).absolute()).encode()).hexdigest()[:16]
    path = cache_dir() / "locks" / f"{spec.name}-{digest}.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(path)
    try:
        lock.acquire(timeout=0)
    except Timeout:
        say(f"another command is downloading or preparing {spec.name} in {root}; waiting for it to end")
        lock.acquire()
    try:
        yield
    finally:
        lock.release()


def download(
    spec: DatasetSpec, root: Path | None = None, downloads: Path | None = None, progress: bool = True, say: Say = print
) -> Path | None:
    """``data download``: fetch, check, install (see :func:`install`) and verify ``spec``; for a dataset behind a
    login, say what to fetch and return None. A dataset already under the root goes to :func:`prepare` (which does
    nothing to a valid one).

    Raises:
        DownloadError, ChecksumError: a file that could not be fetched or is not the published one.
        DatasetError: files that do not make the published dataset, or a folder in the way.
    """
    root = root or data_root()
    downloads = downloads or download_dir()
    folder = root / spec.folder
    if spec.manual is not None:
        say(spec.manual.format(folder=folder))
        then = command("prepare", spec, root, downloads)
        say(f"Put the files in {downloads}, then run:\n  {then}" if spec.sources else f"Then run:\n  {then}")
        return None
    with working_on(spec, root, say):
        if folder.is_dir():
            if not all((folder / path).exists() for path in spec.required):
                raise DatasetError(
                    f"{folder} exists but is not {spec.title} (it lacks "
                    f"{', '.join(path for path in spec.required if not (folder / path).exists())}). Move it aside "
                    "and run the command again to download the published release."
                )
            return _prepare_existing(spec, folder, root, progress, say)
        try:
            downloads.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise DatasetError(f"cannot create the download folder {downloads}: {err}") from err
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
    with working_on(spec, root, say):
        if folder.is_dir():
            return _prepare_existing(spec, folder, root, progress, say)
        if not spec.sources:
            raise DatasetError(f"{folder} does not exist. {spec.manual.format(folder=folder)}")
        files = {source.filename: downloads / source.filename for source in spec.sources}
        missing = [name for name, path in files.items() if not path.is_file()]
        if missing:
            how = spec.manual.format(folder=folder) if spec.manual else f"Run: {command('download', spec, root)}"
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


def _prepare_existing(spec: DatasetSpec, folder: Path, root: Path, progress: bool, say: Say) -> Path:
    """:func:`prepare` of a folder already under the root: convert in place, check, write the manifest if missing."""
    problems = _convert_and_check(spec, folder, progress)
    if problems:
        raise DatasetError(
            f"{folder} is not the complete {spec.title}: {'; '.join(problems)}. Complete it, or move it aside and run "
            f"`{command('download', spec, root)}` to get the published release."
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
