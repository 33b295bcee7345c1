"""Liveness of the rig's cameras and of the processing, for the node's /diagnostics.

Pure Python (no rclpy), on a clock the caller passes in (the node: its monotonic clock, on which
images arrive; a paused bag is silence). The node reports what happens; this class turns it into
a level and a message per status:

- input: OK while every camera delivers; WARN naming each camera silent, or whose images have
  all been dropped, for longer than ``camera_timeout``; ERROR when fewer than ``min_cameras``
  cameras deliver.
- pipeline: OK while frames are processed; ERROR when none was for longer than ``frame_timeout``.

Before the first image arrives both read WARN: nothing has started, so nothing is out yet.
A camera's images "have all been dropped" when frames or images were lost because of it and no
frame was processed since, for longer than ``camera_timeout`` (a camera whose stream continues
while another camera's faults stop all frames is not blamed).
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any

OK, WARN, ERROR = 0, 1, 2  # DiagnosticStatus levels
S = 1_000_000_000
RATE_WINDOW_NS = 2 * S  # image rates count the arrivals in this window before now
_MAX_ARRIVALS = 4096  # bounds memory whatever the rate; rates above ~2 kHz read low


@dataclass(frozen=True)
class HealthLimits:
    camera_timeout_ns: int  # a camera silent, or all its images dropped, this long: WARN
    frame_timeout_ns: int  # no frame processed this long: ERROR
    min_cameras: int  # fewer cameras delivering: ERROR (0: never)


@dataclass
class _Camera:
    arrivals: deque[int]
    last_image_ns: int | None = None
    blamed_since_ns: int | None = None  # first loss blamed on it since the last processed frame
    last_blame_ns: int | None = None
    last_reason: str = ""


class RigHealth:
    """Per-camera arrivals and losses, processed frames; statuses at any time. Thread-safe."""

    def __init__(self, channels: Sequence[str], limits: HealthLimits) -> None:
        self.limits = limits
        self._cameras = {c: _Camera(deque(maxlen=_MAX_ARRIVALS)) for c in channels}
        self._started_ns: int | None = None  # the first image's arrival
        self._last_frame_ns: int | None = None
        self._last_loss = ""  # why the newest frame was lost, when no camera was to blame
        self._lock = threading.Lock()

    # -- events ---------------------------------------------------------------------------------

    def image(self, channel: str, now_ns: int) -> None:
        """An image of this camera arrived (whatever becomes of it)."""
        with self._lock:
            cam = self._cameras[channel]
            cam.arrivals.append(now_ns)
            cam.last_image_ns = now_ns
            if self._started_ns is None:
                self._started_ns = now_ns

    def blame(self, channel: str, reason: str, now_ns: int) -> None:
        """An image or a frame was lost because of this camera (missing, out of order, bad size…)."""
        with self._lock:
            cam = self._cameras[channel]
            if cam.blamed_since_ns is None:
                cam.blamed_since_ns = now_ns
            cam.last_blame_ns, cam.last_reason = now_ns, reason

    def frame_lost(self, reason: str) -> None:
        """A frame was lost for a reason no camera is to blame for (e.g. no ego pose)."""
        with self._lock:
            self._last_loss = reason

    def processed(self, now_ns: int, without: Collection[str] = ()) -> None:
        """A frame went through: every camera delivered into it, except those ``without``."""
        with self._lock:
            self._last_frame_ns = now_ns
            self._last_loss = ""
            for channel, cam in self._cameras.items():
                if channel not in without:
                    cam.blamed_since_ns = None

    # -- statuses ---------------------------------------------------------------------------------

    def camera_values(self, now_ns: int) -> dict[str, dict[str, Any]]:
        """Per camera: arrival rate over the last window, seconds since its last image, state."""
        with self._lock:
            return {c: self._camera_values(cam, now_ns) for c, cam in self._cameras.items()}

    def input_status(self, now_ns: int) -> tuple[int, str]:
        with self._lock:
            if self._started_ns is None:
                return WARN, "no image received yet"
            problems = [f"{c} {p}" for c, cam in self._cameras.items() if (p := self._problem(cam, now_ns))]
        total = len(self._cameras)
        delivering = total - len(problems)
        if delivering < self.limits.min_cameras:
            return ERROR, f"{delivering} of {total} cameras delivering: " + "; ".join(problems)
        if problems:
            return WARN, "; ".join(problems)
        return OK, f"{total} cameras delivering"

    def pipeline_status(self, now_ns: int) -> tuple[int, str]:
        with self._lock:
            if self._started_ns is None:
                return WARN, "no frame processed yet: no image received"
            since = self._last_frame_ns if self._last_frame_ns is not None else self._started_ns
            idle_s = (now_ns - since) / S
            loss = f" (last frame lost: {self._last_loss})" if self._last_loss else ""
            if now_ns - since > self.limits.frame_timeout_ns:
                return ERROR, f"no frame processed for {idle_s:.1f} s{loss}"
            if self._last_frame_ns is None:
                return WARN, "no frame processed yet" + loss
        return OK, "processing"

    def levels(self, now_ns: int) -> tuple[int, int]:
        """(input, pipeline) levels: cheap enough to check often and publish when they change."""
        return self.input_status(now_ns)[0], self.pipeline_status(now_ns)[0]

    # -- internals --------------------------------------------------------------------------------

    def _problem(self, cam: _Camera, now_ns: int) -> str:
        """What is wrong with a camera for longer than the timeout, or ''."""
        timeout = self.limits.camera_timeout_ns
        assert self._started_ns is not None
        heard = cam.last_image_ns if cam.last_image_ns is not None else self._started_ns
        if now_ns - heard > timeout:
            what = "silent" if cam.last_image_ns is not None else "no image"
            return f"{what} for {(now_ns - heard) / S:.1f} s"
        since, last = cam.blamed_since_ns, cam.last_blame_ns
        if since is not None and last is not None and now_ns - since > timeout and now_ns - last <= timeout:
            return f"images dropped for {(now_ns - since) / S:.1f} s ({cam.last_reason})"
        return ""

    def _camera_values(self, cam: _Camera, now_ns: int) -> dict[str, Any]:
        while cam.arrivals and cam.arrivals[0] <= now_ns - RATE_WINDOW_NS:
            cam.arrivals.popleft()
        age = None if cam.last_image_ns is None else round((now_ns - cam.last_image_ns) / S, 3)
        started = self._started_ns is not None
        state = (self._problem(cam, now_ns) if started else "no image yet") or "ok"
        rate = round(len(cam.arrivals) * S / RATE_WINDOW_NS, 3)
        return {"rate_hz": rate, "last_image_s": age, "state": state}
