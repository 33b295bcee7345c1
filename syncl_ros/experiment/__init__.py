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

from syncl_ros.config import ConfigError, load, parse, resolve
from syncl_ros.experiment.train_config import TrainConfig
from syncl_ros.model.config import ModelConfig
from syncl_ros.tracking.config import TrackerConfig


@dataclass(frozen=True)
class Experiment:
    name: str
    model: ModelConfig = field(default_factory=ModelConfig)
    tracker: TrackerConfig = field(default_factory=TrackerConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def __post_init__(self) -> None:
        if self.tracker.num_slots != self.model.num_slots:
            raise ValueError(
                f"tracker.num_slots ({self.tracker.num_slots}) must equal model.num_slots "
                f"({self.model.num_slots}): the decoder has one input row per slot"
            )
        if tuple(self.tracker.pc_range) != tuple(self.model.pc_range):
            raise ValueError("tracker.pc_range must equal model.pc_range")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @staticmethod
    def from_dict(data: dict[str, Any], where: str = "checkpoint") -> Experiment:
        return parse(Experiment, data, where)


def set_dotted(data: dict[str, Any], item: str) -> None:
    """Apply one "a.b.c=value" override to nested dicts (value read as YAML)."""
    key, sep, value = item.partition("=")
    if not sep or not key:
        raise ConfigError(f"override {item!r}: expected KEY=VALUE, e.g. train.lr=0.001")
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


def with_tracker_overrides(exp: Experiment, overrides: Sequence[str], when: str) -> Experiment:
    """`with_overrides` limited to tracker.* settings (what may change after training)."""
    if any(not item.startswith("tracker.") for item in overrides):
        raise ValueError(f"only tracker.* settings can change at {when}")
    return with_overrides(exp, overrides)


def load_experiment(name_or_path: str | Path, overrides: Sequence[str] = ()) -> Experiment:
    """config/<name>.yaml (e.g. "tiny", "r50_704x256") or a YAML path, with optional
    dotted overrides such as "train.syncl.contrastive=false" (values read as YAML)."""
    path = resolve(str(name_or_path))
    if not overrides:
        return load(Experiment, path)
    data = yaml.safe_load(path.read_text())
    for item in overrides:
        set_dotted(data, item)
    return parse(Experiment, data, f"{path.name} (with overrides)")
