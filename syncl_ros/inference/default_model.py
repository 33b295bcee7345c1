"""Where the shipped default model lives (a checkpoint inside the package)."""

from __future__ import annotations

from pathlib import Path

DEFAULT_MODEL = Path(__file__).resolve().parents[1] / "weights" / "tiny_synth.pt"


def default_model_path() -> Path:
    if not DEFAULT_MODEL.is_file():
        raise FileNotFoundError(
            f"the shipped default model {DEFAULT_MODEL} is not part of this version of syncl_ros; "
            "pass --model CHECKPOINT (e.g. one written by `syncl train`)"
        )
    return DEFAULT_MODEL
