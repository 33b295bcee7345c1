"""A tracker node whose model cannot load says why on configure and stays unconfigured; once the
file is fixed the same node configures. Driven through its lifecycle services from a separate
rclpy node (real DDS), as a lifecycle manager or `ros2 lifecycle set` would: in one process, and
with the node run as `syncl node` (whose start-up configure fails without ending the process)."""

import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import rclpy  # make setup installs it: a missing rclpy fails, never skips
import torch
from lifecycle_msgs.msg import Transition
from lifecycle_msgs.srv import ChangeState, GetState
from rclpy.executors import SingleThreadedExecutor
from rclpy.parameter import Parameter
from training_fixtures import TINY_MODEL

from syncl_ros.experiment import Experiment
from syncl_ros.experiment.checkpoint import save_checkpoint
from syncl_ros.model.config import ModelConfig
from syncl_ros.model.network import TrackerNet
from syncl_ros.ros.node import TrackerNode
from syncl_ros.ros.processes import ros_env, stop

pytestmark = pytest.mark.slow  # processes, datasets or training: see `make test-fast`

NAMESPACE = f"/lifecycle_test_{os.getpid()}"  # apart from any other tracker node on this machine


def experiment(model: ModelConfig) -> Experiment:
    return Experiment("lifecycle", model=model)


@pytest.fixture(scope="module")
def good(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    return save_checkpoint(
        tmp_path_factory.mktemp("m") / "good.pt", TrackerNet(TINY_MODEL), experiment(TINY_MODEL), {}
    )


def break_model(kind: str, path: Path, good: Path) -> None:
    if kind == "empty":
        path.write_bytes(b"")
    elif kind == "truncated":
        data = good.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    elif kind == "foreign":
        torch.save({"state_dict": {"weight": torch.zeros(3)}}, path)
    elif kind == "not_torch":
        path.write_text("model: tiny\n")
    elif kind == "weights_do_not_fit":  # a configuration saved with another model's weights
        wider = ModelConfig(**{**TINY_MODEL.__dict__, "embed_dim": 64, "ffn_dim": 128})
        save_checkpoint(path, TrackerNet(TINY_MODEL), experiment(wider), {})


class LifecycleClient:
    """The tracker node spinning in a thread; a client node calling its lifecycle services."""

    def __init__(self, model: Path, params: list[Parameter]) -> None:
        self.context = rclpy.context.Context()
        rclpy.init(context=self.context)
        overrides = [Parameter("model", value=str(model)), Parameter("backend", value="torch"), *params]
        self.node = TrackerNode(context=self.context, namespace=NAMESPACE, parameter_overrides=overrides)
        self.node_executor = SingleThreadedExecutor(context=self.context)
        self.node_executor.add_node(self.node)
        self.thread = threading.Thread(target=self.node_executor.spin, daemon=True)
        self.thread.start()
        self.client = rclpy.create_node("lifecycle_client", context=self.context, namespace=NAMESPACE)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.client)
        self.change = self.client.create_client(ChangeState, f"{NAMESPACE}/syncl_tracker/change_state")
        self.get = self.client.create_client(GetState, f"{NAMESPACE}/syncl_tracker/get_state")

    def call(self, client: Any, request: Any) -> Any:
        assert client.wait_for_service(timeout_sec=30.0)
        future = client.call_async(request)
        self.executor.spin_until_future_complete(future, timeout_sec=120.0)
        assert future.done()
        return future.result()

    def configure(self) -> bool:
        request = ChangeState.Request(transition=Transition(id=Transition.TRANSITION_CONFIGURE))
        return bool(self.call(self.change, request).success)

    def state(self) -> str:
        return str(self.call(self.get, GetState.Request()).current_state.label)

    def close(self) -> None:
        self.node_executor.shutdown()
        self.thread.join(10.0)
        if self.node.pipeline is not None:
            self.node.pipeline.stop()
        self.client.destroy_node()
        self.node.destroy_node()
        rclpy.shutdown(context=self.context)


@pytest.fixture()
def lifecycle(request: pytest.FixtureRequest) -> Iterator[Any]:
    clients: list[LifecycleClient] = []

    def start(model: Path, params: list[Parameter] | None = None) -> LifecycleClient:
        clients.append(LifecycleClient(model, params or []))
        return clients[-1]

    yield start
    for c in clients:
        c.close()


def error_lines(capfd: pytest.CaptureFixture[str]) -> list[str]:
    return [line for line in capfd.readouterr().err.splitlines() if "ERROR" in line]


