"""Spinning a ROS 2 process until Ctrl-C, shutdown or a deadline, quietly on the shutdown race."""

from __future__ import annotations

import time
from typing import Any

from rclpy.executors import ExternalShutdownException
from rclpy.utilities import ok  # rclpy imports it without re-exporting it


def spin_until_shutdown(executor: Any, seconds: float | None = None) -> None:
    """Spin until Ctrl-C, a shutdown of the context or ``seconds`` (None: no limit); any other
    error propagates."""
    try:
        if seconds is None:
            executor.spin()
            return
        deadline = time.monotonic() + seconds
        while ok() and time.monotonic() < deadline:
            executor.spin_once(timeout_sec=0.1)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except Exception:
        # SIGINT shuts the context down from a signal handler: a spin already past its own check
        # then fails to build its wait set (RCLError) instead of raising ExternalShutdownException.
        if ok():
            raise
