"""Atomic file replacement: write a temporary file in the same folder, flush and fsync it, then
rename it over the target. A crash at any moment leaves either the old file or the new one,
never a part of one."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from typing import BinaryIO


@contextlib.contextmanager
def atomic_file(path: str, overwrite: bool = True) -> Iterator[BinaryIO]:
    """A file to write `path`'s new content into; it replaces `path` in one step when the block
    ends, and is removed (leaving `path` as it was) when the block raises."""
    if not overwrite and os.path.exists(path):
        raise FileExistsError(f"{path} exists and `overwrite=False`.")
    folder = os.path.dirname(os.path.abspath(path))
    handle, temporary = tempfile.mkstemp(
        prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=folder
    )
    try:
        with os.fdopen(handle, "w+b") as file:
            yield file
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    _sync_folder(folder)


def _sync_folder(folder: str) -> None:
    """Makes the rename itself durable (POSIX); a no-op where folders cannot be opened."""
    try:
        handle = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(handle)
    except OSError:
        pass
    finally:
        os.close(handle)
