"""An experiment = model + runtime tracker + training settings, one YAML file
(config/<name>.yaml). Checkpoints carry it, so a checkpoint is self-describing."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from syncl_ros.config import load, parse, resolve
from syncl_ros.model.config import ModelConfig
from syncl_ros.tracking.config import TrackerConfig
from syncl_ros.training.config import TrainConfig


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


def load_experiment(name_or_path: str | Path) -> Experiment:
    """config/<name>.yaml (e.g. "tiny", "r50_704x256") or a YAML path."""
    return load(Experiment, resolve(str(name_or_path)))
