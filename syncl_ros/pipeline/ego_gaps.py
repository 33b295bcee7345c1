"""Ego poses through short gaps in the pose stream (/tf or odometry).

A pose stream that pauses for a moment (a localization hiccup, a few lost /tf messages) would
otherwise cost every frame of the pause. Up to ``max_gap_ns`` past the newest pose, the ego is
taken to keep its last motion (constant velocity and yaw rate). Further out a lookup raises
:class:`EgoPoseGapError` and the frame is lost; once poses return after such a gap,
:meth:`EgoPoseBridge.take_return` says so (once) and the node starts the tracker over: a stream
that stopped may come back relocalized, and tracks carried through motion nobody measured would
be misplaced. Pure Python: no rclpy; stamps are int ns.
"""

from __future__ import annotations

from syncl_ros.geometry import Transform, interpolate
from syncl_ros.pipeline.tf_buffer import EgoPoseSource

# The motion continued is the one over the last 0.1 s of poses: the last two at 10 Hz odometry,
# several at a faster /tf, whose jitter a single pair would carry into the extrapolation.
BASELINE_NS = 100_000_000
MIN_BASELINE_NS = 10_000_000  # poses closer together than this say too little about the motion


class EgoPoseGapError(LookupError):
    """The stamp lies further past the newest ego pose than the gap limit."""


def continue_motion(t0_ns: int, pose0: Transform, t1_ns: int, pose1: Transform, t_ns: int) -> Transform:
    """The pose at ``t_ns`` (>= ``t1_ns``) of an ego that keeps moving as it did from ``pose0`` to ``pose1``.

    The step between the two poses, taken in the ego's own frame, is repeated: whole steps are
    composed and the remainder slerped (geometry.interpolate). Speed and yaw rate stay constant,
    so a turning ego follows its arc, where a straight-line extrapolation would cut the corner.
    """
    step_ns = t1_ns - t0_ns
    if step_ns <= 0 or t_ns < t1_ns:
        raise ValueError(f"cannot continue the motion from {t0_ns}..{t1_ns} ns to {t_ns} ns")
    step = pose0.inverse() @ pose1
    whole, rest_ns = divmod(t_ns - t1_ns, step_ns)
    pose = pose1
    for _ in range(whole):
        pose = pose @ step
    return pose @ interpolate(0, Transform.identity(), step_ns, step, rest_ns)


class EgoPoseBridge:
    """An ego pose source that continues the last motion through gaps of up to ``max_gap_ns``."""

    def __init__(self, source: EgoPoseSource, max_gap_ns: int) -> None:
        self.source = source
        self.max_gap_ns = int(max_gap_ns)
        self.extrapolated = 0  # lookups answered by continuing the last motion
        self.last_gap_ns = 0  # how far past the newest pose the latest of them reached
        self._lost = False  # a lookup failed beyond the limit, and none succeeded since
        self._returned = False  # poses came back after that; not yet taken

    def ego_pose(self, stamp_ns: int) -> Transform:
        """The source's pose at ``stamp_ns``; past its newest pose, the last motion continued."""
        try:
            return self.measured(stamp_ns)
        except LookupError as err:
            return self.bridged(stamp_ns, err)

    def measured(self, stamp_ns: int) -> Transform:
        """The source's pose (raises its LookupError)."""
        pose = self.source.ego_pose(stamp_ns)
        self._found()
        return pose

    def bridged(self, stamp_ns: int, err: LookupError) -> Transform:
        """After the source failed with ``err``: the last motion continued to ``stamp_ns`` if the
        stamp is at most ``max_gap_ns`` past the newest pose; EgoPoseGapError if further; ``err``
        again where there is nothing to continue (no poses, a stamp inside or before them)."""
        span = self._span()
        if span is None or stamp_ns <= span[1]:
            raise err
        oldest, newest = span
        gap_ns = stamp_ns - newest
        if gap_ns > self.max_gap_ns:
            self._lost = True
            raise EgoPoseGapError(
                f"no ego pose for {gap_ns / 1e6:.0f} ms past the newest one "
                f"(extrapolated up to {self.max_gap_ns / 1e6:.0f} ms): {err}"
            ) from err
        start = max(oldest, newest - BASELINE_NS)
        if newest - start < MIN_BASELINE_NS:
            raise err
        pose0, pose1 = self.source.ego_pose(start), self.source.ego_pose(newest)
        pose = continue_motion(start, pose0, newest, pose1, stamp_ns)
        self.extrapolated += 1
        self.last_gap_ns = gap_ns
        self._found()
        return pose

    def take_return(self) -> bool:
        """True once after poses returned from a gap beyond the limit (the tracker should start over)."""
        returned, self._returned = self._returned, False
        return returned

    def clear(self) -> None:
        """Forget the poses (a backward time jump; the tracker is reset for it anyway)."""
        self.source.clear()
        self._lost = self._returned = False

    def _span(self) -> tuple[int, int] | None:
        try:
            return self.source.time_range()
        except LookupError:  # frames never received, or a broken tree: nothing to continue
            return None

    def _found(self) -> None:
        if self._lost:
            self._lost, self._returned = False, True
