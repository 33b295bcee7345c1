"""Experiments: the shipped configurations and models load; the track slots and the detection
range are model settings, which older files repeat in their tracker section."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any

import pytest

from syncl_ros.config import ConfigError, config_dir, parse
from syncl_ros.experiment import Experiment, load_experiment, with_overrides
from syncl_ros.geometry import Transform
from syncl_ros.inference.default_model import DEFAULT_MODEL
from syncl_ros.model.config import ModelConfig
from syncl_ros.pipeline.settings import PipelineSettings
from syncl_ros.tracking.factory import make_tracker

SHIPPED_CONFIGS = ("tiny", "r50_704x256")


def with_twins(exp: Experiment) -> dict[str, Any]:
    """``exp`` as an older checkpoint stores it: the tracker repeats num_slots and pc_range."""
    data = exp.to_dict()
    data["tracker"].update(num_slots=exp.model.num_slots, pc_range=list(exp.model.pc_range))
    return data


@pytest.mark.parametrize("name", SHIPPED_CONFIGS)
def test_the_shipped_configs_load(name: str) -> None:
    assert load_experiment(name).name == name


def test_the_shipped_models_load() -> None:
    from syncl_ros.experiment.checkpoint import read_checkpoint

    weights = sorted(DEFAULT_MODEL.parent.glob("*.pt"))
    assert DEFAULT_MODEL in weights
    for path in weights:
        exp = Experiment.from_dict(read_checkpoint(path)["experiment"], where=str(path))
        assert exp.model.num_slots > 0


@pytest.mark.parametrize("name", SHIPPED_CONFIGS)
def test_an_older_experiment_with_the_tracker_twins_loads(name: str) -> None:
    exp = load_experiment(name)
    assert Experiment.from_dict(with_twins(exp)) == exp
    # A model section relying on the default compares with the default.
    assert Experiment.from_dict({"name": "old", "tracker": {"num_slots": 64}}) == Experiment("old")


def test_an_older_yaml_file_with_the_tracker_twins_loads(tmp_path: Path) -> None:
    twins = "tracker:\n  num_slots: 64\n  pc_range: [-51.2, -51.2, -5, 51.2, 51.2, 3]\n"
    old = tmp_path / "old.yaml"
    old.write_text((config_dir() / "tiny.yaml").read_text().replace("tracker:\n", twins))
    assert "num_slots: 64\n  pc_range" in old.read_text()
    tiny = load_experiment("tiny")
    assert load_experiment(old) == tiny
    assert load_experiment(old, ["model.dropout=0.1"]) == with_overrides(tiny, ["model.dropout=0.1"])


@pytest.mark.parametrize(
    ("name", "twin"), [("num_slots", 32), ("pc_range", [-40.0, -40.0, -5.0, 40.0, 40.0, 3.0])]
)
def test_a_tracker_twin_that_differs_from_the_model_is_refused_naming_both(name: str, twin: Any) -> None:
    data = with_twins(load_experiment("tiny"))
    data["tracker"][name] = twin
    own = getattr(load_experiment("tiny").model, name)
    expected = f"old.pt: tracker.{name} ({twin!r}) differs from model.{name} ({own!r})"
    with pytest.raises(ConfigError, match=re.escape(expected)):
        Experiment.from_dict(data, where="old.pt")


@pytest.mark.parametrize("item", ["tracker.num_slots=8", "tracker.pc_range=[0, 0, 0, 1, 1, 1]"])
def test_overriding_a_tracker_twin_points_to_the_model_setting(item: str) -> None:
    name = item.split("=")[0].removeprefix("tracker.")
    hint = f"{name} is a model setting: set model.{name}"
    with pytest.raises(ConfigError, match=hint):
        load_experiment("tiny", [item])
    with pytest.raises(ConfigError, match=hint):
        with_overrides(load_experiment("tiny"), [item])
    with pytest.raises(ConfigError, match=hint):  # the node's tracker parameter
        PipelineSettings(tracker=(item,))


def test_the_tracker_takes_its_slots_from_the_model() -> None:
    exp = load_experiment("tiny")
    model = dataclasses.replace(exp.model, num_slots=8)
    for method in ("queries", "greedy"):
        tracker = make_tracker(dataclasses.replace(exp.tracker, method=method), model)
        assert tracker.prepare(0, Transform.identity()).mask.shape == (8,)


@pytest.mark.parametrize("bad", [[0, 0, 0, 1, 1], [1, 0, 0, 0, 1, 1], [0, 0, 0, 1, 1, float("inf")]])
def test_the_detection_range_needs_6_finite_numbers_min_below_max(bad: list[float]) -> None:
    with pytest.raises(ConfigError, match=r"model(\.|: )pc_range"):
        parse(Experiment, {"name": "bad", "model": {"pc_range": bad}})
    assert parse(ModelConfig, {"pc_range": [-40, -40, -4, 40, 40, 2]}).pc_range == (-40, -40, -4, 40, 40, 2)
