"""The tracker node's /diagnostics through outages: a silent anchor camera turns the input WARN
(naming it) within the timeout while its frames are handed over (or, with every camera required,
the pipeline ERROR), its lost frames are counted, and both go back to OK when it delivers
again; stamp-to-publish latency is shown only for stamps on the node's clock. Real rclpy node,
backend and tracker, in-process (as test_node_bad_input)."""

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from node_fixtures import active_node, untrained_model
from test_node_bad_input import RIG, send_frame, static_tf

from syncl_ros.pipeline.health import ERROR, OK, WARN
from syncl_ros.ros.node import TrackerNode

PERIOD_NS = 100_000_000
START_NS = 10**18  # 2001: stamps of a bag replayed without /clock


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return untrained_model(tmp_path_factory.mktemp("m") / "diag.pt")


@pytest.fixture()
def node(model: Path, request: pytest.FixtureRequest) -> Iterator[TrackerNode]:
    params = {
        "min_frame_cameras": getattr(request, "param", 1),
        "tf_wait_ms": 20.0,
        "max_wait_ms": 50.0,
        "process_period_s": 0.0,
        "camera_timeout_s": 0.3,
        "frame_timeout_s": 0.3,
    }
    with active_node(model, params) as n:
        n._on_tf(static_tf(), static=True)
        yield n


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
