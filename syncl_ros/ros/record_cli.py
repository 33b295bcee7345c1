"""`syncl record OUT [--topics T ...] [--seconds S] [--use-sim-time]`: topics over DDS into a
rosbag2 bag with MCAP storage (OUT/OUT.mcap) that Foxglove and Lichtblick open, until Ctrl-C
or --seconds. Defaults: the node's inputs (cameras, CameraInfo, /tf, /tf_static) and outputs
(~/tracks, ~/detections, ~/markers, ~/overlay) and /diagnostics.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def configure_parser(p: argparse.ArgumentParser) -> None:
    from syncl_ros.ros.recorder import DEFAULT_TOPICS

    p.add_argument("out", type=Path, help="bag folder to write (the MCAP inside is OUT/OUT.mcap)")
    p.add_argument(
        "--topics", nargs="+", metavar="T", help=f"topics to record (default: {len(DEFAULT_TOPICS)})"
    )
    p.add_argument("--all", action="store_true", help="record every topic that appears")
    p.add_argument("--seconds", type=float, default=0.0, help="stop after this long (default: at Ctrl-C)")
    p.add_argument("--use-sim-time", action="store_true", help="log time from /clock (a player's bag time)")
    p.add_argument("--overwrite", action="store_true", help="replace OUT if it exists")


def main(args: argparse.Namespace) -> int:
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.parameter import Parameter
    from rclpy.utilities import try_shutdown  # rclpy imports it without re-exporting it

    from syncl_ros.ros.recorder import DEFAULT_TOPICS, McapRecorder
    from syncl_ros.ros.spin import spin_until_shutdown

    def log(text: str) -> None:
        print(f"syncl record: {text}", file=sys.stderr, flush=True)

    topics = None if args.all else (args.topics or DEFAULT_TOPICS)
    rclpy.init()
    sim_time = [Parameter("use_sim_time", value=True)] if args.use_sim_time else []
    node = rclpy.create_node("syncl_recorder", parameter_overrides=sim_time)
    try:
        recorder = McapRecorder(node, args.out, topics, log, overwrite=args.overwrite)
    except (FileExistsError, OSError) as err:
        log(str(err))
        node.destroy_node()
        try_shutdown()
        return 2
    log(f"recording to {recorder.mcap_path} (Ctrl-C to stop)")
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    try:
        spin_until_shutdown(executor, args.seconds if args.seconds > 0 else None)
    finally:
        recorder.close()
        log(recorder.summary())
        node.destroy_node()
        try_shutdown()
    return 0
