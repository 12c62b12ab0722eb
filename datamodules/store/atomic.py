"""Files written whole or not at all: a hidden temporary file beside the target, then a rename."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO


def write_atomically(target: Path, write: Callable[[BinaryIO], object]) -> None:
    """``write(binary file)`` into ``.<name>.<random>.tmp`` beside ``target``, then rename it onto ``target``; a
    killed or failed write leaves ``target`` as it was (and no temporary file after an exception)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as file:
            write(file)
        os.replace(tmp, target)
    finally:
        Path(tmp).unlink(missing_ok=True)


def write_text_atomically(target: Path, text: str) -> None:
    """:func:`write_atomically` of ``text`` (UTF-8)."""
    write_atomically(target, lambda file: file.write(text.encode()))
