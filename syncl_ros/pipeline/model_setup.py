"""What the live pipeline starts with (the node's configure transition): the model's experiment,
a backend and the tracker.

Any failure becomes a :class:`ModelSetupError` whose message is one line naming the model and
the cause (a missing, empty, truncated or foreign file, a stored configuration that does not
fit the weights, a camera count the model does not take), so that the node can log it and stay
unconfigured until the file is fixed.
"""

from __future__ import annotations

import re
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from syncl_ros.experiment import Experiment, with_overrides
from syncl_ros.pipeline.settings import PipelineSettings

_MAX_CAUSE = 300  # characters of an error message kept in the log line
# torch's wording of one load_state_dict problem, shortened to the two shapes.
_SIZE_MISMATCH = re.compile(
    r"copying a param with shape torch\.Size\((\[.*?\])\) from checkpoint, "
    r"the shape in current model is torch\.Size\((\[.*?\])\)\."
)


class ModelSetupError(RuntimeError):
    """The model cannot run here; the message is one line: the model, then the cause."""

    def __init__(self, model: Path, cause: str) -> None:
        super().__init__(f"model {model}: {cause}")
        self.model = model


@dataclass
class LoadedModel:
    path: Path
    experiment: Experiment  # with the settings' tracker overrides applied
    backend: Any
    tracker: Any
    period_s: float  # seconds between processed frames


def model_path(settings: PipelineSettings) -> Path:
    from syncl_ros.inference.default_model import default_model_path

    return Path(settings.model) if settings.model else default_model_path()


def load_model(settings: PipelineSettings) -> LoadedModel:
    """The backend and tracker the settings ask for; ModelSetupError saying why not."""
    path = model_path(settings)
    try:
        return _load(settings, path)
    except ModelSetupError:
        raise
    except Exception as err:  # whatever a bad file makes the loaders raise: say what it means
        raise ModelSetupError(path, explain(path, err)) from err


def _load(settings: PipelineSettings, path: Path) -> LoadedModel:
    from syncl_ros.inference.factory import create_backend
    from syncl_ros.tracking.factory import make_tracker

    experiment = with_overrides(experiment_of(path), settings.tracker)
    device = resolve_device(settings.device)
    precision = settings.precision if device.startswith("cuda") else "fp32"
    backend = create_backend(
        settings.backend,
        path,
        device,
        precision,
        settings.fallback,
        settings.engine_cache_dir or None,
        layers=experiment.tracker.early_exit.enabled,  # the per-layer graphs ready before the first frame
    )
    cameras = len(settings.camera_channels)
    if backend.info.cameras != cameras:
        raise ModelSetupError(
            path, f"it takes {backend.info.cameras} cameras, camera_channels lists {cameras}"
        )
    tracker = make_tracker(experiment.tracker, experiment.model)
    period = settings.process_period_s
    period = period if period is not None else experiment.model.frame_interval_s
    return LoadedModel(path, experiment, backend, tracker, period)


def experiment_of(model: Path) -> Experiment:
    from syncl_ros.experiment.checkpoint import read_checkpoint
    from syncl_ros.inference.export import is_export_dir, manifest_experiment, read_manifest

    if is_export_dir(model):
        return manifest_experiment(read_manifest(model))
    return Experiment.from_dict(read_checkpoint(model)["experiment"], where=str(model))


def resolve_device(device: str) -> str:
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def explain(path: Path, err: BaseException) -> str:
    """The cause of a failed load, in one line, without repeating the path."""
    text = str(err)
    if isinstance(err, FileNotFoundError):
        if path.is_dir():
            return "a folder but not an export folder (no manifest.json; run `syncl export`)"
        return "no such file" if not path.exists() else _one_line(text, path)
    if isinstance(err, PermissionError):
        return f"cannot be read ({err.strerror})"
    if "not a readable syncl_ros checkpoint" in text and path.is_file():
        return _unreadable(path)
    if "is not a syncl_ros checkpoint" in text:
        return "a PyTorch file but not a syncl_ros checkpoint"
    if text.startswith("Error(s) in loading state_dict"):
        return "the weights do not fit the configuration stored with them: " + _state_dict_problem(text)
    if type(err).__name__ == "ConfigError":
        return "its stored configuration is invalid: " + _one_line(text, path)
    return _one_line(text, path) or type(err).__name__


def _unreadable(path: Path) -> str:
    """Why torch could not read a file: checkpoints are zip archives."""
    with path.open("rb") as f:
        head = f.read(4)
    if not head:
        return "the file is empty"
    if zipfile.is_zipfile(path):
        return "a zip archive but not a readable PyTorch checkpoint (corrupt?)"
    if head == b"PK\x03\x04":
        return "truncated (a zip archive without its end)"
    return "not a PyTorch checkpoint (not a zip archive)"


def _state_dict_problem(text: str) -> str:
    """torch's load_state_dict message: its first problem and how many more there are."""
    problems = [line.strip() for line in text.splitlines()[1:] if line.strip()]
    if not problems:
        return _one_line(text, None)
    more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
    first = _SIZE_MISMATCH.sub(r"weights \1, configuration \2", problems[0])
    return _one_line(first, None) + more


def _one_line(text: str, path: Path | None) -> str:
    if path is not None:  # the log line names the model already
        text = text.replace(f"{path}: ", "").replace(f"{path} ", "it ")
    text = " ".join(text.split())
    return text if len(text) <= _MAX_CAUSE else text[: _MAX_CAUSE - 1] + "…"
