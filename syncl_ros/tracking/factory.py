"""The tracker a model's settings ask for (``tracker.method``), for the node and offline tracking."""

from __future__ import annotations

from syncl_ros.tracking.config import TrackerConfig
from syncl_ros.tracking.greedy import GreedyTracker
from syncl_ros.tracking.interface import Tracker
from syncl_ros.tracking.query_tracker import QueryTracker


def make_tracker(config: TrackerConfig, embed_dim: int, seed: int | None = None) -> Tracker:
    """A fresh tracker of ``config.method``: "queries" (track queries) or "greedy" (by detection)."""
    if config.method == "greedy":
        return GreedyTracker(config, embed_dim, seed)
    return QueryTracker(config, embed_dim, seed)
