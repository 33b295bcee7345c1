"""`syncl node`: run the tracker node (the same as `ros2 run syncl_ros tracker_node`).

Everything after the subcommand goes to rclpy, e.g.
    syncl node --ros-args --params-file config/tracker.yaml -p model:=model.pt
"""

from __future__ import annotations

import argparse


def configure_parser(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--ros-args",
        dest="ros_args",
        nargs=argparse.REMAINDER,
        default=None,
        help="everything after it goes to rclpy (parameters, remappings, params files)",
    )


def main(args: argparse.Namespace) -> int:
    from syncl_ros.ros.node import main as node_main

    ros_args = [] if args.ros_args is None else ["--ros-args", *args.ros_args]
    return node_main(["syncl_tracker", *ros_args])
