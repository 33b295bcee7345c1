"""What the live pipeline reports: event counters whose warnings are throttled per kind, and
recent latency samples per stage."""

from __future__ import annotations

import math
import time
from collections import defaultdict, deque
from collections.abc import Callable

import numpy as np

WARN_PERIOD_S = 5.0  # each kind of warning is logged at most this often


class Latency:
    """Recent samples of one stage, in milliseconds."""

    def __init__(self, size: int = 300) -> None:
        self.samples: deque[float] = deque(maxlen=size)

    def add(self, ms: float) -> None:
        self.samples.append(ms)

    def summary(self) -> dict[str, float]:
        if not self.samples:
            return {}
        a = np.asarray(self.samples)
        return {"p50_ms": round(float(np.median(a)), 2), "p95_ms": round(float(np.percentile(a, 95)), 2)}


class Counters:
    """Counts by key ("frames.dropped.no_ego_pose"); an event's warning goes to ``warn`` at most
    once per period per key: rclpy throttles per call site, where a frequent kind would hide
    all the others."""

    def __init__(self, warn: Callable[[str], None], period_s: float = WARN_PERIOD_S) -> None:
        self.counts: defaultdict[str, int] = defaultdict(int)
        self.warn = warn
        self._period_s = period_s
        self._warned: dict[str, float] = {}  # key -> when its warning was last given (monotonic s)

    def add(self, key: str, message: str | None = None) -> None:
        """Count one event; with a message, warn (throttled) with the count appended."""
        self.counts[key] += 1
        if message is not None and self.due(key):
            self.warn(f"{message} [{key}: {self.counts[key]}]")

    def due(self, key: str) -> bool:
        """Whether a warning of this kind may be given now (then it is taken as given)."""
        now = time.monotonic()
        if now - self._warned.get(key, -math.inf) < self._period_s:
            return False
        self._warned[key] = now
        return True
