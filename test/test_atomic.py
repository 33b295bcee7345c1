"""Atomic writes keep the old file on failure and leave no temp files behind."""

import json
import stat

import pytest

from syncl_ros.atomic import write_atomic, write_json_atomic


def test_replaces_file_with_usual_permissions(tmp_path) -> None:  # type: ignore[no-untyped-def]
    target = write_json_atomic(tmp_path / "sub" / "r.json", {"a": 1})
    assert json.loads(target.read_text()) == {"a": 1}
    assert stat.S_IMODE(target.stat().st_mode) & 0o044  # readable by others, unlike mkstemp's 0600
    write_json_atomic(target, {"a": 2})
    assert json.loads(target.read_text()) == {"a": 2}
    assert [p.name for p in target.parent.iterdir()] == ["r.json"]


def test_failure_keeps_old_content_and_removes_temp(tmp_path) -> None:  # type: ignore[no-untyped-def]
    target = tmp_path / "m.bin"
    target.write_bytes(b"old")

    def broken(f) -> None:  # type: ignore[no-untyped-def]
        f.write(b"half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        write_atomic(target, broken)
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["m.bin"]
