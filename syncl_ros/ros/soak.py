"""`syncl bench soak`: the tracker node over a long replay with faults injected, as a user runs it.

A bag (by default the synthetic 20 s scene of `syncl bench node`) loops through `syncl play
--faults SEED`, which breaks images, silences cameras, poisons /tf, jumps back in time and
bursts at twice the rate at seeded random times (ros/faults.py). The node runs as its own
process, processing every synchronized frame; this process listens to its tracks and
/diagnostics and samples its memory. At the end (the player stopped, the node drained):
is the node still up, did its RSS stay within 5 % of its value after warm-up, is its receive ->
publish latency in the last third of the run that of the first, and did it count every fault
(ros/soak_accounting.py). The table goes to OUT/soak.md, the numbers to OUT/soak.json and the
injector's log to OUT/faults.jsonl.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import sys
import tempfile
import threading
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from syncl_ros.ros.bench_node import proc_stats, synthetic_bag
from syncl_ros.ros.processes import NODE_TOPICS, ros_env, start_node, start_player, stop
from syncl_ros.ros.soak_accounting import PublishedFrame, node_values

RSS_EVERY_S = 2.0
FIRST_FRAME_TIMEOUT_S = 300.0  # model load + a first frame on a loaded machine
DRAIN_S = 3.0  # quiet time after the player stops: the worker's last frame and a fresh /diagnostics
_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text: str) -> float:
    """'90', '30s', '10m', '1.5h' -> seconds."""
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([smh]?)\s*", text)
    if not match or float(match.group(1)) <= 0:
        raise argparse.ArgumentTypeError(f"not a duration: {text!r} (e.g. 30s, 10m, 1h)")
    return float(match.group(1)) * _UNITS[match.group(2) or "s"]


def configure_parser(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", type=Path, default=None, help="checkpoint or export folder (default: shipped)")
    p.add_argument("--bag", type=Path, default=None, help="bag to loop (default: a synthetic scene)")
    p.add_argument("--duration", type=parse_duration, default=600.0, help="e.g. 30s, 10m, 30m (default: 10m)")
    p.add_argument("--seed", type=int, default=0, help="fault schedule seed (default: 0)")
    p.add_argument("--fault-every", type=float, default=5.0, help="mean seconds between faults (default: 5)")
    p.add_argument(
        "--warmup",
        type=parse_duration,
        default=None,
        help="RSS reference taken after this (default: a tenth of the duration, at least 5 s)",
    )
    p.add_argument("--backend", default="auto", help="node backend (default: auto)")
    p.add_argument("--tracker", default="", help="node parameter tracker.method (default: the model's)")
    p.add_argument(
        "--period",
        type=float,
        default=0.0,
        help="node process_period_s (default 0: every synchronized frame)",
    )
    p.add_argument("--out", type=Path, default=Path("bench_out"), help="folder for soak.md, soak.json")


class Listener:
    """The node's tracks (arrival, stamp, cameras) and latest /diagnostics, spun in a thread."""

    def __init__(self) -> None:
        import rclpy
        from diagnostic_msgs.msg import DiagnosticArray
        from rclpy.executors import SingleThreadedExecutor

        from syncl_ros.msg import TrackedObject3DArray

        self.frames: list[PublishedFrame] = []
        self.diag: dict[str, dict[str, str]] = {}
        self.diag_at = 0.0
        self.context = rclpy.context.Context()
        rclpy.init(context=self.context)
        self.node = rclpy.create_node("syncl_soak_listener", context=self.context)
        self.node.create_subscription(TrackedObject3DArray, "/syncl_tracker/tracks", self._on_tracks, 100)
        self.node.create_subscription(DiagnosticArray, "/diagnostics", self._on_diag, 10)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.thread = threading.Thread(target=self.executor.spin, daemon=True)
        self.thread.start()

    def _on_tracks(self, msg: Any) -> None:
        stamp = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
        self.frames.append(PublishedFrame(time.monotonic(), stamp, tuple(msg.cameras)))

    def _on_diag(self, msg: Any) -> None:
        self.diag = {st.name: {kv.key: kv.value for kv in st.values} for st in msg.status}
        self.diag_at = time.monotonic()

    def close(self) -> None:
        import rclpy

        self.executor.shutdown()
        self.thread.join(timeout=5.0)
        self.node.destroy_node()
        rclpy.shutdown(context=self.context)


def _wait_first_frame(listener: Listener, node: Any) -> float:
    deadline = time.monotonic() + FIRST_FRAME_TIMEOUT_S
    while not listener.frames:
        if node.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"the node published no frame (exit status {node.poll()})")
        time.sleep(0.1)
    return listener.frames[0].arrival_s


