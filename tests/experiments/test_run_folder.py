import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
import zipfile

import pytest
import torch

from experiments import run_folder
from experiments.run_folder import (
    LOCK_FILE,
    RunFolderBusyError,
    atomic_temp_file,
    checkpoint_problem,
    describe_holder,
    hold_run_folder,
    move_aside,
    remove_partial_files,
)

HOLD = """
import sys, time
from pathlib import Path
from experiments.run_folder import hold_run_folder
with hold_run_folder(Path(sys.argv[1])):
    print("holding", flush=True)
    time.sleep(120)
"""


def start_holder(run_dir):
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(run_dir)], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline() == "holding\n"
    return holder


def test_a_held_folder_names_its_holder_and_a_killed_holder_blocks_nobody(tmp_path):
    run_dir = tmp_path / "run"
    holder = start_holder(run_dir)
    try:
        record = json.loads((run_dir / LOCK_FILE).read_text())
        assert (record["pid"], record["host"]) == (holder.pid, socket.gethostname())
        expected = rf"{re.escape(str(run_dir))} is in use by pid {holder.pid} on {re.escape(socket.gethostname())}, "
        with (
            pytest.raises(RunFolderBusyError, match=expected + rf"started {re.escape(record['started'])}"),
            hold_run_folder(run_dir),
        ):
            pass
    finally:
        holder.kill()
        holder.wait()
    # The killed holder's record is still there; the lock is not.
    assert json.loads((run_dir / LOCK_FILE).read_text())["pid"] == holder.pid
    started = time.monotonic()
    with hold_run_folder(run_dir):
        assert json.loads((run_dir / LOCK_FILE).read_text())["pid"] == os.getpid()
    assert time.monotonic() - started < 1.0
    assert (run_dir / LOCK_FILE).read_text() == ""  # a released lock names nobody


def test_a_record_of_a_process_that_is_gone_is_not_shown_as_the_holder(tmp_path):
    lock_file = tmp_path / LOCK_FILE
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    lock_file.write_text(json.dumps({"pid": gone.pid, "host": socket.gethostname(), "started": "then"}))
    assert describe_holder(lock_file) == (
        f"another process (the last recorded holder, pid {gone.pid}, is no longer running)"
    )
    lock_file.write_text("")
    assert describe_holder(lock_file) == "another process (it has not recorded itself yet)"
    lock_file.write_text(json.dumps({"pid": 12, "host": "elsewhere", "started": "09:00", "command": "run x"}))
    assert describe_holder(lock_file) == "pid 12 on elsewhere, started 09:00 (command: run x)"


def test_wait_blocks_until_the_holder_releases(tmp_path):
    run_dir = tmp_path / "run"
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        with hold_run_folder(run_dir):
            held.set()
            release.wait(timeout=10)

    thread = threading.Thread(target=hold)
    thread.start()
    assert held.wait(timeout=10)
    with pytest.raises(RunFolderBusyError, match=rf"in use by pid {os.getpid()} .*--wait"), hold_run_folder(run_dir):
        pass
    threading.Timer(0.5, release.set).start()
    started = time.monotonic()
    with hold_run_folder(run_dir, wait=True):
        assert release.is_set()
        assert time.monotonic() - started >= 0.4
    thread.join()


def test_only_partial_files_of_our_own_pattern_are_removed(tmp_path):
    run_dir = tmp_path / "run"
    for folder in (run_dir / "checkpoints", run_dir / "logs"):
        folder.mkdir(parents=True)
    names = ("metrics.json", "checkpoints/last.ckpt", "checkpoints/best.ckpt", "logs/metrics.csv")
    ours = [atomic_temp_file(run_dir / name) for name in names]
    others = [
        run_dir / "checkpoints" / ".last.ckpt.notes.tmp",  # not mkstemp's 8 characters
        run_dir / "checkpoints" / ".epoch=1.ckpt.abcdefgh.tmp",  # another file's name
        run_dir / ".last.ckpt.abcdefgh.tmp",  # not beside last.ckpt
        run_dir / "checkpoints" / "last.ckpt.corrupt-20250101-000000",
        tmp_path / "other" / "checkpoints" / ".last.ckpt.abcdefgh.tmp",
    ]
    for path in others:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch()
    assert sorted(remove_partial_files(run_dir)) == sorted(ours)
    assert not any(path.exists() for path in ours) and all(path.exists() for path in others)
    assert remove_partial_files(tmp_path / "never-ran") == []


def test_checkpoint_problem_tells_truncated_empty_and_corrupt_files(tmp_path):
    path = tmp_path / "last.ckpt"
    torch.save({"state_dict": {"weight": torch.arange(1000.0)}, "epoch": 1}, path)
    assert checkpoint_problem(path) is None
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    assert re.fullmatch(rf"truncated zip or not a zip archive \({len(data) // 2} bytes: .*\)", checkpoint_problem(path))
    path.write_bytes(b"")
    assert checkpoint_problem(path) == "empty file (0 bytes)"
    flipped = bytearray(data)
    flipped[data.index(torch.arange(1000.0).numpy().tobytes()) + 40] ^= 0xFF  # inside the tensor's storage
    path.write_bytes(bytes(flipped))
    assert re.fullmatch(r"corrupt zip member '.*/data/0' \(CRC mismatch\)", checkpoint_problem(path))
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("notes.txt", "hello")
    assert checkpoint_problem(path).startswith("a zip archive without data.pkl")


def test_move_aside_keeps_every_earlier_file(tmp_path, monkeypatch):
    path = tmp_path / "last.ckpt"
    path.write_text("first")
    assert re.fullmatch(r"last\.ckpt\.corrupt-\d{8}-\d{6}", move_aside(path, "corrupt").name)
    monkeypatch.setattr(run_folder.time, "strftime", lambda fmt: "20250101-000000")  # two moves in one second
    moved = []
    for content in ("second", "third"):
        path.write_text(content)
        moved.append(move_aside(path, "restart"))
    assert not path.exists()
    assert [(p.name, p.read_text()) for p in moved] == [
        ("last.ckpt.restart-20250101-000000", "second"),
        ("last.ckpt.restart-20250101-000000-2", "third"),
    ]
