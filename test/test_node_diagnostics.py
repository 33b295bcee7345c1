"""The tracker node's /diagnostics through outages: a silent anchor camera turns the input WARN
(naming it) within the timeout while its frames are handed over (or, with every camera required,
the pipeline ERROR), its lost frames are counted, and both go back to OK when it delivers
again; stamp-to-publish latency is shown only for stamps on the node's clock. Real rclpy node,
backend and tracker, in-process (as test_node_bad_input)."""

from pathlib import Path
from typing import Any

import pytest
import rclpy  # make setup installs it: a missing rclpy fails, never skips
import torch
from rclpy.parameter import Parameter
from test_node_bad_input import RIG, send_frame, static_tf
from training_fixtures import TINY_MODEL

from syncl_ros.experiment import Experiment
from syncl_ros.experiment.checkpoint import save_checkpoint
from syncl_ros.model.network import TrackerNet
from syncl_ros.pipeline.health import ERROR, OK, WARN
from syncl_ros.ros.node import TrackerNode

PERIOD_NS = 100_000_000
START_NS = 10**18  # 2001: stamps of a bag replayed without /clock


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    exp = Experiment("diag", model=TINY_MODEL)
    return save_checkpoint(tmp_path_factory.mktemp("m") / "m.pt", TrackerNet(TINY_MODEL), exp, {})


@pytest.fixture()
def node(model: Path, request: pytest.FixtureRequest) -> Any:
    context = rclpy.context.Context()
    rclpy.init(context=context)
    min_frame_cameras = getattr(request, "param", 1)
    params = [
        Parameter("min_frame_cameras", value=min_frame_cameras),
        Parameter("model", value=str(model)),
        Parameter("backend", value="torch"),
        Parameter("tf_wait_ms", value=20.0),
        Parameter("max_wait_ms", value=50.0),
        Parameter("process_period_s", value=0.0),
        Parameter("camera_timeout_s", value=0.3),
        Parameter("frame_timeout_s", value=0.3),
    ]
    n = TrackerNode(context=context, parameter_overrides=params)
    n.trigger_configure()
    n.trigger_activate()
    n._on_tf(static_tf(), static=True)
    yield n
    assert n.pipeline is not None  # activated above
    n.pipeline.stop()
    n.destroy_node()
    rclpy.shutdown(context=context)


def status(node: Any, name: str) -> tuple[int, str, dict[str, str]]:
    (got,) = [s for s in node.diagnostics() if s.name == f"syncl_tracker: {name}"]
    return got.level[0], got.message, {kv.key: kv.value for kv in got.values}


@pytest.mark.parametrize("node", [1, 6], indirect=True, ids=["handed_over", "every_camera_required"])
def test_a_silent_anchor_camera_is_reported_counted_and_recovers(node: Any) -> None:
    for i in range(3):
        send_frame(node, START_NS + i * PERIOD_NS)
    assert status(node, "input")[:2] == (OK, "6 cameras delivering")
    assert status(node, "pipeline")[0] == OK
    for i in range(3, 9):  # about 0.5 s without the front camera
        send_frame(node, START_NS + i * PERIOD_NS, skip=("CAM_FRONT",))
    level, message, values = status(node, "input")
    assert level == WARN and message.startswith("CAM_FRONT silent for"), message
    assert values["cameras.CAM_FRONT.state"].startswith("silent")
    assert float(values["cameras.CAM_FRONT.rate_hz"]) < float(values["cameras.CAM_BACK.rate_hz"])
    assert int(values["frames_without_anchor"]) >= 4
    assert values["cameras.CAM_FRONT.dropped.missing"] == values["frames_without_anchor"]
    level, message, _ = status(node, "pipeline")
    if node.settings.min_frame_cameras == 6:
        assert level == ERROR and message.startswith("no frame processed for"), message
        assert values["frames_handed_over"] == "0"
    else:  # the next camera took the anchor's frames over: processing went on
        assert level == OK, message
        assert int(values["frames_handed_over"]) >= 4
        assert node.pipeline.counts["frames.anchor_handed_over"] >= 4
    for i in range(9, 12):
        send_frame(node, START_NS + i * PERIOD_NS)
    level, message, values = status(node, "input")
    assert level == OK and values["frames_without_anchor"] == "6", message
    assert status(node, "pipeline")[0] == OK


def test_stamp_latency_is_shown_only_for_stamps_on_the_node_clock(node: Any) -> None:
    send_frame(node, START_NS)
    _, message, values = status(node, "pipeline")
    assert values["latency_from"] == "arrival" and "stamps are not on the node clock" in message
    assert "latency.receive_to_publish.p50_ms" in values
    assert not any(k.startswith("latency.stamp_to_publish") for k in values), values
    now = node.get_clock().now().nanoseconds - RIG.camera("CAM_FRONT").capture_offset_ns
    send_frame(node, now)  # a live camera's stamp
    _, message, values = status(node, "pipeline")
    assert values["latency_from"] == "stamp" and "not on the node clock" not in message
    assert 0.0 < float(values["latency.stamp_to_publish.p50_ms"]) < 10_000.0
