"""The tracker node and the bag player as processes of their own, as a user runs them
(used by the demo, the node benchmark and the integration tests)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from syncl_ros.rig import CAMERA_CHANNELS

# What the node subscribes to with its default (nuScenes) parameters: a player restricted to
# these topics can wait until every one of them has its subscriber.
NODE_TOPICS = ["/tf", "/tf_static"] + [
    f"/{c}/{kind}" for c in CAMERA_CHANNELS for kind in ("image_rect_compressed", "camera_info")
]


def ros_env(**extra: str) -> dict[str, str]:
    """This process's environment with discovery kept on this machine unless set otherwise."""
    env = dict(os.environ, **extra)
    env.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    return env


def start_node(
    params: Mapping[str, Any], env: Mapping[str, str], extra: Sequence[str] = ()
) -> subprocess.Popen[bytes]:
    """`syncl node` with `-p name:=value` for each parameter (and raw `name:=value` strings in extra)."""
    ros = [a for k, v in params.items() for a in ("-p", f"{k}:={v}")] + [a for e in extra for a in ("-p", e)]
    return subprocess.Popen(
        [sys.executable, "-m", "syncl_ros.cli", "node", "--ros-args", *ros], env=dict(env)
    )


def start_player(
    bag: Path, options: Sequence[str], env: Mapping[str, str], quiet: bool = False
) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "syncl_ros.cli", "play", str(bag), *options],
        env=dict(env),
        stdout=subprocess.DEVNULL if quiet else None,
    )


def stop(*procs: subprocess.Popen[Any], timeout_s: float = 30.0) -> None:
    """Ctrl-C each process (clean shutdown) and wait for it."""
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
    for proc in procs:
        proc.wait(timeout=timeout_s)


def wait_for_subscriptions(
    graph_node: Any, topics: Sequence[str], node_name: str = "syncl_tracker", timeout_s: float = 120.0
) -> bool:
    """Spin ``graph_node`` until ``node_name`` subscribes to every topic (it does so when it
    activates, after loading its model). A player's --wait-for-subscribers cannot tell the node
    from another subscriber such as a recorder, which would let the node miss the first messages."""
    import time

    import rclpy

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        subscribed = {
            t
            for t in topics
            if any(i.node_name == node_name for i in graph_node.get_subscriptions_info_by_topic(t))
        }
        if subscribed == set(topics):
            return True
        rclpy.spin_once(graph_node, timeout_sec=0.1)
    return False
