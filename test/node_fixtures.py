"""The tracker node in-process for tests: a real rclpy node on a context of its own, with the
real backend and tracker, on an untrained tiny model; tests hand messages to its callbacks."""

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import rclpy  # make setup installs it: a missing rclpy fails, never skips
import torch
from rclpy.parameter import Parameter
from training_fixtures import TINY_MODEL

from syncl_ros.experiment import Experiment
from syncl_ros.experiment.checkpoint import save_checkpoint
from syncl_ros.model.network import TrackerNet
from syncl_ros.ros.node import TrackerNode


def untrained_model(path: Path) -> Path:
    """The tiny test network, seeded, saved as a checkpoint at `path`."""
    torch.manual_seed(0)
    return save_checkpoint(path, TrackerNet(TINY_MODEL), Experiment(path.stem, model=TINY_MODEL), {})


@contextmanager
def active_node(model: Path, params: dict[str, Any]) -> Iterator[TrackerNode]:
    """A configured and activated node (torch backend) with these parameters; torn down after."""
    context = rclpy.context.Context()
    rclpy.init(context=context)
    settings = {"model": str(model), "backend": "torch", **params}
    overrides = [Parameter(k, value=v) for k, v in settings.items()]
    node = TrackerNode(context=context, parameter_overrides=overrides)
    try:
        node.trigger_configure()
        node.trigger_activate()
        yield node
    finally:
        if node.pipeline is not None:
            node.pipeline.stop()
        node.destroy_node()
        rclpy.shutdown(context=context)
