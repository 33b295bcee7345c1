"""The frame pipeline (assemble -> encode -> prepare -> decode -> tracker update) on a stand-in
backend and tracker: the stages in order, the camera mask passed through, a failed assembly that
leaves the tracker untouched; and the package free of ROS and of training."""

from __future__ import annotations

import ast
from collections.abc import Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray

from syncl_ros.geometry import Transform
from syncl_ros.model.config import InputConfig
from syncl_ros.pipeline.frame_inputs import CameraImage, CameraIntrinsics, FrameError, FrameInputs, RigCapture
from syncl_ros.pipeline.frame_pipeline import STAGES, FramePipeline
from syncl_ros.rig import CAMERA_CHANNELS

CFG = InputConfig(height=64, width=160)
SIZE = (1600, 900)
K = np.array([[1266.0, 0.0, 816.0], [0.0, 1266.0, 491.0], [0.0, 0.0, 1.0]])
STAMP = 1_700_000_000 * 1_000_000_000
PIPELINE = Path(__file__).resolve().parents[1] / "syncl_ros" / "pipeline"


class Backend:
    info = SimpleNamespace(num_layers=2)  # what the pipeline reads of ModelInfo

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []

    def encode(self, images: NDArray[np.float32]) -> str:
        self.calls.append(("encode", images))
        return "features"

    def synchronize(self) -> None:
        self.calls.append(("synchronize", None))

    def decode(self, features: Any, img2lidar: NDArray[np.float32], slots: Any, cameras: Any = None) -> str:
        self.calls.append(("decode", (features, slots, cameras)))
        return "outputs"


class Tracker:
    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []

    def prepare(self, stamp_ns: int, model_to_world: Transform) -> str:
        self.calls.append(("prepare", stamp_ns))
        return "slots"

    def update(self, outputs: Any) -> list[str]:
        self.calls.append(("update", outputs))
        return ["track"]

    def reset(self) -> None:
        self.calls.append(("reset", None))


def capture(skip: str = "") -> RigCapture:
    pixels = np.ones((3, CFG.height, CFG.width), np.float32)
    images = {c: None if c == skip else CameraImage(pixels, *SIZE) for c in CAMERA_CHANNELS}
    return RigCapture(
        STAMP,
        images,
        {c: STAMP for c in CAMERA_CHANNELS if c != skip},
        {c: CameraIntrinsics(K, *SIZE, frame_id=c.lower()) for c in CAMERA_CHANNELS},
        {c: Transform.from_xy_yaw(1.0, 0.0, i * 1.0, z=1.5) for i, c in enumerate(CAMERA_CHANNELS)},
        lambda _: Transform.identity(),
    )


def pipeline(min_cameras: int | None = 1) -> tuple[FramePipeline, Backend, Tracker]:
    # Stand-ins with only what the pipeline calls, returning markers instead of arrays.
    backend: Any = Backend()
    tracker: Any = Tracker()
    return FramePipeline(backend, tracker, CFG, CAMERA_CHANNELS, min_cameras), backend, tracker


def test_a_rig_frame_runs_every_stage_in_order_with_its_camera_mask() -> None:
    frames, backend, tracker = pipeline()
    result = frames.process(capture(skip="CAM_BACK"))
    tracks: Sequence[object] = result.tracks  # the stand-in tracker's markers, not Tracks
    assert tracks == ["track"] and list(result.timings_ms) == list(STAGES)
    assert all(ms >= 0.0 for ms in result.timings_ms.values())
    assert [name for name, _ in backend.calls] == ["encode", "synchronize", "decode"]
    images = backend.calls[0][1]
    back = CAMERA_CHANNELS.index("CAM_BACK")
    assert not images[back].any() and images[0].all()  # the missing camera is blank
    features, slots, cameras = backend.calls[2][1]
    assert (features, slots) == ("features", "slots")
    assert cameras.tolist() == [c != "CAM_BACK" for c in CAMERA_CHANNELS]
    assert tracker.calls == [("prepare", STAMP), ("update", "outputs")]


def test_a_frame_that_cannot_be_assembled_leaves_the_tracker_untouched() -> None:
    frames, backend, tracker = pipeline(min_cameras=None)  # every camera required
    with pytest.raises(FrameError, match="CAM_BACK"):
        frames.process(capture(skip="CAM_BACK"))
    assert backend.calls == [] and tracker.calls == []


def test_features_at_hand_skip_the_encoder() -> None:
    frames, backend, _ = pipeline()
    inputs = FrameInputs(STAMP, None, np.tile(np.eye(4, dtype=np.float32), (6, 1, 1)), Transform.identity())
    result = frames.track(inputs, features="cached")
    assert [name for name, _ in backend.calls] == ["synchronize", "decode"]
    assert backend.calls[1][1][0] == "cached" and list(result.timings_ms) == ["encode", "decode", "tracker"]
    with pytest.raises(ValueError, match="needs its encoder features"):
        frames.track(inputs)


def imported_modules(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_the_pipeline_imports_no_ros_and_no_training() -> None:
    """What .importlinter's contracts say of the pipeline (`make lint`), also under `make test`."""
    forbidden: tuple[str, ...] = (
        "rclpy",
        "syncl_ros.ros",
        "syncl_ros.msg",
        "syncl_ros.training",
        "syncl_ros.eval",
    )
    forbidden += ("syncl_ros.viz", "syncl_ros.tools", "syncl_ros.cli")  # the layers above it
    for path in sorted(PIPELINE.glob("*.py")):
        for name in imported_modules(path):
            top = name.split(".")[0]
            assert not top.endswith("_msgs") and not top.endswith("_interfaces"), (path.name, name)
            assert not any(name == f or name.startswith(f + ".") for f in forbidden), (path.name, name)