def _sample(node: Any, until: float) -> tuple[list[tuple[float, float]], float]:
    """(monotonic s, RSS MiB) every RSS_EVERY_S until ``until`` or the node's end; CPU s used."""
    samples: list[tuple[float, float]] = []
    cpu0, _ = proc_stats(node.pid)
    cpu = cpu0
    while node.poll() is None:
        try:
            cpu, rss = proc_stats(node.pid)
        except OSError:  # gone between poll and read
            break
        samples.append((time.monotonic(), rss))
        if time.monotonic() >= until:
            break
        time.sleep(min(RSS_EVERY_S, max(0.0, until - time.monotonic())))
    return samples, cpu - cpu0


def _drain(listener: Listener) -> None:
    """Wait until no frame came for DRAIN_S and a /diagnostics published after the last one says
    that the worker holds no frame (on a loaded machine one can take longer than DRAIN_S)."""
    deadline = time.monotonic() + 60.0
    while time.monotonic() < deadline:
        last = listener.frames[-1].arrival_s if listener.frames else 0.0
        quiet = time.monotonic() - last >= DRAIN_S
        if quiet and listener.diag_at > last + 1.0 and _worker_idle(listener.diag):
            return
        time.sleep(0.2)


def _worker_idle(diag: dict[str, dict[str, str]]) -> bool:
    return node_values(diag)[0].get("worker.in_flight") == "0"


def run_soak(args: argparse.Namespace, model: Path, bag: Path, tmp: Path) -> dict[str, Any]:
    """One soak run; the raw records (frames, RSS samples, latency log, faults, diagnostics)."""
    env = ros_env()
    latency_log, fault_log = tmp / "latency.jsonl", tmp / "faults.jsonl"
    params: dict[str, Any] = {
        "model": model,
        "backend": args.backend,
        "process_period_s": args.period,
        "latency_log": latency_log,
    }
    if args.tracker:
        params["tracker.method"] = args.tracker
    faults = [
        "--faults",
        str(args.seed),
        "--fault-every",
        str(args.fault_every),
        "--fault-log",
        str(fault_log),
    ]
    options = ["--loop", "--no-clock", "--wait-for-subscribers", "120", *faults, "--topics", *NODE_TOPICS]
    listener = Listener()  # before the node: it hears the first frame
    node = start_node(params, env)
    player = start_player(bag, options, env, quiet=True)
    try:
        began = _wait_first_frame(listener, node)
        samples, cpu_s = _sample(node, began + args.duration)
        stop(player)
        _drain(listener)
        alive = node.poll() is None
    finally:
        stop(player, node)
        listener.close()
    return {
        "alive": alive,
        "began": began,
        "seconds": (samples[-1][0] - began) if samples else 0.0,
        "cpu_s": cpu_s,
        "rss": samples,
        "frames": listener.frames,
        "diag": listener.diag,
        "latency": _read_jsonl(latency_log),
        "faults": _read_jsonl(fault_log),
        "fault_log": fault_log,
    }


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _write_frames(frames: list[PublishedFrame], path: Path) -> None:
    """The published frames, for checking the books by hand."""
    with path.open("w", encoding="utf-8") as f:
        for frame in frames:
            f.write(json.dumps(asdict(frame)) + "\n")


def main(args: argparse.Namespace) -> int:
    from syncl_ros.atomic import write_atomic, write_json_atomic
    from syncl_ros.inference.default_model import default_model_path
    from syncl_ros.ros.soak_report import summarize, to_markdown

    with tempfile.TemporaryDirectory() as tmp:
        try:
            model = args.model or default_model_path()
            bag = args.bag or synthetic_bag(Path(tmp))
            run = run_soak(args, model, bag, Path(tmp))
        except (FileNotFoundError, RuntimeError) as err:
            print(f"syncl bench soak: {err}", file=sys.stderr)
            return 2
        args.out.mkdir(parents=True, exist_ok=True)
        if run["fault_log"].is_file():
            shutil.copyfile(run["fault_log"], args.out / "faults.jsonl")
    _write_frames(run["frames"], args.out / "frames.jsonl")
    summary = summarize(run, args, model)
    table = to_markdown(summary)
    print(table)

    def save(f: Any) -> None:
        f.write(table + "\n")

    write_atomic(args.out / "soak.md", save, mode="w")
    write_json_atomic(args.out / "soak.json", summary, indent=1)
    print(f"wrote {args.out / 'soak.md'} (and soak.json, faults.jsonl, frames.jsonl)")
    return 0 if summary["node_alive"] and summary["all_counted"] else 1
