"""The demo pipeline (`make demo`) end to end: synthetic scene -> bag -> node and player over
DDS -> recorded tracks -> devkit metrics, BEV picture and video, with the shipped model."""

import json
import subprocess
import sys
from pathlib import Path

import cv2
import pytest

from syncl_ros.ros.processes import ros_env

pytestmark = pytest.mark.slow  # processes, datasets or training: see `make test-fast`

ROOT = Path(__file__).resolve().parents[1]
SECONDS = 6  # 12 key frames


def test_make_demo_with_the_shipped_model(tmp_path: Path) -> None:
    """`make demo`'s own script on a shorter scene: the shipped model at its own thresholds."""
    out = tmp_path / "demo"
    env = ros_env(ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST")
    # at half speed: a shared test machine may be too loaded to track in real time
    cmd = [str(ROOT / "scripts" / "demo.sh"), "--out", str(out), "--seconds", str(SECONDS), "--rate", "0.5"]
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "AMOTA" in result.stdout and "0 not at a key frame" in result.stdout
    metrics = json.loads((out / "eval" / "metrics.json").read_text())
    # the shipped model confirms some objects (the full 20 s demo: 26 true positives)
    assert 0.0 <= metrics["overall"]["amota"] <= 1.0 and metrics["overall"]["tp"] > 0, metrics["overall"]
    picture = cv2.imread(str(out / "bev.png"))
    assert picture is not None and picture.shape[0] > 200 and picture.std() > 5
    video = cv2.VideoCapture(str(out / "tracks.mp4"))
    frames = 0
    while video.read()[0]:
        frames += 1
    samples = json.loads((out / "data" / "v1.0-trainval" / "sample.json").read_text())
    assert frames == len(samples) == 2 * SECONDS
    # the still: six camera tiles (two rows) beside a square bird's-eye view
    still = cv2.imread(str(out / "overlay.png"))
    assert still is not None and still.shape[1] > 3 * still.shape[0] and still.std() > 5
    # the recording: cameras, TF and every output of the node, tracks once per key frame
    from mcap.reader import make_reader

    with (out / "recording" / "recording.mcap").open("rb") as f:
        stats = make_reader(f).get_summary()
    assert stats is not None and stats.statistics is not None
    topics = {c.topic: stats.statistics.channel_message_counts[i] for i, c in stats.channels.items()}
    assert topics["/syncl_tracker/tracks"] == topics["/syncl_tracker/overlay"] == 2 * SECONDS, topics
    assert topics["/tf_static"] == 1 and topics["/CAM_FRONT/image_rect_compressed"] > 10 * SECONDS


def test_demo_without_a_model_says_so(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "syncl_ros.tools.demo",
            "--out",
            str(tmp_path),
            "--model",
            str(tmp_path / "no.pt"),
        ],
        env=ros_env(ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST"),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1 and "no checkpoint" in result.stderr
