"""The main job (`make demo`): a synthetic six-camera scene -> rosbag2 -> the tracker node over
real DDS, fed by `syncl play` (separate processes) -> the cameras, TF and everything the node
published (its ~/overlay on), recorded here as an MCAP that Foxglove opens -> official tracking
metrics, a bird's-eye-view picture, and the camera overlays beside the bird's-eye view as a
video and a still, against ground truth.

    python -m syncl_ros.tools.demo [--out demo_out] [--model CKPT]   (default: the shipped model)
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

VERSION, SPLIT, SEED = "v1.0-trainval", "val", 3


def step(message: str) -> None:
    print(f"demo: {message}", flush=True)


def prepare_data(out: Path, seconds: float) -> tuple[Path, Path, str]:
    """OUT/data (one synthetic scene) and OUT/bag (its bag), each made when missing; the scene's name."""
    from syncl_ros.data.convert import convert_scene
    from syncl_ros.data.synth.writer import DEFAULT_WORKERS, write_dataset

    data, bag = out / "data", out / "bag"
    if not (data / VERSION / "scene.json").is_file():
        step("generating a synthetic six-camera scene")
        write_dataset(data, 1, SEED, SPLIT, seconds, DEFAULT_WORKERS)
    scene = json.loads((data / VERSION / "scene.json").read_text())[0]["name"]
    if not bag.is_dir():
        step("converting it to a rosbag2 bag")
        stats = convert_scene(data, VERSION, scene, bag)
        step(f"wrote {stats.out}: {stats.total_messages} messages, {stats.duration_s:.1f} s of data")
    return data, bag, scene


def record(bag: Path, model: Path, out: Path, extra: list[str], rate: float) -> Path:
    """Node and player as their own processes, inputs and outputs recorded here; the bag's MCAP."""
    from syncl_ros.ros.processes import ros_env
    from syncl_ros.ros.recorder import record_node_replay

    # generous waits and a queue: the demo scores every key frame, even on a loaded machine
    params = {
        "model": model,
        "output_frame": "map",
        "max_wait_ms": 1000.0,
        "tf_wait_ms": 1000.0,
        "queue_frames": 16,
        "overlay": True,
    }
    return record_node_replay(bag, params, out / "recording", ros_env(), extra, log=step, rate=rate)


def write_pictures(nusc: Any, results: dict[str, list[dict[str, Any]]], scene: str, out: Path) -> Path:
    """The camera overlays beside the bird's-eye view: tracks.mp4 (one key frame per video frame)
    and overlay.png (the middle key frame)."""
    from syncl_ros.viz.render_cli import write_png, write_video
    from syncl_ros.viz.scene import render_sample, scene_samples
    from syncl_ros.viz.sources import tracks_from_results

    tracks = tracks_from_results(results)
    frames = [render_sample(nusc, s, tracks.get(s["token"], [])) for s in scene_samples(nusc, scene)]
    write_video(frames, out / "tracks.mp4", fps=2.0)
    return write_png(out / "overlay.png", frames[len(frames) // 2])


def main(argv: list[str] | None = None) -> int:
    from nuscenes.nuscenes import NuScenes

    from syncl_ros.atomic import write_json_atomic
    from syncl_ros.eval.cli import format_table
    from syncl_ros.eval.plots import plot_bev
    from syncl_ros.eval.tracking import EvalError, evaluate_tracking
    from syncl_ros.inference.default_model import default_model_path
    from syncl_ros.pipeline.results import RESULTS_META
    from syncl_ros.ros.recording import results_from_messages
    from syncl_ros.viz.sources import recorded_messages

    p = argparse.ArgumentParser(prog="demo", description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=Path("demo_out"))
    p.add_argument("--model", type=Path, default=None, help="checkpoint (default: the shipped model)")
    p.add_argument("--seconds", type=float, default=20.0, help="length of the synthetic scene")
    p.add_argument(
        "--rate",
        type=float,
        default=1.0,
        help="replay speed (below 1 on a machine too slow or too loaded to track in real time)",
    )
    p.add_argument(
        "--node-param",
        dest="node_params",
        action="append",
        default=[],
        metavar="NAME:=VALUE",
        help="extra node parameter, e.g. --node-param tracker.birth_score:=0.3",
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
    mcap = record(bag, model, args.out, args.node_params, args.rate)
    nusc = NuScenes(VERSION, str(data), verbose=False)
    messages = list(recorded_messages(mcap))
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
    still = write_pictures(nusc, results, scene, args.out)
    written = [args.out / "bev.png", args.out / "tracks.mp4", still, args.out / "eval" / "metrics.json", mcap]
    step("wrote " + ", ".join(str(p) for p in written))
    step(f"open {mcap} in Foxglove or Lichtblick (3D panel: markers, images with CameraInfo)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
