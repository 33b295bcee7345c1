"""Six-camera rig synchronizer, triggered by an anchor camera.

Pure Python (no rclpy): the node feeds it ``(channel, stamp_ns, payload)``
per received image and calls :meth:`RigSynchronizer.poll` from a timer.
message_filters is not used on purpose: its ApproximateTime policy takes at
most nine inputs, does not report why a set was dropped, and is not
installable everywhere the package runs.

Policy. Every anchor image opens a pending frame. For each other camera the
image nearest the anchor stamp is taken from a small per-camera buffer; the
frame is emitted once every camera's nearest image is decided (an image at
or after the anchor, or one close enough that the camera's next image,
expected one period later, cannot be nearer). A frame still undecided after
``max_wait_ns`` (measured on the caller's clock from the anchor's arrival)
is emitted with what is there if every camera is within ``max_spread_ns`` of
the anchor, else dropped with a reason per culprit camera. Frames leave in
stamp order; memory is bounded by the buffer sizes whatever the inputs do.

A camera's stamp far behind its newest one starts a new timeline (bag loop):
everything buffered is forgotten, and images of the old timeline still in
flight are discarded until their camera delivers on the new one.

A silent anchor opens no frame, so no frame can be dropped for it: instead,
each anchor period the other cameras leave behind (by more than the spread
and the wait) without an anchor image counts as a frame without anchor.

Degraded operation (``min_cameras`` below the number of channels): a camera
that fails a frame no longer drops it. The frame leaves without that camera
(listed in ``RigFrame.missing``, its drop still counted) as long as at least
``min_cameras`` cameras delivered; and each frame without anchor is handed
over: built around the anchor's expected stamp from the other cameras, the
first of them in channel order giving the frame its stamp.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

from syncl_ros.rig import CAMERA_CHANNELS

MS = 1_000_000
# A stamp this far behind a camera's newest one is a new timeline (bag loop,
# simulator restart), not a late message: images that late are useless anyway.
DEFAULT_JUMP_NS = 500 * MS
# Inter-frame gaps this long are pauses, not the camera's period.
_MAX_PERIOD_NS = 1_000 * MS
# Weight of the newest inter-frame interval in the period estimate.
_RATE_ALPHA = 0.1


class DropReason(StrEnum):
    """Why a camera made its frame drop (or, for OUT_OF_ORDER, why its message was discarded)."""

    MISSING = "missing"  # no image from this camera at all in the buffer
    STALE = "stale"  # the camera's newest image is older than the anchor by more than max_spread
    OUT_OF_ORDER = "out_of_order"  # message older than the last emitted frame or its camera's newest
    SPREAD = "spread"  # images exist but none within max_spread of the anchor


@dataclass(frozen=True)
class RigFrame:
    """One synchronized set of images."""

    stamp_ns: int  # the anchor image's stamp (or, handed over, the acting anchor's)
    payloads: dict[str, Any]  # channel -> payload, in the synchronizer's channel order (None: missing)
    stamps_ns: dict[str, int]  # channel -> stamp of the image used (cameras present only)
    spread_ns: int  # newest minus oldest stamp in the frame
    missing: dict[str, DropReason] = field(default_factory=dict)  # cameras absent, and why
    anchor: str = "CAM_FRONT"  # the camera whose image stamps the frame


@dataclass
class SyncResult:
    """What one :meth:`RigSynchronizer.add` or :meth:`RigSynchronizer.poll` call produced."""

    frames: list[RigFrame] = field(default_factory=list)
    reset: bool = False  # time jumped backwards: buffers were cleared, the tracker must reset too
    drops: list[tuple[str, DropReason]] = field(default_factory=list)  # (camera, reason) counted now


@dataclass
class _CameraStats:
    received: int = 0
    used: int = 0
    duplicates: int = 0
    evicted: int = 0  # pushed out of the buffer unused
    dropped: dict[str, int] = field(default_factory=lambda: {r.value: 0 for r in DropReason})
    period_ns: float | None = None
    last_stamp_ns: int | None = None

    def observe_stamp(self, stamp_ns: int) -> None:
        last = self.last_stamp_ns
        if last is not None and stamp_ns > last:
            delta = stamp_ns - last
            # Skip gaps of a second or more: a paused camera would otherwise drag the estimate.
            if delta < _MAX_PERIOD_NS:
                p = self.period_ns
                self.period_ns = float(delta) if p is None else p + _RATE_ALPHA * (delta - p)
        if last is None or stamp_ns > last:
            self.last_stamp_ns = stamp_ns

    def as_dict(self) -> dict[str, Any]:
        # No rate here: the stamps' period says nothing about whether images still arrive.
        return {
            "received": self.received,
            "used": self.used,
            "duplicates": self.duplicates,
            "evicted": self.evicted,
            "dropped": dict(self.dropped),
        }


@dataclass
class _Pending:
    stamp_ns: int
    payload: Any
    received_ns: int


class RigSynchronizer:
    """Groups per-camera images into :class:`RigFrame` s around an anchor camera.

    ``now_ns`` arguments are the caller's clock (the node's ROS clock or a
    monotonic clock), used only to time the wait for late images; stamps are
    the images' capture times. Both are integer nanoseconds. Pass the same
    clock to :meth:`add` and :meth:`poll` (or never pass ``now_ns`` to
    :meth:`add` and poll with stamp-time, e.g. offline).

    Not thread-safe: call it from one callback group (the node's default
    mutually exclusive one).
    """

    def __init__(
        self,
        channels: Sequence[str] = CAMERA_CHANNELS,
        anchor: str = "CAM_FRONT",
        max_spread_ns: int = 100 * MS,
        max_wait_ns: int = 150 * MS,
        buffer_size: int = 5,
        max_pending: int = 3,
        jump_threshold_ns: int = DEFAULT_JUMP_NS,
        center_offset_ns: int = 0,
        min_cameras: int | None = None,
    ) -> None:
        channels = tuple(channels)
        if len(set(channels)) != len(channels) or not channels:
            raise ValueError(f"channels must be non-empty and unique, got {channels}")
        if anchor not in channels:
            raise ValueError(f"anchor {anchor!r} is not one of the channels {channels}")
        if max_spread_ns < 0 or max_wait_ns < 0 or jump_threshold_ns <= 0:
            raise ValueError("max_spread_ns and max_wait_ns must be >= 0, jump_threshold_ns > 0")
        if buffer_size < 1 or max_pending < 1:
            raise ValueError("buffer_size and max_pending must be >= 1")
        if min_cameras is not None and not 1 <= min_cameras <= len(channels):
            raise ValueError(f"min_cameras must be within 1..{len(channels)}, got {min_cameras}")
        # Fewest cameras a frame may leave with; every channel unless degraded operation is on.
        self.min_cameras = len(channels) if min_cameras is None else int(min_cameras)
        self.channels = channels
        self.anchor = anchor
        self.max_spread_ns = int(max_spread_ns)
        self.max_wait_ns = int(max_wait_ns)
        self.jump_threshold_ns = int(jump_threshold_ns)
        # Where the other cameras fire relative to the anchor, on average. Images are matched to
        # anchor + this offset: on a rig whose anchor fires first (nuScenes: CAM_FRONT, then the
        # others over ~50 ms) "nearest to the anchor" would pick a late camera's previous image.
        self.center_offset_ns = int(center_offset_ns)
        self._buffers: dict[str, deque[tuple[int, Any]]] = {
            c: deque(maxlen=buffer_size) for c in channels if c != anchor
        }
        self._pending: deque[_Pending] = deque()
        self._max_pending = max_pending
        self._stats = {c: _CameraStats() for c in channels}
        self._last_frame_ns: int | None = None
        self._last_used: dict[str, int] = {}
        self._drops: list[tuple[str, DropReason]] = []  # counted since the last add or poll returned
        # After a backward jump: each camera's newest stamp of the previous timeline, until the camera
        # delivers on the new one. Images continuing those stamps are still in flight from before.
        self._old_timeline: dict[str, int] = {}
        # Anchor outages: the stamp the anchor's next frames are counted from, and how many of
        # them were already counted as missing.
        self._anchor_ref_ns: int | None = None
        self._anchor_missed = 0
        self.frames_emitted = 0
        self.frames_dropped = 0
        self.frames_without_anchor = 0
        self.frames_degraded = 0  # emitted without some camera (the anchor's handed-over ones included)
        self.frames_handed_over = 0
        self.frames_lost_at_reset = 0  # pending when time jumped back (included in frames_dropped)
        self._handed_over: list[RigFrame] = []  # built while counting an anchor outage, not yet returned
        self.resets = 0
        self.last_spread_ns: int | None = None

    # ------------------------------------------------------------------ input

    def add(self, channel: str, stamp_ns: int, payload: Any, now_ns: int | None = None) -> SyncResult:
        """Feed one image; returns the frames it completed, whether time jumped back, the drops.

        ``now_ns`` defaults to ``stamp_ns`` (then waits are measured in stamp time).
        """
        if channel not in self._stats:
            raise KeyError(f"unknown channel {channel!r}; expected one of {self.channels}")
        stamp_ns = int(stamp_ns)
        now = stamp_ns if now_ns is None else int(now_ns)
        last = self._stats[channel].last_stamp_ns
        reset = last is not None and stamp_ns < last - self.jump_threshold_ns
        if reset:
            self._reset(new_timeline=True)
        frames = self._accept(channel, stamp_ns, payload, now)
        return SyncResult(frames, reset, self._take_drops())

    def poll(self, now_ns: int) -> SyncResult:
        """Emit or drop pending anchors whose wait is over; call it from a timer.

        Never signals a reset: a backward jump of the caller's clock only
        shortens the waits; backward jumps of the stamps are what resets.
        """
        now = int(now_ns)
        for pending in self._pending:
            pending.received_ns = min(pending.received_ns, now)
        frames = self._drain(now)
        return SyncResult(frames, drops=self._take_drops())

    def reset(self) -> None:
        """Forget all buffered images, e.g. when the node restarts its tracker for another reason."""
        self._reset(new_timeline=False)

    # -------------------------------------------------------------- internals

    def _accept(self, channel: str, stamp_ns: int, payload: Any, now: int) -> list[RigFrame]:
        """Buffer one image unless it is a duplicate or useless; the frames it completes."""
        stats = self._stats[channel]
        stats.received += 1
        if self._is_duplicate(channel, stamp_ns):
            stats.duplicates += 1
            return []
        if self._is_late(channel, stamp_ns) or self._is_old_timeline(channel, stamp_ns):
            self._count_drop(channel, DropReason.OUT_OF_ORDER)
            return []
        # Anchor outages first: the stamp estimates must not take in this image's gap yet.
        if channel == self.anchor:
            self._anchor_delivered(stamp_ns)
        else:
            self._count_missing_anchors(channel, stamp_ns)
        stats.observe_stamp(stamp_ns)
        self._old_timeline.pop(channel, None)
        if channel == self.anchor:
            self._add_anchor(stamp_ns, payload, now)
        else:
            self._add_image(channel, stamp_ns, payload)
        handed_over, self._handed_over = self._handed_over, []
        return handed_over + self._drain(now)

    def _count_missing_anchors(self, channel: str, stamp_ns: int) -> None:
        """Count the anchor's frames that another camera's image shows to be overdue.

        An anchor frame is overdue once another camera is past its expected stamp by more than the
        spread and the wait (a later anchor image could no longer be matched in time). Counting
        starts over at each anchor image, and at a gap in this camera's stamps (a pause or a seek
        is not an outage).
        """
        previous = self._stats[channel].last_stamp_ns
        gap = previous is None or stamp_ns - previous >= _MAX_PERIOD_NS
        if self._anchor_ref_ns is None or gap:
            self._anchor_ref_ns, self._anchor_missed = stamp_ns, 0
            return
        period = self._stats[self.anchor].period_ns or self._stats[channel].period_ns
        if not period:
            return
        late_ns = stamp_ns - self._anchor_ref_ns - self.max_spread_ns - self.max_wait_ns
        self._count_anchor_outage(int(late_ns // period), period)

    def _anchor_delivered(self, stamp_ns: int) -> None:
        """Count the anchor frames skipped before this image that the others delivered through."""
        ref, period = self._anchor_ref_ns, self._stats[self.anchor].period_ns
        others = [s.last_stamp_ns for c, s in self._stats.items() if c != self.anchor]
        newest = max((s for s in others if s is not None), default=None)
        if ref is not None and period and newest is not None:
            upper = min(stamp_ns - period / 2, newest + period / 2)
            self._count_anchor_outage(int((upper - ref) // period), period)
        self._anchor_ref_ns, self._anchor_missed = stamp_ns, 0

    def _count_anchor_outage(self, overdue: int, period: float) -> None:
        """Count the anchor frames up to the ``overdue``-th after the reference as lost (once each);
        with degraded operation on, hand each over to the other cameras (whose buffers still hold
        the images of the last few periods, so the last frames of an outage, seen only when the
        anchor returns, are handed over too)."""
        assert self._anchor_ref_ns is not None
        for k in range(self._anchor_missed + 1, overdue + 1):
            self._count_drop(self.anchor, DropReason.MISSING)
            self.frames_without_anchor += 1
            if self.min_cameras < len(self.channels):
                self._hand_over(self._anchor_ref_ns + round(k * period))
        self._anchor_missed = max(self._anchor_missed, overdue)

    def _hand_over(self, expected_ns: int) -> None:
        """A frame around the anchor's expected stamp from the other cameras, if enough delivered."""
        picks = {c: self._pick(c, buf, expected_ns, final=True) for c, buf in self._buffers.items()}
        present = [c for c, p in picks.items() if not isinstance(p, DropReason)]
        if len(present) < self.min_cameras or (
            self._last_frame_ns is not None and picks[present[0]][0] <= self._last_frame_ns
        ):
            return
        acting = present[0]
        stamp, payload = picks.pop(acting)
        self._consume(acting, stamp)
        head = _Pending(stamp, None, 0)
        frame = self._emit(head, picks, {acting: (stamp, payload)})
        frame = replace(frame, missing={self.anchor: DropReason.MISSING, **frame.missing})  # counted
        self.frames_handed_over += 1
        self._handed_over.append(frame)

    def _is_duplicate(self, channel: str, stamp_ns: int) -> bool:
        """Same camera, same stamp as an image already held or used (re-sent or re-recorded)."""
        if channel == self.anchor:
            return stamp_ns == self._last_frame_ns or any(p.stamp_ns == stamp_ns for p in self._pending)
        held = (s for s, _ in self._buffers[channel])
        return stamp_ns == self._last_used.get(channel) or stamp_ns in held

    def _is_old_timeline(self, channel: str, stamp_ns: int) -> bool:
        """An image of the previous timeline still in flight after a backward jump.

        Such an image is far ahead of the new timeline and continues its camera's old stamps. Both
        bounds move on: the new timeline with every image accepted, so a camera late or silent
        across the jump is taken when it delivers; and a camera's stamps beyond its old ones are
        live, so a stray old image that faked the jump cannot hold the live stream off for long.
        """
        old = self._old_timeline.get(channel)
        if old is None:
            return False
        stamps = [s.last_stamp_ns for s in self._stats.values() if s.last_stamp_ns is not None]
        jump = self.jump_threshold_ns
        return bool(stamps) and max(stamps) + jump < stamp_ns <= old + jump

    def _is_late(self, channel: str, stamp_ns: int) -> bool:
        """Messages that no future frame may use: behind the emitted stream or the camera's newest."""
        last_frame = self._last_frame_ns
        if channel == self.anchor:
            newest = self._pending[-1].stamp_ns if self._pending else last_frame
            return newest is not None and stamp_ns < newest
        used = self._last_used.get(channel)
        if used is not None and stamp_ns <= used:
            return True
        if last_frame is not None and stamp_ns < last_frame - self.max_spread_ns:
            return True
        buf = self._buffers[channel]
        return bool(buf) and stamp_ns < buf[-1][0]

    def _add_anchor(self, stamp_ns: int, payload: Any, now: int) -> None:
        if len(self._pending) >= self._max_pending:
            # The oldest pending frame has waited longest; keep the newest ones.
            oldest = self._pending.popleft()
            self._drop(oldest, self._choose(oldest.stamp_ns, final=True) or {})
        self._pending.append(_Pending(stamp_ns, payload, now))

    def _add_image(self, channel: str, stamp_ns: int, payload: Any) -> None:
        buf = self._buffers[channel]
        if len(buf) == buf.maxlen:
            self._stats[channel].evicted += 1
        buf.append((stamp_ns, payload))

    def _drain(self, now: int) -> list[RigFrame]:
        """Resolve pending anchors oldest first; a frame still waiting blocks the newer ones."""
        frames = []
        while self._pending:
            head = self._pending[0]
            final = now - head.received_ns >= self.max_wait_ns
            picks = self._choose(head.stamp_ns, final)
            if picks is None:
                break
            self._pending.popleft()
            if self._too_few(picks):
                self._drop(head, picks)
            else:
                frames.append(self._emit(head, picks, {self.anchor: (head.stamp_ns, head.payload)}))
        return frames

    def _choose(self, anchor_ns: int, final: bool) -> dict[str, Any] | None:
        """Per camera: (stamp, payload) to use, or a DropReason; None while some camera is undecided."""
        picks: dict[str, Any] = {}
        undecided = False
        for channel, buf in self._buffers.items():
            pick = self._pick(channel, buf, anchor_ns, final)
            if pick is None:
                undecided = True
            picks[channel] = pick
        if self._too_few(picks):
            return picks  # already doomed: drop now rather than wait
        return None if undecided else picks

    def _too_few(self, picks: dict[str, Any]) -> bool:
        """Fewer than ``min_cameras`` (the anchor included) can still deliver."""
        failed = sum(isinstance(p, DropReason) for p in picks.values())
        return len(self.channels) - failed < self.min_cameras

    def _pick(self, channel: str, buf: deque[tuple[int, Any]], anchor_ns: int, final: bool) -> Any:
        if not buf:
            return DropReason.MISSING if final else None
        target = anchor_ns + self.center_offset_ns
        nearest = min(buf, key=lambda item: abs(item[0] - target))
        newest = buf[-1][0]
        decided = final or newest >= target or self._next_is_farther(channel, newest, target)
        if abs(nearest[0] - anchor_ns) <= self.max_spread_ns:
            return nearest if decided else None
        if newest < anchor_ns - self.max_spread_ns:
            return DropReason.STALE if final else None
        return DropReason.SPREAD if decided else None

    def _next_is_farther(self, channel: str, newest: int, anchor_ns: int) -> bool:
        period = self._stats[channel].period_ns
        return period is not None and anchor_ns - newest <= period / 2

    def _emit(self, head: _Pending, picks: dict[str, Any], stamping: dict[str, tuple[int, Any]]) -> RigFrame:
        """The frame of ``head`` from the picks (a DropReason: that camera is missing) and the
        ``stamping`` camera's image (the anchor's, or the acting anchor's)."""
        missing = {c: p for c, p in picks.items() if isinstance(p, DropReason)}
        for channel, reason in missing.items():
            self._count_drop(channel, reason)
        images = dict(stamping)
        for channel, pick in picks.items():
            if channel not in missing:
                images[channel] = pick
                self._consume(channel, pick[0])
        stamps = {c: images[c][0] for c in self.channels if c in images}
        frame = RigFrame(
            stamp_ns=head.stamp_ns,
            payloads={c: images[c][1] if c in images else None for c in self.channels},
            stamps_ns=stamps,
            spread_ns=max(stamps.values()) - min(stamps.values()),
            missing=missing,
            anchor=next(iter(stamping)),
        )
        for channel in stamps:
            self._stats[channel].used += 1
        if len(stamps) < len(self.channels):
            self.frames_degraded += 1
        self._last_frame_ns = head.stamp_ns
        self.last_spread_ns = frame.spread_ns
        self.frames_emitted += 1
        return frame

    def _consume(self, channel: str, stamp: int) -> None:
        """An image used once is never reused: drop it and everything older."""
        buf = self._buffers[channel]
        while buf and buf[0][0] <= stamp:
            buf.popleft()
        self._last_used[channel] = stamp

    def _drop(self, head: _Pending, picks: dict[str, Any]) -> None:
        """Count the cameras that failed the frame; their usable images stay for the next anchor."""
        for channel, pick in picks.items():
            if isinstance(pick, DropReason):
                self._count_drop(channel, pick)
        self._last_frame_ns = max(self._last_frame_ns or head.stamp_ns, head.stamp_ns)
        self.frames_dropped += 1

    def _count_drop(self, channel: str, reason: DropReason) -> None:
        self._stats[channel].dropped[reason.value] += 1
        self._drops.append((channel, reason))

    def _take_drops(self) -> list[tuple[str, DropReason]]:
        drops, self._drops = self._drops, []
        return drops

    def _reset(self, new_timeline: bool) -> None:
        for buf in self._buffers.values():
            buf.clear()
        # Frames still waiting for images are lost with the old timeline: count them as dropped.
        self.frames_lost_at_reset += len(self._pending)
        self.frames_dropped += len(self._pending)
        self._pending.clear()
        self._last_used.clear()
        self._last_frame_ns = None
        old = {c: s.last_stamp_ns for c, s in self._stats.items() if s.last_stamp_ns is not None}
        self._old_timeline = old if new_timeline else {}
        for stats in self._stats.values():
            stats.last_stamp_ns = None
        self._anchor_ref_ns, self._anchor_missed = None, 0
        self._handed_over = []
        self.resets += 1

    # ------------------------------------------------------------ diagnostics

    def stats(self) -> dict[str, Any]:
        """Counters for diagnostics; nested dicts of numbers."""
        return {
            "frames_emitted": self.frames_emitted,
            "frames_dropped": self.frames_dropped,
            "frames_without_anchor": self.frames_without_anchor,
            "frames_degraded": self.frames_degraded,
            "frames_handed_over": self.frames_handed_over,
            "frames_lost_at_reset": self.frames_lost_at_reset,
            "resets": self.resets,
            "pending": len(self._pending),
            "last_spread_ms": None if self.last_spread_ns is None else self.last_spread_ns / MS,
            "cameras": {c: s.as_dict() for c, s in self._stats.items()},
        }

    def buffered(self) -> int:
        """Images held in all buffers, pending anchors included (bounded by construction)."""
        return sum(len(b) for b in self._buffers.values()) + len(self._pending)
