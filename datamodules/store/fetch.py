"""Fetch one file over HTTP(S) into the download folder: progress bar, resume, checksum.

A download goes to ``<name>.part`` and is renamed to ``<name>`` only when the server has sent every byte; an
interrupted one resumes from where it stopped (an HTTP ``Range`` request; a server that ignores it sends the
whole file again). A finished file whose checksum differs from the expected one is deleted.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from tqdm import tqdm

CHUNK = 1 << 20
# Bytes per read from the network: what a dropped connection can lose of the last read (urllib3 discards it).
NETWORK_CHUNK = 1 << 16
ALGORITHMS = ("md5", "sha1", "sha256")


class DownloadError(RuntimeError):
    """A download that failed: the message says what happened, what was kept and what to do."""


class ChecksumError(DownloadError):
    """A file whose checksum is not the expected one."""


def file_digest(path: Path, algorithm: str, progress: bool = False) -> str:
    """The hex digest of ``path`` (``algorithm``: md5, sha1 or sha256), read in 1 MiB chunks."""
    digest = hashlib.new(algorithm)
    size = path.stat().st_size
    with (
        open(path, "rb") as file,
        tqdm(
            total=size, unit="B", unit_scale=True, desc=f"{algorithm} {path.name}", disable=not progress, leave=False
        ) as bar,
    ):
        while chunk := file.read(CHUNK):
            digest.update(chunk)
            bar.update(len(chunk))
    return digest.hexdigest()


def parse_checksum(checksum: str) -> tuple[str, str]:
    """``"md5:abc..."`` → ``("md5", "abc...")``; raises ValueError for another form."""
    algorithm, sep, value = checksum.partition(":")
    if not sep or algorithm not in ALGORITHMS or not value:
        raise ValueError(f"checksum {checksum!r}: expected '<{'|'.join(ALGORITHMS)}>:<hex digest>'.")
    return algorithm, value.lower()


def check_checksum(path: Path, checksum: str, source: str, progress: bool = True) -> None:
    """Raise :class:`ChecksumError` (after deleting ``path``) unless its digest is ``checksum`` (``"md5:..."``).

    ``source`` names where the expected value is published; it goes into the message.
    """
    algorithm, expected = parse_checksum(checksum)
    actual = file_digest(path, algorithm, progress)
    if actual != expected:
        path.unlink()
        raise ChecksumError(
            f"{path.name}: {algorithm} {actual}, expected {expected} ({source}). The file is corrupt or the server "
            "sent another file; it was deleted. Run the command again to download it again; if this repeats, the "
            "server's copy differs from the published one."
        )


def fetch(url: str, target: Path, progress: bool = True, timeout: float = 60.0) -> Path:
    """Download ``url`` to ``target`` (kept as is when it exists), resuming a ``<target>.part`` left by an earlier try.

    Raises:
        DownloadError: the server refused (HTTP status), could not be reached, or closed the connection before the
            end; the partial file is kept for the next try, and the message says how much of it there is.
    """
    import requests  # here: only a download needs it, every experiment imports this module

    if target.is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    part = target.with_name(target.name + ".part")
    have = part.stat().st_size if part.is_file() else 0
    headers = {"Range": f"bytes={have}-"} if have else {}
    try:
        with requests.get(url, headers=headers, stream=True, timeout=timeout) as response:
            if response.status_code == 416 and have:
                # Range past the end: the partial file already holds every byte.
                os.replace(part, target)
                return target
            response.raise_for_status()
            if have and response.status_code != 206:
                have = 0
            length = response.headers.get("Content-Length")
            total = have + int(length) if length is not None else None
            with (
                open(part, "ab" if have else "wb") as file,
                tqdm(
                    total=total, initial=have, unit="B", unit_scale=True, desc=target.name, disable=not progress
                ) as bar,
            ):
                for chunk in response.iter_content(NETWORK_CHUNK):
                    file.write(chunk)
                    bar.update(len(chunk))
    except requests.HTTPError as err:
        raise DownloadError(f"{url}: the server answered {err.response.status_code} {err.response.reason}.") from err
    except requests.RequestException as err:
        kept = part.stat().st_size if part.is_file() else 0
        where = (
            f"{kept:,} bytes are kept in {part}; run the same command again to resume"
            if kept
            else "run the same command again"
        )
        raise DownloadError(f"{url}: the download stopped ({type(err).__name__}: {err}); {where}.") from err
    except OSError as err:
        raise DownloadError(
            f"cannot write {part} ({err}); what was written is kept there. Free some space (or set another download "
            "folder with --download-dir) and run the command again to resume."
        ) from err
    received = part.stat().st_size
    if total is not None and received != total:
        raise DownloadError(
            f"{url}: the server sent {received:,} of {total:,} bytes. The partial file {part} is kept; run the same "
            "command again to resume."
        )
    os.replace(part, target)
    return target
