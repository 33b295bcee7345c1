"""The demo pipeline (`make demo`) end to end: synthetic scene -> bag -> node and player over
DDS -> recorded tracks -> devkit metrics, BEV picture and video. An untrained model stands in
for the shipped one (with open thresholds so that its boxes reach the metrics)."""

import json
import subprocess
import sys
from pathlib import Path

import cv2
import pytest
import torch

from syncl_ros.experiment import load_experiment
from syncl_ros.model.checkpoint import save_checkpoint
from syncl_ros.model.network import TrackerNet
from syncl_ros.ros.processes import ros_env

ROOT = Path(__file__).resolve().parents[1]


def test_demo_pipeline_writes_metrics_picture_and_video(tmp_path: Path) -> None:
    torch.manual_seed(0)
    exp = load_experiment("tiny")
    model = save_checkpoint(tmp_path / "m.pt", TrackerNet(exp.model), exp, {"note": "untrained"})
    out = tmp_path / "demo"
    env = ros_env(ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST")
    cmd = [
        sys.executable,
        "-m",
        "syncl_ros.ros.demo",
        "--out",
        str(out),
        "--model",
        str(model),
        "--seconds",
        "3",
        "--node-param",
        "birth_score:=0.0",
        "--node-param",
        "output_score:=0.0",
    ]
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "AMOTA" in result.stdout and "0 not at a key frame" in result.stdout
    metrics = json.loads((out / "eval" / "metrics.json").read_text())
    assert 0.0 <= metrics["overall"]["amota"] <= 1.0
    picture = cv2.imread(str(out / "bev.png"))
    assert picture is not None and picture.shape[0] > 200 and picture.std() > 5
    video = cv2.VideoCapture(str(out / "tracks.mp4"))
    frames = 0
    while video.read()[0]:
        frames += 1
    samples = json.loads((out / "data" / "v1.0-trainval" / "sample.json").read_text())
    assert frames == len(samples) == 6


def test_make_demo_without_the_shipped_model_says_so() -> None:
    from syncl_ros.inference.default_model import DEFAULT_MODEL

    if DEFAULT_MODEL.is_file():
        pytest.skip("the shipped model exists: make demo runs for real")
    result = subprocess.run(
        [str(ROOT / "scripts" / "demo.sh"), "--out", "/nonexistent/never-written"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1 and "shipped default model" in result.stderr
