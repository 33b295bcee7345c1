"""Atomic writes keep the old file on failure and leave no temp files behind."""

import json
import stat
from pathlib import Path
from typing import IO

import pytest

from syncl_ros.atomic import write_atomic, write_json_atomic


def test_replaces_file_with_usual_permissions(tmp_path: Path) -> None:
    target = write_json_atomic(tmp_path / "sub" / "r.json", {"a": 1})
    assert json.loads(target.read_text()) == {"a": 1}
    assert stat.S_IMODE(target.stat().st_mode) & 0o044  # readable by others, unlike mkstemp's 0600
    write_json_atomic(target, {"a": 2})
    assert json.loads(target.read_text()) == {"a": 2}
    assert [p.name for p in target.parent.iterdir()] == ["r.json"]


def test_failure_keeps_old_content_and_removes_temp(tmp_path: Path) -> None:
    target = tmp_path / "m.bin"
    target.write_bytes(b"old")

    def broken(f: IO[bytes]) -> None:
        f.write(b"half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        write_atomic(target, broken)
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["m.bin"]


def test_stale_partials_of_gone_writers_are_removed_and_live_ones_kept(tmp_path: Path) -> None:
    import socket
    import subprocess
    import sys

    from syncl_ros.atomic import remove_stale_partials, temp_dir

    host = socket.gethostname()
    gone = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        dead_file = tmp_path / f".last.pt.abc123.{int(gone.stdout)}@{host}.partial"
        dead_file.write_bytes(b"half")
        dead_dir = tmp_path / f".bag.xyz.{int(gone.stdout)}@{host}.partial"
        (dead_dir / "bag").mkdir(parents=True)
        kept = [
            tmp_path / f".engine.abc.{live.pid}@{host}.partial",  # a writer still at work
            tmp_path / f".engine.abc.{int(gone.stdout)}@another-host.partial",  # not ours to judge
            tmp_path / ".legacy.abc.partial",  # no owner in the name
            tmp_path / "last.pt",
        ]
        for path in kept:
            path.write_bytes(b"x")
        mine = temp_dir(tmp_path / "export")  # this process's own
        assert sorted(remove_stale_partials(tmp_path)) == sorted([dead_file, dead_dir])
        assert sorted(tmp_path.iterdir()) == sorted([*kept, mine])
    finally:
        live.kill()
        live.wait()


def test_replace_dir_swaps_a_whole_folder(tmp_path: Path) -> None:
    from syncl_ros.atomic import replace_dir, temp_dir

    target = tmp_path / "bag"
    for content in (b"old", b"new"):
        new = temp_dir(target)
        (new / "data").write_bytes(content)
        replace_dir(new, target)
        assert (target / "data").read_bytes() == content
        assert [p.name for p in tmp_path.iterdir()] == ["bag"]
