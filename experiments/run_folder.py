"""Guards of a run folder (``runs/<experiment>/<variant>/<run-id>/``): one command at a time, no partial files,
no unreadable checkpoint resumed.

- :func:`hold_run_folder` locks the folder (``run.lock``, an OS-level ``flock`` through ``filelock``) for the
  length of a run and records who holds it (pid, host, start time, command), so that a second command names
  the holder. The OS drops the lock of a killed process: a stale ``run.lock`` never blocks.
- :func:`atomic_temp_file` names the temporary files that checkpoints, records and logs are written to
  before their rename; :func:`remove_partial_files` removes those a killed process left behind.
- :func:`checkpoint_problem` tells a truncated or corrupt checkpoint before it is resumed, and
  :func:`move_aside` keeps a file that a restart replaces under a new name.

Only the standard library and ``filelock``: the CLI imports this module before torch.
"""

from __future__ import annotations

import json
import logging
import os
import re
import socket
import sys
import tempfile
import time
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO

from filelock import FileLock, Timeout

LOCK_FILE = "run.lock"
# The files of a run written through atomic_temp_file, each beside its own temporary files.
ATOMIC_FILES = ("metrics.json", "checkpoints/last.ckpt", "checkpoints/best.ckpt", "logs/metrics.csv")
# tempfile.mkstemp's names: prefix, 8 characters of [a-z0-9_], suffix.
_PARTIAL = re.compile(r"\.(?P<name>.+)\.[a-z0-9_]{8}\.tmp")

log = logging.getLogger(__name__)


class RunFolderBusyError(RuntimeError):
    """Another process holds the lock of the run folder."""


class CorruptCheckpointError(ValueError):
    """A checkpoint that cannot be read (truncated, corrupt): resuming from it would fail."""


def atomic_temp_file(path: Path) -> Path:
    """An empty new file beside ``path``, named ``.<name>.<8 random characters>.tmp``, to write and then rename
    onto ``path``; :func:`remove_partial_files` knows the pattern.

    Its permissions are those of a plainly created file (``0o666`` less the umask): ``mkstemp`` makes it
    readable by its owner only, which would lock the other users of a shared results store out.
    """
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    return Path(tmp)


@contextmanager
def atomic_text_file(path: Path, newline: str | None = None) -> Iterator[TextIO]:
    """A text file to write ``path`` through: written to :func:`atomic_temp_file`, flushed to disk and renamed
    onto ``path`` when the body ends, removed when it raises, so that ``path`` holds the old content or the new,
    never half of it. ``newline`` as in ``open`` (``""`` for the csv module)."""
    tmp = atomic_temp_file(path)
    try:
        with tmp.open("w", newline=newline) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def remove_partial_files(run_dir: Path) -> list[Path]:
    """Remove the temporary files a killed process left beside the run's atomically written files.

    Only names of :func:`atomic_temp_file`'s pattern for the files of :data:`ATOMIC_FILES`, only in
    ``run_dir``; call it with the run folder locked. Returns the removed paths.
    """
    removed = []
    for target in map(Path, ATOMIC_FILES):
        directory = run_dir / target.parent
        if not directory.is_dir():
            continue
        for path in sorted(directory.iterdir()):
            match = _PARTIAL.fullmatch(path.name)
            if match and match["name"] == target.name and path.is_file():
                path.unlink()
                removed.append(path)
    if removed:
        log.warning("Removed %d partial file(s) of a killed run: %s", len(removed), ", ".join(map(str, removed)))
    return removed


def checkpoint_problem(path: Path) -> str | None:
    """Why ``path`` is not a complete torch checkpoint (a zip archive with ``data.pkl``), or None when it is.

    Reads the file once and checks the CRC of every member, without unpickling it: a truncated file has
    no zip directory, a corrupt one fails a CRC.
    """
    size = path.stat().st_size
    if size == 0:
        return "empty file (0 bytes)"
    try:
        with zipfile.ZipFile(path) as archive:
            if not any(name == "data.pkl" or name.endswith("/data.pkl") for name in archive.namelist()):
                return f"a zip archive without data.pkl ({size} bytes), not a torch checkpoint"
            bad = archive.testzip()
    except zipfile.BadZipFile as err:
        return f"truncated zip or not a zip archive ({size} bytes: {err})"
    if bad is not None:
        return f"corrupt zip member {bad!r} (CRC mismatch)"
    return None


def move_aside(path: Path, reason: str) -> Path:
    """Rename ``path`` to ``<name>.<reason>-<YYYYmmdd-HHMMSS>`` (``-2``, ``-3``... when taken); returns the new path.

    Raises FileExistsError only if every such name is taken, which needs a hundred moves in one second.
    """
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for count in range(1, 101):
        target = path.with_name(f"{path.name}.{reason}-{stamp}" + (f"-{count}" if count > 1 else ""))
        if not target.exists():
            path.rename(target)
            log.warning("Moved %s aside to %s", path, target.name)
            return target
    raise FileExistsError(f"cannot move {path} aside: {target.name} and the 99 names before it exist.")


def _holder_record() -> bytes:
    return json.dumps(
        {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started": time.strftime("%Y-%m-%d %H:%M:%S %z"),
            "command": " ".join(sys.argv),
        }
    ).encode()


def _write_holder(fd: int) -> None:
    """Record this process in the lock file, through the descriptor that holds the lock."""
    os.ftruncate(fd, 0)
    os.pwrite(fd, _holder_record(), 0)


def _running_here(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def describe_holder(lock_file: Path) -> str:
    """Who holds ``lock_file``, from the record its holder wrote; for a lock the caller could not take.

    A record whose process is gone (same host) is not presented as the holder: the holder has just taken
    the lock and not written its record yet, or a process the recorded one started still holds it.
    """
    try:
        record = json.loads(lock_file.read_text())
        pid, host, started = int(record["pid"]), str(record["host"]), str(record["started"])
    except (OSError, ValueError, KeyError, TypeError):
        return "another process (it has not recorded itself yet)"
    if host == socket.gethostname() and not _running_here(pid):
        return f"another process (the last recorded holder, pid {pid}, is no longer running)"
    return f"pid {pid} on {host}, started {started} (command: {record.get('command') or '?'})"


@contextmanager
def hold_run_folder(run_dir: Path, wait: bool = False) -> Iterator[None]:
    """Hold ``run_dir``'s lock for the body; the folder is created when missing.

    Raises RunFolderBusyError naming the holder when another process holds it, unless ``wait``, which
    blocks until the holder ends. A killed holder's lock is released by the OS.
    """
    run_dir.mkdir(parents=True, exist_ok=True)
    lock_file = run_dir / LOCK_FILE
    descriptors: list[int] = []

    def acquired(fd: int) -> None:
        _write_holder(fd)
        descriptors.append(fd)

    lock = FileLock(lock_file, on_acquired=acquired)
    try:
        lock.acquire(timeout=0)
    except Timeout:
        holder = describe_holder(lock_file)
        if not wait:
            raise RunFolderBusyError(
                f"{run_dir} is in use by {holder}. Run the command again when it has ended, "
                "or with --wait (run_variant(..., wait=True)) to start then."
            ) from None
        log.warning("%s is in use by %s; waiting for it to end (--wait).", run_dir, holder)
        lock.acquire()
    try:
        yield
    finally:
        # An empty record: a released lock names nobody.
        os.ftruncate(descriptors[-1], 0)
        lock.release()
