"""Atomic file writes: a temp file in the target's folder, then os.replace, so a
reader (or a crash) never sees half a file and an old file survives a failure."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any


@contextmanager
def atomic_open(path: str | Path, mode: str = "wb") -> Iterator[IO[Any]]:
    """Open a temp file next to `path`; on success it replaces `path`, on error it is removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent)
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.fchmod(fd, 0o666 & ~umask)  # mkstemp creates 0600; give the file the usual permissions
        with os.fdopen(fd, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_atomic(path: str | Path, write: Callable[[IO[Any]], None], mode: str = "wb") -> Path:
    with atomic_open(path, mode) as f:
        write(f)
    return Path(path)


def write_json_atomic(path: str | Path, payload: Any, indent: int | None = None) -> Path:
    return write_atomic(path, lambda f: json.dump(payload, f, indent=indent), mode="w")