@pytest.mark.parametrize(
    ("kind", "cause"),
    [
        ("missing", "no such file"),
        ("empty", "the file is empty"),
        ("truncated", "truncated (a zip archive without its end)"),
        ("not_torch", "not a PyTorch checkpoint (not a zip archive)"),
        ("foreign", "a PyTorch file but not a syncl_ros checkpoint"),
        ("weights_do_not_fit", "the weights do not fit the configuration stored with them: size mismatch"),
    ],
)
def test_a_bad_model_fails_configure_with_one_line_and_configures_once_fixed(
    kind: str, cause: str, good: Path, tmp_path: Path, lifecycle: Any, capfd: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "model.pt"
    break_model(kind, path, good)
    node = lifecycle(path)
    assert node.configure() is False
    assert node.state() == "unconfigured"
    (line,) = error_lines(capfd)
    assert f"configure failed: model {path}: {cause}" in line, line
    shutil.copyfile(good, path)
    assert node.configure() is True
    assert node.state() == "inactive"
    assert error_lines(capfd) == []


def test_a_camera_count_the_model_does_not_take_fails_configure(
    good: Path, lifecycle: Any, capfd: pytest.CaptureFixture[str]
) -> None:
    channels = ["CAM_FRONT", "CAM_FRONT_LEFT", "CAM_FRONT_RIGHT", "CAM_BACK", "CAM_BACK_LEFT"]
    params = [
        Parameter("camera_channels", value=channels),
        Parameter("image_topics", value=[f"/{c}/image" for c in channels]),
        Parameter("camera_info_topics", value=[f"/{c}/camera_info" for c in channels]),
    ]
    node = lifecycle(good, params)
    assert node.configure() is False and node.state() == "unconfigured"
    (line,) = error_lines(capfd)
    assert f"model {good}: it takes 6 cameras, camera_channels lists 5" in line, line


def test_the_node_process_stays_up_unconfigured_after_a_failed_start(good: Path, tmp_path: Path) -> None:
    path = tmp_path / "model.pt"
    break_model("truncated", path, good)
    namespace = f"{NAMESPACE}_process"
    args = ["--ros-args", "-r", f"__ns:={namespace}", "-p", f"model:={path}", "-p", "backend:=torch"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "syncl_ros.cli", "node", *args],
        env=ros_env(),
        stderr=subprocess.PIPE,
        text=True,
    )
    context = rclpy.context.Context()
    rclpy.init(context=context)
    client = rclpy.create_node("lifecycle_client", context=context, namespace=namespace)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(client)

    def call(service: str, kind: Any, request: Any) -> Any:
        c = client.create_client(kind, f"{namespace}/syncl_tracker/{service}")
        assert c.wait_for_service(timeout_sec=60.0)
        future = c.call_async(request)
        executor.spin_until_future_complete(future, timeout_sec=120.0)
        return future.result()

    def transition(transition_id: int) -> bool:
        request = ChangeState.Request(transition=Transition(id=transition_id))
        return bool(call("change_state", ChangeState, request).success)

    try:
        assert call("get_state", GetState, GetState.Request()).current_state.label == "unconfigured"
        shutil.copyfile(good, path)
        assert transition(Transition.TRANSITION_CONFIGURE) and transition(Transition.TRANSITION_ACTIVATE)
        assert call("get_state", GetState, GetState.Request()).current_state.label == "active"
    finally:
        client.destroy_node()
        rclpy.shutdown(context=context)
        stop(proc)
    assert proc.stderr is not None
    stderr = proc.stderr.read()
    errors = [line for line in stderr.splitlines() if "ERROR" in line]
    assert len(errors) == 1 and f"model {path}: truncated" in errors[0], errors
    assert proc.returncode == 0, stderr


class _FailingExecutor:
    def spin(self) -> None:
        raise RuntimeError("failed to initialize wait set")  # what rclpy raises in the shutdown race

    def spin_once(self, timeout_sec: float) -> None:
        self.spin()


def test_an_error_while_spinning_ends_quietly_only_after_shutdown() -> None:
    from rclpy.utilities import ok

    from syncl_ros.ros.spin import spin_until_shutdown

    assert not ok()  # the default context, shut down (or never started): the shutdown race
    spin_until_shutdown(_FailingExecutor())
    rclpy.init()
    try:
        with pytest.raises(RuntimeError, match="wait set"):  # a live context: a real error
            spin_until_shutdown(_FailingExecutor())
    finally:
        rclpy.shutdown()


class _ShutdownRaceExecutor:
    """Each spin_once: the context shut down by 'a signal' while the wait set is built."""

    def spin_once(self, timeout_sec: float) -> None:
        rclpy.shutdown()
        raise RuntimeError("failed to initialize wait set")


def test_a_bounded_spin_stops_at_its_deadline_and_ends_quietly_in_the_shutdown_race() -> None:
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.utilities import ok

    from syncl_ros.ros.spin import spin_until_shutdown

    rclpy.init()
    try:
        executor = SingleThreadedExecutor()
        start = time.monotonic()
        spin_until_shutdown(executor, seconds=0.3)  # nothing to run: it returns at the deadline
        assert 0.3 <= time.monotonic() - start < 5.0
        executor.shutdown()
        spin_until_shutdown(_ShutdownRaceExecutor(), seconds=60.0)  # the race: quiet, at once
    finally:
        if ok():
            rclpy.shutdown()
    rclpy.init()
    try:
        with pytest.raises(RuntimeError, match="wait set"):  # a live context: a real error
            spin_until_shutdown(_FailingExecutor(), seconds=60.0)
    finally:
        rclpy.shutdown()
