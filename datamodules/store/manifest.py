"""Checksum manifests: ``MANIFEST.tsv`` in a dataset folder, one line per file: path, size, SHA-256.

The format: a header line ``path<TAB>size<TAB>sha256``, then one line per file, its path relative to the folder
with ``/``. ``data prepare`` writes it once the folder is complete; ``data verify`` hashes every listed file again and
reports each one missing or changed (a folder that ships its own ``MANIFEST.tsv`` in this format is checked as is).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from datamodules.store.atomic import write_text_atomically
from datamodules.store.fetch import file_digest

MANIFEST = "MANIFEST.tsv"
HEADER = "path\tsize\tsha256"
# Files of a dataset folder that a manifest does not list: itself and the folder's notes.
UNLISTED = (MANIFEST, "README.md")


@dataclass(frozen=True)
class Entry:
    size: int
    sha256: str


def read_manifest(path: Path) -> dict[str, Entry]:
    """The entries of a manifest file, by relative path.

    Raises:
        ValueError: a line that is not ``path<TAB>size<TAB>sha256`` (naming the file and line).
    """
    entries = {}
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if (number == 1 and line == HEADER) or not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) != 3 or not fields[1].isdigit() or len(fields[2]) != 64:
            raise ValueError(f"{path}:{number}: expected 'path<TAB>size<TAB>sha256', got {line!r}.")
        entries[fields[0]] = Entry(int(fields[1]), fields[2])
    return entries


def dataset_files(folder: Path) -> list[str]:
    """Every file under ``folder`` (relative, ``/``-separated, sorted) but the manifest and README, and no hidden
    file or folder."""
    files = []
    for directory, subdirs, names in os.walk(folder):
        subdirs[:] = sorted(name for name in subdirs if not name.startswith("."))
        base = Path(directory).relative_to(folder)
        for name in names:
            relative = (base / name).as_posix()
            if not name.startswith(".") and relative not in UNLISTED:
                files.append(relative)
    return sorted(files)


def write_manifest(folder: Path, progress: bool = True) -> Path:
    """Hash every file of ``folder`` (:func:`dataset_files`) into ``folder/MANIFEST.tsv``, written atomically."""
    lines = [HEADER]
    for relative in tqdm(dataset_files(folder), desc=f"checksums of {folder.name}", unit="file", disable=not progress):
        path = folder / relative
        lines.append(f"{relative}\t{path.stat().st_size}\t{file_digest(path, 'sha256')}")
    target = folder / MANIFEST
    write_text_atomically(target, "\n".join(lines) + "\n")
    return target


def compare(folder: Path, entries: Mapping[str, Entry], progress: bool = True, what: str = "") -> list[str]:
    """Problems of ``folder`` against ``entries``: each listed file missing, of another size or another SHA-256."""
    problems = []
    for relative, entry in tqdm(
        entries.items(), desc=f"checking {what or folder.name}", unit="file", disable=not progress, leave=False
    ):
        path = folder / relative
        if not path.is_file():
            problems.append(f"missing: {path}")
        elif path.stat().st_size != entry.size:
            problems.append(f"corrupt: {path} has {path.stat().st_size:,} bytes, expected {entry.size:,}")
        elif file_digest(path, "sha256") != entry.sha256:
            problems.append(f"corrupt: {path} has another SHA-256 than {entry.sha256}")
    return problems


def size_on_disk(folder: Path, files: Iterable[str] | None = None) -> int:
    """Bytes of the files of ``folder``: the manifest's sizes when there is one, else a walk of the folder."""
    manifest = folder / MANIFEST
    if manifest.is_file():
        try:
            return sum(entry.size for entry in read_manifest(manifest).values())
        except ValueError:
            pass
    return sum((folder / relative).stat().st_size for relative in (files or dataset_files(folder)))
