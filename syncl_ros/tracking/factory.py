"""The tracker a model's settings ask for (``tracker.method``), for the node and offline tracking."""

from __future__ import annotations

from syncl_ros.tracking.config import TrackerConfig
from syncl_ros.tracking.greedy import GreedyTracker
from syncl_ros.tracking.interface import ModelShape, Tracker
from syncl_ros.tracking.query_tracker import QueryTracker


def make_tracker(config: TrackerConfig, model: ModelShape, seed: int | None = None) -> Tracker:
    """A fresh tracker of ``config.method`` for the network ``model``: "queries" (track queries) or
    "greedy" (by detection)."""
    if config.method == "greedy":
        return GreedyTracker(config, model, seed)
    return QueryTracker(config, model, seed)
