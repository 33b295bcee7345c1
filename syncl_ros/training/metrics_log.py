"""A run's metrics.jsonl: one JSON record per logged step, appended as training goes.

A run restarted from its last checkpoint (or from scratch) trains again the
steps after it, so on start the log is cut back to the records of the steps
the run keeps, and a line that a kill cut short is dropped: every step is
logged once, and the file always parses. The cut is an atomic replace.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TextIO

from syncl_ros.atomic import write_atomic


def kept_lines(text: str, step: int) -> list[str]:
    """The whole records of steps up to `step`."""
    kept = []
    for line in text.splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:  # the last line of a killed run, written in part
            continue
        if isinstance(record, dict) and int(record.get("step", 0)) <= step:
            kept.append(line)
    return kept


def open_metrics_log(path: Path, step: int) -> TextIO:
    """`path` for appending, after dropping what a run restarting at `step` will log again."""
    if path.is_file():
        text = path.read_text()
        body = "".join(f"{line}\n" for line in kept_lines(text, step))
        if body != text:
            write_atomic(path, lambda f: f.writelines([body]), mode="w")
    return path.open("a")
