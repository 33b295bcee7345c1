"""An experiment = model + runtime tracker + training settings, one YAML file
(config/<name>.yaml). Checkpoints carry it, so a checkpoint is self-describing.

The package sits above the model and the tracker: checkpoint.py saves and loads
weights with their experiment, train_config.py holds the `train:` section's types and
release_cli.py is `syncl release`."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from syncl_ros.config import ConfigError, parse, read, resolve
from syncl_ros.experiment.train_config import TrainConfig
from syncl_ros.model.config import ModelConfig
from syncl_ros.tracking.config import TrackerConfig


@dataclass(frozen=True)
class Experiment:
    name: str
    model: ModelConfig = field(default_factory=ModelConfig)
    tracker: TrackerConfig = field(default_factory=TrackerConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @staticmethod
    def from_dict(data: dict[str, Any], where: str = "checkpoint") -> Experiment:
        return parse(Experiment, without_tracker_twins(data, where), where)


# Model settings that older checkpoints and YAML files repeat in their tracker section.
TRACKER_TWINS = ("num_slots", "pc_range")


def without_tracker_twins(data: Any, where: str) -> Any:
    """Experiment data without the tracker's copies of model settings, each checked to equal the
    model's (ConfigError naming both values otherwise); other data as it is, for the parser to judge."""
    if not isinstance(data, dict) or not isinstance(data.get("tracker"), dict):
        return data
    tracker = data["tracker"]
    if not any(name in tracker for name in TRACKER_TWINS):
        return data
    model = data.get("model")
    model = model if isinstance(model, dict) else {}
    for name in TRACKER_TWINS:
        if name in tracker:
            twin, own = tracker[name], model.get(name, getattr(ModelConfig(), name))
            if not _same(twin, own):
                raise ConfigError(
                    f"{where}: tracker.{name} ({twin!r}) differs from model.{name} ({own!r}); "
                    f"the model's is the setting: remove tracker.{name}"
                )
    tracker = {k: v for k, v in tracker.items() if k not in TRACKER_TWINS}
    return {**data, "tracker": tracker}


def _same(a: Any, b: Any) -> bool:
    # YAML gives lists where the configuration holds tuples.
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return list(a) == list(b)
    return bool(a == b)


def set_dotted(data: dict[str, Any], item: str) -> None:
    """Apply one "a.b.c=value" override to nested dicts (value read as YAML)."""
    key, sep, value = item.partition("=")
    if not sep or not key:
        raise ConfigError(f"override {item!r}: expected KEY=VALUE, e.g. train.lr=0.001")
    section, _, name = key.partition(".")
    if section == "tracker" and name in TRACKER_TWINS:
        raise ConfigError(f"override {item!r}: {name} is a model setting: set model.{name} (before training)")
    node = data
    *parents, leaf = key.split(".")
    for part in parents:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"override {item!r}: {part} is not a section")
    node[leaf] = yaml.safe_load(value)


def with_overrides(exp: Experiment, overrides: Sequence[str]) -> Experiment:
    """The experiment with dotted overrides such as "tracker.birth_score=0.3" applied and re-validated."""
    data = exp.to_dict()
    for item in overrides:
        set_dotted(data, item)
    return parse(Experiment, data, "overrides")


# Model settings that switch the exported graph without touching a weight: a release may set them
# (the released file carries them, so every backend and cached export follows).
GRAPH_SWITCHES = ("model.track_seed_memory",)


def with_release_overrides(exp: Experiment, overrides: Sequence[str]) -> Experiment:
    """`with_overrides` limited to what a release may store: tracker.* settings and GRAPH_SWITCHES."""
    for item in overrides:
        if not item.startswith("tracker.") and item.partition("=")[0] not in GRAPH_SWITCHES:
            allowed = ", ".join(GRAPH_SWITCHES)
            raise ValueError(f"a release stores tracker.* settings and {allowed}, not {item!r}")
    return with_overrides(exp, overrides)


def with_tracker_overrides(exp: Experiment, overrides: Sequence[str], when: str) -> Experiment:
    """`with_overrides` limited to tracker.* settings (what may change after training)."""
    if any(not item.startswith("tracker.") for item in overrides):
        raise ValueError(f"only tracker.* settings can change at {when}")
    return with_overrides(exp, overrides)


def load_experiment(name_or_path: str | Path, overrides: Sequence[str] = ()) -> Experiment:
    """config/<name>.yaml (e.g. "tiny", "r50_704x256") or a YAML path, with optional
    dotted overrides such as "train.syncl.contrastive=false" (values read as YAML)."""
    path = resolve(str(name_or_path))
    data = without_tracker_twins(read(path), str(path))
    if not overrides:
        return parse(Experiment, data, str(path))
    for item in overrides:
        set_dotted(data, item)
    return parse(Experiment, data, f"{path.name} (with overrides)")
