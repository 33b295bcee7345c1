"""The node's parameters come from the typed settings: each declared with the description and
range of its one declaration, read back through the typed parser; the tracker's unset unless
given, and then the same overrides `syncl track --set` makes."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import rclpy  # make setup installs it: a missing rclpy fails, never skips
from rclpy.exceptions import ParameterException
from rclpy.parameter import Parameter

from syncl_ros.experiment import load_experiment, with_tracker_overrides
from syncl_ros.ros.settings import NodeSettings, declare_and_read


@pytest.fixture()
def context() -> Iterator[Any]:
    context = rclpy.context.Context()
    rclpy.init(context=context)
    yield context
    rclpy.shutdown(context=context)


def node_with(context: Any, **values: Any) -> Any:
    overrides = [Parameter(k, value=v) for k, v in values.items()]
    return rclpy.create_node("syncl_tracker", context=context, parameter_overrides=overrides)


def test_defaults_are_the_typed_settings_and_the_tracker_is_the_models(context: Any) -> None:
    node = node_with(context)
    settings = declare_and_read(node)
    assert settings == NodeSettings()
    assert settings.tracker == () and settings.process_period_s is None
    assert not node.has_parameter("tracker.num_slots")  # fixed by the model: no parameter
    node.destroy_node()


def test_descriptors_carry_the_declared_description_and_range(context: Any) -> None:
    node = node_with(context)
    declare_and_read(node)
    spread, birth, age, backend = node.describe_parameters(
        ["max_spread_ms", "tracker.birth_score", "tracker.greedy.max_age", "backend"]
    )
    assert spread.description == "largest stamp spread accepted within one rig frame" and spread.read_only
    assert span(spread) == (1.0, 1000.0)
    assert birth.description.startswith("query tracker: score a detection needs to start a track")
    assert span(birth) == (0.0, 1.0)
    assert age.integer_range[0].from_value == 0 and age.type == Parameter.Type.INTEGER.value
    assert backend.additional_constraints == "one of: auto, tensorrt, onnxruntime, torch"
    node.destroy_node()


def test_tracker_parameters_given_are_the_overrides_syncl_track_makes(context: Any) -> None:
    given = {
        "tracker.method": "greedy",
        "tracker.birth_score": 0.3,
        "tracker.greedy.max_age": 5,
        "tracker.greedy.distances.pedestrian": 2.5,  # one key of a table
    }
    settings = declare_and_read(node_with(context, **given, process_period_s=0.0))
    assert settings.process_period_s == 0.0
    exp = load_experiment("tiny")
    node_exp = with_tracker_overrides(exp, settings.tracker, "test")
    cli_exp = with_tracker_overrides(exp, [f"{k}={v}" for k, v in given.items()], "test")  # --set KEY=VALUE
    assert node_exp == cli_exp and node_exp.tracker.greedy.max_age == 5
    assert node_exp.tracker.greedy.distances["pedestrian"] == 2.5
    assert node_exp.tracker.greedy.distances["car"] == exp.tracker.greedy.distances["car"]


def span(descriptor: Any) -> tuple[float, float]:
    (r,) = descriptor.floating_point_range
    return r.from_value, r.to_value


@pytest.mark.parametrize(
    ("values", "error", "match"),
    [
        ({"backend": "fast"}, ValueError, "backend: expected one of"),
        ({"output_frame": "odom"}, ValueError, "output_frame must be base_frame"),
        ({"min_frame_cameras": 7}, ValueError, "exceeds the number of cameras"),
        ({"tracker.method": "nearest"}, ValueError, "tracker: method: expected one of"),
        ({"tracker.birth_score": 2.0}, ParameterException, "tracker.birth_score"),
    ],
)
def test_bad_values_are_refused_naming_the_parameter(
    context: Any, values: dict[str, Any], error: type[Exception], match: str
) -> None:
    node = node_with(context, **values)
    with pytest.raises(error, match=match):
        declare_and_read(node)
    node.destroy_node()
