"""The tracker node over real DDS, fed by `syncl play` of a converted synthetic bag (separate
processes), publishes the same tracks as offline `syncl track` for the same frames, and its
recorded output scores the same AMOTA; with either tracker (track queries or greedy), and with
the query tracker's decoder exiting early."""

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rclpy  # make setup installs it: a missing rclpy fails, never skips
import torch
from syncl_ros.msg import TrackedObject3DArray

from syncl_ros.cli import main as syncl
from syncl_ros.data.synth.writer import write_dataset
from syncl_ros.eval.tracking import evaluate_tracking
from syncl_ros.experiment import load_experiment
from syncl_ros.experiment.checkpoint import save_checkpoint
from syncl_ros.model.network import TrackerNet
from syncl_ros.pipeline.results import RESULTS_META
from syncl_ros.rig import CAMERA_CHANNELS
from syncl_ros.ros.processes import NODE_TOPICS, ros_env, start_node, start_player, stop
from syncl_ros.ros.recording import results_from_messages

pytestmark = pytest.mark.slow  # processes, datasets or training: see `make test-fast`

# An untrained model scores below the default thresholds: open them so that every query takes part.
# The same names and values serve `syncl track --set` and the node's parameters.
LOOSE = {
    "tracker.birth_score": 0.0,
    "tracker.update_score": 0.0,
    "tracker.output_score": 0.0,
    "tracker.greedy.score": 0.0,
}
# Early exit after layer 2 of 3 on every frame but each third (full depth), whatever the outputs.
EARLY_EXIT: dict[str, object] = {
    "tracker.early_exit.enabled": True,
    "tracker.early_exit.max_move_m": 1000000.0,
    "tracker.early_exit.full_every": 3,
}
CASES = {"queries": ("queries", {}), "greedy": ("greedy", {}), "early-exit": ("queries", EARLY_EXIT)}
# One CPU thread in both processes: float reductions then run in the same order, so the node and
# offline tracking compute bit-identical network outputs (an untrained network amplifies any difference).
ENV = ros_env(ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST", OMP_NUM_THREADS="1")


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("node_scene")
    data = root / "data"
    write_dataset(data, scenes=1, seed=11, split="val", duration_s=3.0, workers=1, progress=False)
    torch.manual_seed(0)
    exp = load_experiment("tiny")
    ckpt = save_checkpoint(root / "model.pt", TrackerNet(exp.model), exp, {"note": "untrained, for tests"})
    bag = root / "bag"
    name = json.loads((data / "v1.0-trainval" / "scene.json").read_text())[0]["name"]
    assert syncl(["convert", str(data), "--scene", name, "--out", str(bag), "--no-progress"]) == 0
    return {"root": root, "data": data, "model": ckpt, "bag": bag}


def track_offline(scene: dict[str, Path], method: str, extra: dict[str, object]) -> Path:
    out = scene["root"] / f"offline_{method}{'_early_exit' if extra else ''}.json"
    if out.exists():  # the early-exit case compares with the queries case's full-depth run
        return out
    sets = [a for k, v in {**LOOSE, **extra}.items() for a in ("--set", f"{k}={v}")]
    track = ["track", str(scene["data"]), "--split", "val", "--model", str(scene["model"])]
    track += ["--tracker", method, "--out", str(out), "--no-progress", *sets]
    subprocess.run([sys.executable, "-m", "syncl_ros.cli", *track], env=ENV, check=True)
    return out


def record_node_output(
    scene: dict[str, Path], method: str, extra: dict[str, object], frames: int
) -> list[TrackedObject3DArray]:
    """The node's track messages over one replay of the scene; ``frames`` are expected (the last
    may still be in the worker when the player ends)."""
    # a generous wait and a frame queue: on a loaded 2-core machine a frame's last image can be
    # late, or a frame can arrive while the worker is busy, and the comparison needs every key
    # frame (by default the node counts and drops late frames and those it cannot keep up with)
    params = {
        **LOOSE,
        **extra,
        "tracker.method": method,
        "model": scene["model"],
        "backend": "torch",
        "output_frame": "map",
        "max_wait_ms": 1000.0,
        "tf_wait_ms": 1000.0,
        "queue_frames": 16,
    }
    node = start_node(params, ENV)
    context = rclpy.context.Context()
    rclpy.init(context=context)
    sub_node = rclpy.create_node("syncl_test_recorder", context=context)
    got: list[TrackedObject3DArray] = []
    sub_node.create_subscription(TrackedObject3DArray, "/syncl_tracker/tracks", got.append, 50)
    executor = rclpy.executors.SingleThreadedExecutor(context=context)
    executor.add_node(sub_node)
    try:
        options = ["--wait-for-subscribers", "60", "--rate", "0.5", "--no-clock", "--topics", *NODE_TOPICS]
        player = start_player(scene["bag"], options, ENV)
        deadline = time.monotonic() + 120
        while player.poll() is None and time.monotonic() < deadline:
            executor.spin_once(timeout_sec=0.05)
        settle = time.monotonic() + 5.0
        while len(got) < frames and time.monotonic() < settle:
            executor.spin_once(timeout_sec=0.05)
        for _ in range(10):  # a message beyond the expected ones fails the comparison
            executor.spin_once(timeout_sec=0.05)
        assert player.returncode == 0
    finally:
        stop(node)
        sub_node.destroy_node()
        rclpy.shutdown(context=context)
    return got


@pytest.mark.parametrize("case", sorted(CASES))
def test_node_matches_offline_tracking(scene: dict[str, Path], case: str, tmp_path: Path) -> None:
    from nuscenes.nuscenes import NuScenes

    method, extra = CASES[case]
    offline_path = track_offline(scene, method, extra)
    offline = json.loads(offline_path.read_text())["results"]
    messages = record_node_output(scene, method, extra, len(offline))
    assert sum(len(boxes) for boxes in offline.values()) > 0, "a comparison needs tracks"
    if extra:  # the early exits changed the tracks: the comparison below is not of full-depth runs
        full_depth = json.loads(track_offline(scene, method, {}).read_text())["results"]
        assert full_depth != offline
    nusc = NuScenes("v1.0-trainval", str(scene["data"]), verbose=False)
    # the node stamps a frame with its anchor (CAM_FRONT) capture time; results are at the sample time
    anchor_ns = {
        t: nusc.get("sample_data", nusc.get("sample", t)["data"]["CAM_FRONT"])["timestamp"] * 1000
        for t in offline
    }
    by_stamp = {stamp: t for t, stamp in anchor_ns.items()}
    online: dict[str, list[dict[str, Any]]] = {}
    for msg in messages:
        stamp = msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec
        assert msg.header.frame_id == "map" and stamp in by_stamp, stamp
        assert list(msg.cameras) == list(CAMERA_CHANNELS)  # every camera delivered into every frame
        online[by_stamp[stamp]] = [
            {
                "id": str(o.track_id),
                "xyz": [o.pose.position.x, o.pose.position.y, o.pose.position.z],
                "score": o.score,
            }
            for o in msg.objects
        ]
    assert set(online) == set(offline), "the node processed exactly the key frames"
    for token, boxes in offline.items():
        mine = {b["id"]: b for b in online[token]}
        assert set(mine) == {b["tracking_id"] for b in boxes}, "same track ids"
        dt_s = (nusc.get("sample", token)["timestamp"] * 1000 - anchor_ns[token]) * 1e-9
        for b in boxes:
            at_anchor = np.array(b["translation"]) - np.array([*b["velocity"], 0.0]) * dt_s
            assert np.allclose(mine[b["tracking_id"]]["xyz"], at_anchor, atol=1e-4)
            assert mine[b["tracking_id"]]["score"] == pytest.approx(b["tracking_score"], abs=1e-3)

    # AMOTA of the recorded node output (map frame, moved to the sample times) equals the offline AMOTA
    recorded, unmatched = results_from_messages(messages, nusc, offline)
    assert unmatched == 0
    node_results = tmp_path / "node.json"
    node_results.write_text(json.dumps({"meta": RESULTS_META, "results": recorded}))
    amota = {}
    for name, path in (("node", node_results), ("offline", offline_path)):
        metrics = evaluate_tracking(path, scene["data"], "v1.0-trainval", "val", tmp_path / name)
        amota[name] = metrics["overall"]["amota"]
    assert amota["node"] == pytest.approx(amota["offline"], abs=1e-3)
