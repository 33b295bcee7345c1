"""`syncl bench node`: the tracker node under a sustained camera stream, as a user runs it.

A bag (by default a synthetic 20 s scene, converted) is replayed in a loop by `syncl play`
at its recorded rate (12 Hz per camera, compressed 1600x900), the node runs as its own
process set to process every synchronized frame, and this process listens to its output.
Reported: end-to-end latency (anchor image received -> tracks published) p50/p95 from the
node's own diagnostics, the sustained processed rate, the node's CPU use and its resident
memory at the start and the end of the run (flat memory = no leak). With `--tracker both`
(the default) a fresh node runs once per tracker (queries, greedy), one table row each;
`--overlay on|both` also runs it with its ~/overlay debug image published (the cost of that
picture). The table goes to OUT/bench_node.md and, next to it, OUT/latency.png: histograms of
every frame's receive -> publish latency and of each stage, one colour per run (the node
writes each frame's timings to its latency_log).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from syncl_ros.ros.processes import ros_env, start_node, start_player, stop
from syncl_ros.tracking.config import TRACKING_METHODS

PAGE = os.sysconf("SC_PAGE_SIZE")
TICKS = os.sysconf("SC_CLK_TCK")


def configure_parser(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", type=Path, default=None, help="checkpoint or export folder (default: shipped)")
    p.add_argument("--bag", type=Path, default=None, help="bag to replay (default: a synthetic scene)")
    p.add_argument("--seconds", type=float, default=60.0, help="measured replay time (default: 60)")
    p.add_argument("--backend", default="auto", help="node backend (default: auto)")
    p.add_argument(
        "--period",
        type=float,
        default=0.0,
        help="node process_period_s (default 0: every synchronized frame)",
    )
    p.add_argument(
        "--overlay",
        choices=("off", "on", "both"),
        default="off",
        help="node parameter overlay; both: each tracker once without and once with it (default: off)",
    )
    p.add_argument("--out", type=Path, default=Path("bench_out"), help="folder for the table and latency.png")
    p.add_argument(
        "--tracker",
        choices=(*TRACKING_METHODS, "both"),
        default="both",
        help="node parameter tracker.method; both: one run per tracker, one after the other (default: both)",
    )


def proc_stats(pid: int) -> tuple[float, float]:
    """(CPU seconds used, resident MiB) of a process, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / TICKS
    rss_pages = int(Path(f"/proc/{pid}/statm").read_text().split()[1])
    return cpu, rss_pages * PAGE / 2**20


def synthetic_bag(folder: Path) -> Path:
    """A 20 s synthetic val scene (seed 5) converted to a bag under ``folder``; ConvertError if not."""
    from syncl_ros.data.convert import convert_scene
    from syncl_ros.data.synth.writer import DEFAULT_WORKERS, write_dataset

    data, bag = folder / "data", folder / "bag"
    tables = write_dataset(data, 1, seed=5, split="val", workers=DEFAULT_WORKERS)
    scene = json.loads((tables / "scene.json").read_text())[0]["name"]
    convert_scene(data, tables.name, scene, bag)
    return bag


def listen(seconds: float, node_pid: int) -> dict[str, Any]:
    import rclpy
    from diagnostic_msgs.msg import DiagnosticArray

    from syncl_ros.msg import TrackedObject3DArray

    rclpy.init()
    node = rclpy.create_node("syncl_bench_listener")
    arrivals: list[float] = []
    diag: dict[str, str] = {}
    node.create_subscription(
        TrackedObject3DArray, "/syncl_tracker/tracks", lambda _m: arrivals.append(time.monotonic()), 50
    )

    def on_diagnostics(m: DiagnosticArray) -> None:
        diag.update({kv.key: kv.value for st in m.status for kv in st.values})

    node.create_subscription(DiagnosticArray, "/diagnostics", on_diagnostics, 10)
    while not arrivals:  # the measurement starts with the first published frame
        rclpy.spin_once(node, timeout_sec=0.1)
    cpu0, rss0 = proc_stats(node_pid)
    start = time.monotonic()
    while time.monotonic() - start < seconds:
        rclpy.spin_once(node, timeout_sec=0.1)
    cpu1, rss1 = proc_stats(node_pid)
    node.destroy_node()
    rclpy.shutdown()
    frames = [t for t in arrivals if t >= start]
    return {
        "frames": len(frames),
        "rate_hz": len(frames) / seconds,
        "cpu_cores": (cpu1 - cpu0) / seconds,
        "rss_start_mib": rss0,
        "rss_end_mib": rss1,
        "diag": diag,
    }


