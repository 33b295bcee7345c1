"""Checkpoints: weights + the experiment configuration + training metadata.

Only tensors, numbers, strings, lists and dicts are stored, so every
checkpoint loads with torch.load(weights_only=True): loading never runs
pickled code from a file.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from syncl_ros.atomic import write_atomic
from syncl_ros.experiment import Experiment, with_release_overrides
from syncl_ros.model.network import TrackerNet

FORMAT = "syncl_ros.checkpoint/1"


def save_checkpoint(
    path: str | Path,
    model: torch.nn.Module,
    experiment: Experiment,
    metadata: dict[str, Any],
    extra_state: dict[str, Any] | None = None,
) -> Path:
    """Write atomically: an interrupted save never leaves a truncated checkpoint."""
    payload = {
        "format": FORMAT,
        "experiment": experiment.to_dict(),
        "metadata": metadata,
        "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        **(extra_state or {}),
    }
    return write_atomic(path, lambda f: torch.save(payload, f))


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # corrupt file, or a pickle that is not weights-only
        raise ValueError(f"{path} is not a readable syncl_ros checkpoint: {err}") from err
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ValueError(f"{path} is not a syncl_ros checkpoint (format {FORMAT})")
    return payload


def load_model(path: str | Path, device: str = "cpu") -> tuple[TrackerNet, Experiment, dict[str, Any]]:
    """Network in eval mode, its experiment, and the training metadata.

    Train-only parameters (e.g. SynCL's contrastive projector) are stored
    apart from the network's ("train_only") and are not loaded here.
    """
    payload = read_checkpoint(path)
    experiment = Experiment.from_dict(payload["experiment"], where=str(path))
    model = TrackerNet(experiment.model)
    model.load_state_dict(payload["model"])
    return model.to(device).eval(), experiment, payload["metadata"]


# Modules that exist or not by a model switch (model.position_embedding, model.depth_distribution):
# weights of another run may lack them, or carry the one the switch replaced.
SWITCHED_MODULES = ("position.", "depth_position.", "depth_dist_head.")


def load_across_switches(net: TrackerNet, state: dict[str, torch.Tensor]) -> dict[str, list[str]]:
    """Load another run's weights into `net`, whose switched modules may differ from theirs.

    Switched modules the weights lack keep their fresh initialization and those the net lacks are
    dropped (both returned, so a run can say so); any other difference is still an error.
    """
    result = net.load_state_dict(state, strict=False)
    other = [k for k in [*result.missing_keys, *result.unexpected_keys] if not k.startswith(SWITCHED_MODULES)]
    if other:
        raise ValueError(f"weights do not fit the model beyond its switched modules: {', '.join(other)}")
    return {"fresh": list(result.missing_keys), "dropped": list(result.unexpected_keys)}


def release_checkpoint(
    src: str | Path,
    dst: str | Path,
    notes: dict[str, Any] | None = None,
    overrides: Sequence[str] = (),
) -> Path:
    """Write the deployable part of a training checkpoint: network weights, experiment and metadata.

    Optimizer and scheduler state, RNG state and train-only layers (contrastive
    projector, denoising label embedding, auxiliary box head) are left out.
    """
    payload = read_checkpoint(src)
    experiment = Experiment.from_dict(payload["experiment"], where=str(src))  # refuse what cannot load
    experiment = with_release_overrides(experiment, overrides)
    metadata = {**payload["metadata"], "released_from": Path(src).name, **(notes or {})}
    for key in ("tracker", "model"):  # a release of a release keeps the first one's record too
        chosen = [o for o in overrides if o.startswith(f"{key}.")]
        if chosen:
            metadata[f"{key}_overrides"] = [*metadata.get(f"{key}_overrides", []), *chosen]
    released = {
        "format": FORMAT,
        "experiment": experiment.to_dict(),
        "metadata": metadata,
        "model": {k: v.detach().float() if v.is_floating_point() else v for k, v in payload["model"].items()},
    }
    return write_atomic(dst, lambda f: torch.save(released, f))
