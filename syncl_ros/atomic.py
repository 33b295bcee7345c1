"""Atomic file writes: a temp file in the target's folder, then os.replace, so a
reader (or a crash) never sees half a file and an old file survives a failure.

Temp names carry their writer (``.NAME.RANDOM.PID@HOST.partial``): a process
killed with SIGKILL cannot clean up after itself, so the next writer into the
folder removes the temp files and folders whose writer is gone
(`remove_stale_partials`), and never those of a live one.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import socket
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

LOG = logging.getLogger("syncl_ros")
PARTIAL = ".partial"
_OWNER = re.compile(r"\.(\d+)@([^/]*)\.partial$")


def _owner_suffix() -> str:
    return f".{os.getpid()}@{socket.gethostname()}{PARTIAL}"


def temp_dir(target: str | Path) -> Path:
    """A new, empty folder next to `target` (same file system) that `remove_stale_partials` knows."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=_owner_suffix(), dir=target.parent))


@contextmanager
def atomic_open(path: str | Path, mode: str = "wb") -> Iterator[IO[Any]]:
    """Open a temp file next to `path`; on success it replaces `path`, on error it is removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=_owner_suffix(), dir=path.parent)
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


def replace_dir(src: Path, dst: Path) -> None:
    """Move the finished folder `src` to `dst`, replacing what is there.

    The old `dst` is first renamed aside (atomic), so a kill at any point leaves
    either the old folder or the new one at `dst`, never a half-deleted one;
    what was set aside is a stale partial for the next run to remove.
    """
    trash = None
    if dst.exists() or dst.is_symlink():
        trash = temp_dir(dst)
        dst.rename(trash / dst.name)
    src.rename(dst)
    if trash is not None:
        shutil.rmtree(trash)


def _writer_gone(name: str) -> bool:
    match = _OWNER.search(name)
    if match is None or match.group(2) != socket.gethostname():
        return False  # not ours to judge: another naming, or a writer on another machine
    pid = int(match.group(1))
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, under another user
        return False
    return False


def remove_stale_partials(folder: str | Path) -> list[Path]:
    """Remove the temp files and folders in `folder` whose writer process no longer runs."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    stale = [p for p in folder.iterdir() if p.name.endswith(PARTIAL) and _writer_gone(p.name)]
    for path in stale:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
    if stale:
        LOG.warning(
            "removed %d temporary file(s) an interrupted run left in %s: %s",
            len(stale),
            folder,
            ", ".join(p.name for p in stale),
        )
    return stale
