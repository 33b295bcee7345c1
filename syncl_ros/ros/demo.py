"""The main job (`make demo`): a synthetic six-camera scene -> rosbag2 -> the tracker node over
real DDS, fed by `syncl play` (separate processes) -> what the node published, recorded here ->
official tracking metrics, a bird's-eye-view picture and a short video against ground truth.

    python -m syncl_ros.ros.demo [--out demo_out] [--model CKPT]   (default: the shipped model)
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from syncl_ros import boxes as box_ops
from syncl_ros.ros.processes import NODE_TOPICS, ros_env, start_node, start_player, stop

VERSION, SPLIT, SEED = "v1.0-trainval", "val", 3


def step(message: str) -> None:
    print(f"demo: {message}", flush=True)


def prepare_data(out: Path, seconds: float) -> tuple[Path, Path, str]:
    from syncl_ros.cli import main as syncl

    data, bag = out / "data", out / "bag"
    if not (data / VERSION / "scene.json").is_file():
        step("generating a synthetic six-camera scene")
        syncl(
            [
                "synth",
                str(data),
                "--scenes",
                "1",
                "--seed",
                str(SEED),
                "--split",
                SPLIT,
                "--duration",
                str(seconds),
            ]
        )
    scene = json.loads((data / VERSION / "scene.json").read_text())[0]["name"]
    if not bag.is_dir():
        step("converting it to a rosbag2 bag")
        syncl(["convert", str(data), "--scene", scene, "--out", str(bag)])
    return data, bag, scene


def record(bag: Path, model: Path, extra: list[str], timeout_s: float = 600.0) -> list[Any]:
    """Run node and player as their own processes; collect the node's tracks here."""
    import rclpy

    from syncl_ros.msg import TrackedObject3DArray

    env = ros_env()
    # generous waits: the demo scores every key frame, even on a loaded machine
    params = {"model": model, "output_frame": "map", "max_wait_ms": 1000.0, "tf_wait_ms": 1000.0}
    node = start_node(params, env, extra)
    rclpy.init()
    listener = rclpy.create_node("syncl_demo_recorder")
    got: list[Any] = []
    listener.create_subscription(TrackedObject3DArray, "/syncl_tracker/tracks", got.append, 100)
    try:
        step("replaying the bag through the node (DDS, separate processes)")
        player = start_player(bag, ["--wait-for-subscribers", "60", "--topics", *NODE_TOPICS], env)
        deadline = time.monotonic() + timeout_s
        while player.poll() is None and time.monotonic() < deadline:
            rclpy.spin_once(listener, timeout_sec=0.05)
        settle = time.monotonic() + 3.0
        while time.monotonic() < settle:
            rclpy.spin_once(listener, timeout_sec=0.05)
    finally:
        stop(node)
        listener.destroy_node()
        rclpy.shutdown()
    return got


def draw_frame(
    nusc: Any, token: str, tracks: list[dict[str, Any]], size: int = 800, scale: float = 6.0
) -> np.ndarray:
    """Top-down view around the ego: ground truth grey, tracks coloured by id with their ids."""
    sample = nusc.get("sample", token)
    ego = nusc.get("ego_pose", nusc.get("sample_data", sample["data"]["LIDAR_TOP"])["ego_pose_token"])
    cx, cy = ego["translation"][:2]
    img = np.full((size, size, 3), 255, np.uint8)

    def px(xy: np.ndarray) -> np.ndarray:
        return np.stack([size / 2 + (xy[:, 0] - cx) * scale, size / 2 - (xy[:, 1] - cy) * scale], 1).astype(
            np.int32
        )

    for ann in (nusc.get("sample_annotation", a) for a in sample["anns"]):
        box = box_ops.from_nuscenes(ann["translation"], ann["size"], ann["rotation"])
        cv2.polylines(img, [px(box_ops.bev_corners(box[None])[0])], True, (160, 160, 160), 2)
    for t in tracks:
        box = box_ops.from_nuscenes(t["translation"], t["size"], t["rotation"], t["velocity"])
        rng = np.random.default_rng(int(t["tracking_id"]))
        color = tuple(int(c) for c in rng.integers(40, 220, 3))
        corners = px(box_ops.bev_corners(box[None])[0])
        cv2.polylines(img, [corners], True, color, 2)
        cv2.putText(img, t["tracking_id"], tuple(corners[0]), cv2.FONT_HERSHEY_SIMPLEX, 0.4, color, 1)
    cv2.circle(img, (size // 2, size // 2), 5, (0, 0, 0), -1)
    cv2.putText(
        img, "grey: ground truth   colour: tracks (id)", (10, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1
    )
    return img


def write_video(nusc: Any, results: dict[str, list[dict[str, Any]]], path: Path, fps: float = 2.0) -> None:
    tokens = sorted(results, key=lambda t: nusc.get("sample", t)["timestamp"])
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (800, 800))
    for token in tokens:
        writer.write(draw_frame(nusc, token, results[token]))
    writer.release()


def main(argv: list[str] | None = None) -> int:
    from nuscenes.nuscenes import NuScenes

    from syncl_ros.atomic import write_json_atomic
    from syncl_ros.eval.cli import format_table
    from syncl_ros.eval.plots import plot_bev
    from syncl_ros.eval.tracking import EvalError, evaluate_tracking
    from syncl_ros.inference.default_model import default_model_path
    from syncl_ros.inference.offline import RESULTS_META
    from syncl_ros.ros.recording import results_from_messages

    p = argparse.ArgumentParser(prog="demo", description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=Path("demo_out"))
    p.add_argument("--model", type=Path, default=None, help="checkpoint (default: the shipped model)")
    p.add_argument("--seconds", type=float, default=20.0, help="length of the synthetic scene")
    p.add_argument(
        "--node-param",
        dest="node_params",
        action="append",
        default=[],
        metavar="NAME:=VALUE",
        help="extra node parameter, e.g. --node-param birth_score:=0.3",
    )
    args = p.parse_args(argv)
    try:
        model = args.model or default_model_path()
        if not model.is_file():
            raise FileNotFoundError(f"no checkpoint at {model}")
    except FileNotFoundError as err:
        print(f"demo: {err}", file=sys.stderr)
        return 1
    data, bag, scene = prepare_data(args.out, args.seconds)
    messages = record(bag, model, args.node_params)
    nusc = NuScenes(VERSION, str(data), verbose=False)
    tokens = [s["token"] for s in nusc.sample]
    results, unmatched = results_from_messages(messages, nusc, tokens)
    step(f"recorded {len(messages)} track messages ({unmatched} not at a key frame)")
    path = write_json_atomic(args.out / "results.json", {"meta": RESULTS_META, "results": results})
    try:
        metrics = evaluate_tracking(path, data, VERSION, SPLIT, args.out / "eval")
    except EvalError as err:
        print(f"demo: {err}", file=sys.stderr)
        return 1
    print(format_table(metrics))
    plot_bev(nusc, {"results": results}, scene, args.out / "bev.png", metrics=metrics["overall"])
    write_video(nusc, results, args.out / "tracks.mp4")
    step(f"wrote {args.out / 'bev.png'}, {args.out / 'tracks.mp4'}, {args.out / 'eval' / 'metrics.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
