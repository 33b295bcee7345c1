"""Where a nuScenes-format dataset keeps its tables: the one check that a dataroot holds them,
shared by the dataset reader, the bag converter and the commands that start from a dataroot."""

from __future__ import annotations

from pathlib import Path


def require_tables(dataroot: str | Path, version: str) -> Path:
    """The folder of `version`'s tables under `dataroot`; FileNotFoundError naming both if it is
    missing (the devkit would only fail an assert, after a command's slower start)."""
    tables = Path(dataroot) / version
    if not tables.is_dir():
        raise FileNotFoundError(f"no {version} tables under {dataroot} (check DATAROOT and --version)")
    return tables