def main(args: argparse.Namespace) -> int:
    from syncl_ros.inference.default_model import default_model_path

    env = ros_env()
    methods = TRACKING_METHODS if args.tracker == "both" else (args.tracker,)
    overlays = {"off": (False,), "on": (True,), "both": (False, True)}[args.overlay]
    with tempfile.TemporaryDirectory() as tmp:
        try:
            model = args.model or default_model_path()
            bag = args.bag or synthetic_bag(Path(tmp))
        except (FileNotFoundError, RuntimeError) as err:
            print(f"syncl bench node: {err}", file=sys.stderr)
            return 2
        results = [
            run_node(method, overlay, model, bag, args, env, Path(tmp))
            for method in methods
            for overlay in overlays
        ]
    table = format_table(results, args, model)
    print(table)
    from syncl_ros.atomic import write_atomic
    from syncl_ros.ros.bench_plot import plot_latency

    table_path = write_atomic(args.out / "bench_node.md", lambda f: print(table, file=f), mode="w")
    plot_path = plot_latency(results, args.out / "latency.png")
    print(f"wrote {table_path} and {plot_path}")
    return 0


def run_node(
    method: str,
    overlay: bool,
    model: Path,
    bag: Path,
    args: argparse.Namespace,
    env: dict[str, str],
    tmp: Path,
) -> dict[str, Any]:
    """One measured run of a fresh node (and player) with tracker `method`, overlay on or off."""
    log = tmp / f"latency_{method}_{'overlay' if overlay else 'plain'}.jsonl"
    params = {
        "model": model,
        "backend": args.backend,
        "process_period_s": args.period,
        "tracker.method": method,
        "overlay": overlay,
        "latency_log": log,
    }
    node = start_node(params, env)
    player = start_player(bag, ["--loop", "--wait-for-subscribers", "30"], env, quiet=True)
    try:
        result = listen(args.seconds, node.pid)
    finally:
        stop(player, node)
    # The node's own word for the tracker it ran, so a parameter it ignored cannot pass unseen.
    tracker = result["diag"].get("tracker.method", f"{method}?")
    samples = [json.loads(line) for line in log.read_text().splitlines()] if log.is_file() else []
    return {**result, "tracker": tracker, "overlay": overlay, "samples": samples[-result["frames"] :]}


COLUMNS = (
    "tracker",
    "overlay",
    "frames/s",
    "receive->publish ms p50 / p95",
    "stage p50 ms: decode+prepare one image (on arrival) / assemble / encode / decode / tracker / overlay",
    "dropped while busy (latest wins)",
    "node CPU cores",
    "node RSS MiB start -> end",
    "backend",
)
STAGES = ("prepare_image", "assemble", "encode", "decode", "tracker", "overlay")


def _cells(r: dict[str, Any], seconds: float) -> list[str]:
    d = r["diag"]
    return [
        r["tracker"],
        "on" if r["overlay"] else "off",
        f"{r['rate_hz']:.2f} ({r['frames']} in {seconds:.0f} s)",
        " / ".join(d.get(f"latency.receive_to_publish.{q}_ms", "?") for q in ("p50", "p95")),
        " / ".join(d.get(f"latency.{s}.p50_ms", "-" if s == "overlay" else "?") for s in STAGES),
        d.get("worker.replaced_while_busy", "?"),
        f"{r['cpu_cores']:.2f}",
        f"{r['rss_start_mib']:.0f} -> {r['rss_end_mib']:.0f}",
        d.get("backend", "?"),
    ]


def format_table(results: list[dict[str, Any]], args: argparse.Namespace, model: Path) -> str:
    """A title line and one Markdown row per run (per tracker and overlay setting)."""
    lines = [
        f"syncl bench node: model {model}, {os.cpu_count()} CPUs, {args.seconds:.0f} s per run",
        "| " + " | ".join(COLUMNS) + " |",
        "|" + "---|" * len(COLUMNS),
    ]
    lines += ["| " + " | ".join(_cells(r, args.seconds)) + " |" for r in results]
    return "\n".join(lines)
