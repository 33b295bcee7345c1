"""The live side of the frame pipeline: camera images, CameraInfo and ego poses as they arrive
-> synchronized rig frames, one per processing period -> one worker thread running the
:class:`~syncl_ros.pipeline.frame_pipeline.FramePipeline` -> the caller's outputs (the node
publishes them).

While the worker is busy the newest synchronized frame waits and older waiting ones are
dropped. A frame waits up to tf_wait_ms for its CameraInfo and ego poses; a frame whose ego pose
is still missing then continues the last ego motion up to max_ego_gap_s past the newest pose;
further, it is dropped, and the tracker starts over when poses return (ego_gaps.py). A backward
time jump (bag loop) starts the tracker over too.

Every event is counted (and warned about, at most every few seconds per kind); health and
stage latencies are kept for diagnostics. Pure Python: no rclpy; stamps are int ns, arrival
times on the monotonic clock.
"""

from __future__ import annotations

import json
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import Any, Protocol

import numpy as np

from syncl_ros.geometry import Transform
from syncl_ros.pipeline.ego_gaps import EgoPoseBridge
from syncl_ros.pipeline.frame_inputs import (
    CameraImage,
    CameraIntrinsics,
    FrameError,
    RigCapture,
    prepare_camera_image,
)
from syncl_ros.pipeline.frame_pipeline import FramePipeline, FrameResult
from syncl_ros.pipeline.health import HealthLimits, RigHealth
from syncl_ros.pipeline.model_setup import LoadedModel
from syncl_ros.pipeline.report import Counters, Latency
from syncl_ros.pipeline.settings import PipelineSettings
from syncl_ros.pipeline.sync import DropReason, RigFrame, RigSynchronizer, SyncResult
from syncl_ros.pipeline.tf_buffer import OdometryEgoSource, StampedTransform, TfBuffer, TfEgoSource
from syncl_ros.pipeline.worker import LatestWorker
from syncl_ros.tracking.early_exit import early_exit_for

MS = 1_000_000
S = 1_000_000_000
# Frames whose anchor stamps are this close to the processing period still count as due
# (camera stamps jitter by a few milliseconds around their nominal period).
PERIOD_SLACK_NS = 40 * MS
TIME_JUMP_NS = 500 * MS  # a pose stamp this far back starts a new timeline (as the synchronizer decides)
# With degraded operation the frame goes on without the camera (below min_frame_cameras it drops).
SYNC_DROPS = {
    DropReason.MISSING: "missing from a rig frame: no image from this camera",
    DropReason.STALE: "missing from a rig frame: this camera's newest image is too old",
    DropReason.SPREAD: "missing from a rig frame: no image from this camera close enough to the anchor's",
    DropReason.OUT_OF_ORDER: "image discarded: older than images already used, or of a previous timeline",
}


class FrameSink(Protocol):
    """Where processed frames go (the node: its publishers). Called from the worker thread."""

    def publish(self, result: FrameResult, cameras: Sequence[str]) -> None:
        """A frame's tracks, and the cameras its images came from."""

    def publish_extras(self, result: FrameResult) -> dict[str, float]:
        """Outputs after the tracks, which they never delay (a debug image); milliseconds each."""

    def clear(self, stamp_ns: int) -> None:
        """The tracker started over at this stamp: the tracks shown so far are gone."""


class LivePipeline:
    def __init__(
        self,
        settings: PipelineSettings,
        model: LoadedModel,
        sink: FrameSink,
        warn: Callable[[str], None],
    ) -> None:
        s = settings
        self.settings = s
        self.experiment = model.experiment
        self.frames = FramePipeline(
            model.backend,
            model.tracker,
            model.experiment.model.input,
            s.camera_channels,
            s.min_frame_cameras,
            early_exit_for(model.experiment.tracker, model.backend.info.num_layers),
        )
        self.period_ns = int(model.period_s * 1e9)
        self.sink = sink
        self.counters = Counters(warn)
        self.counts = self.counters.counts
        self.latency: defaultdict[str, Latency] = defaultdict(Latency)
        self.max_spread_ns = int(s.max_spread_ms * MS)
        self.sync = RigSynchronizer(
            s.camera_channels,
            s.anchor_camera,
            self.max_spread_ns,
            int(s.max_wait_ms * MS),
            center_offset_ns=int(s.sync_center_ms * MS),
            min_cameras=s.min_frame_cameras,
        )
        self.tf = TfBuffer()
        self.ego = (
            TfEgoSource(self.tf, s.world_frame, s.base_frame)
            if s.ego_source == "tf"
            else OdometryEgoSource(s.world_frame, s.base_frame)
        )
        self.ego_poses = EgoPoseBridge(self.ego, int(s.max_ego_gap_s * S))
        self.intrinsics: dict[str, CameraIntrinsics] = {}
        self._lock = threading.Lock()  # guards the intrinsics, shared with the worker
        self.last_scheduled: int | None = None
        # Each backward time jump starts a new timeline; the worker resets the tracker on the first
        # frame of a newer one, so a reset survives the mailbox dropping the frame that announced it.
        self.timeline = 0
        self.processed_timeline = 0
        self.last_pose_ns: int | None = None
        self.restart_health()
        self.worker = LatestWorker(self._process, self._worker_error, depth=s.queue_frames)

    @property
    def tracker(self) -> Any:
        return self.frames.tracker

    @property
    def backend(self) -> Any:
        return self.frames.backend

    def restart_health(self) -> None:
        """Outages are measured from now on (configure, activate)."""
        s = self.settings
        # A frame is due once per processing period: a limit below two periods would flap.
        frame_timeout_ns = max(int(s.frame_timeout_s * S), 2 * self.period_ns)
        limits = HealthLimits(int(s.camera_timeout_s * S), frame_timeout_ns, s.min_cameras)
        self.health = RigHealth(s.camera_channels, limits)
        self._reported_levels: tuple[int, int] | None = None

    def stop(self) -> None:
        self.worker.stop()

    # -- inputs (the caller's thread) ----------------------------------------------------------

    def now_ns(self) -> int:
        return time.monotonic_ns()

    def add_image(self, channel: str, stamp_ns: int, msg: Any) -> None:
        """A camera image message (sensor_msgs CompressedImage or Image, per image_transport)."""
        now = self.now_ns()
        self.health.image(channel, now)
        with self._lock:
            info = self.intrinsics.get(channel)
        # Decoded now only if its frame may be processed and its size can be checked first (its
        # CameraInfo is known); otherwise the worker prepares it if its frame is processed after all.
        # At 12 Hz and a 0.5 s period, five images in six are never decoded; an image may precede
        # its frame's anchor stamp by up to the sync spread.
        due = info is not None and self._period_due(stamp_ns, early_ns=self.max_spread_ns)
        image = self._prepare(channel, msg, info) if due else msg
        self._schedule(self.sync.add(channel, stamp_ns, (image, now), now))

    def _period_due(self, stamp_ns: int, early_ns: int = 0) -> bool:
        """Whether a frame at ``stamp_ns`` (``early_ns`` sooner at most) is let through by the
        processing period since the last scheduled frame."""
        last = self.last_scheduled
        return last is None or stamp_ns + early_ns - last >= self.period_ns - PERIOD_SLACK_NS

    def add_camera_info(self, channel: str, info: CameraIntrinsics) -> None:
        with self._lock:
            old = self.intrinsics.get(channel)
            if old is not None and _same_calibration(old, info):
                return
            if old is not None:
                self.counters.add(
                    f"camera_info.{channel}.changed",
                    f"{channel}: calibration changed; geometry follows from the next frame",
                )
            self.intrinsics[channel] = info

    def add_transforms(self, transforms: Sequence[StampedTransform], static: bool = False) -> None:
        if not static and transforms:
            self._ego_time_jump(min(t.stamp_ns for t in transforms))
        for t in transforms:
            try:
                self.tf.set_transform(t.parent, t.child, t.stamp_ns, t.transform, static=static)
            except ValueError as err:
                self.counters.add("tf.invalid", f"ignored a transform: {err}")

    def add_odometry(self, pose: StampedTransform) -> None:
        """The ego's pose from odometry (ego_source odom)."""
        assert isinstance(self.ego, OdometryEgoSource)
        try:
            self._ego_time_jump(pose.stamp_ns)
            self.ego.add(pose.stamp_ns, pose.transform, pose.parent, pose.child)
        except ValueError as err:
            self.counters.add("odom.invalid", f"ignored odometry: {err}")

    def poll(self) -> bool:
        """Emit frames whose wait is over (call often); True when a health level changed since the
        last report (an outage or a recovery: report it now, not at the next period)."""
        now = self.now_ns()
        self._schedule(self.sync.poll(now))
        return self.health.levels(now) != self._reported_levels

    def _prepare(self, channel: str, msg: Any, info: CameraIntrinsics | None) -> CameraImage:
        start = self.now_ns()
        size = None if info is None else (info.width, info.height)
        image = prepare_camera_image(msg, self.settings.image_transport, self.experiment.model.input, size)
        self.latency["prepare_image"].add((self.now_ns() - start) / MS)
        if image.problem is not None:  # counted per image, whether or not its frame is processed
            self.counters.add(f"images.{image.problem[0]}.{channel}")
        return image

    def _ego_time_jump(self, stamp_ns: int) -> None:
        """Poses from an earlier timeline (bag loop) would be interpolated with the new ones: drop them."""
        if self.last_pose_ns is not None and stamp_ns < self.last_pose_ns - TIME_JUMP_NS:
            self.ego_poses.clear()
            self.counters.add("resets.ego_poses", "ego poses jumped back in time: pose history cleared")
        self.last_pose_ns = stamp_ns

    # -- scheduling ----------------------------------------------------------------------------

    def _schedule(self, result: SyncResult) -> None:
        self._sync_drops(result.drops)
        if result.reset:
            self.counters.add("resets.time_jump", "time jumped backward (bag loop?): tracker reset")
            self.last_scheduled = None
            self.timeline += 1
        for frame in result.frames:
            if not self._period_due(frame.stamp_ns):
                self.counters.add("frames.skipped_by_period")
                continue
            self.last_scheduled = frame.stamp_ns
            self.worker.submit((frame, self.timeline))

    def _sync_drops(self, drops: Sequence[tuple[str, DropReason]]) -> None:
        now = self.now_ns()
        for channel, reason in drops:
            self.health.blame(channel, reason.value, now)
            key = f"sync.dropped.{reason.value}.{channel}"
            if self.counters.due(key):
                total = self.sync.stats()["cameras"][channel]["dropped"][reason.value]
                self.counters.warn(f"{channel}: {SYNC_DROPS[reason]} [{key}: {total}]")

    # -- processing (worker thread) ------------------------------------------------------------

    def _process(self, job: tuple[RigFrame, int]) -> None:
        frame, timeline = job
        reset, self.processed_timeline = timeline != self.processed_timeline, timeline
        intrinsics = self._calibration()
        images = {
            ch: self._frame_image(ch, payload[0], intrinsics.get(ch)) if payload is not None else None
            for ch, payload in frame.payloads.items()
        }
        received_ns = frame.payloads[frame.anchor][1]
        if reset:
            self._reset_tracker(frame.stamp_ns)
        extrapolated = self.ego_poses.extrapolated
        start = time.perf_counter()
        try:
            inputs = self.frames.assemble(self._capture(frame, images, intrinsics))
        except FrameError as err:
            self._frame_lost(err)
            return
        assemble_ms = (time.perf_counter() - start) * 1000.0
        # Between assembly and tracking: ego poses back after a long gap start the tracker over.
        self._ego_gap(frame.stamp_ns, extrapolated)
        resets, nonfinite = self.tracker.resets, self.tracker.nonfinite_rows
        result = self.frames.track(inputs)
        self._tracker_events(frame.stamp_ns, resets, nonfinite)
        used = [c for c, on in zip(self.settings.camera_channels, inputs.used, strict=True) if on]
        self.sink.publish(result, used)
        now = self.now_ns()  # the tracks are out: what the sink publishes after them does not count here
        stages = {"assemble": assemble_ms, **result.timings_ms, **self.sink.publish_extras(result)}
        for stage, ms in stages.items():
            self.latency[stage].add(ms)
        receive_to_publish_ms = (now - received_ns) / MS
        self.latency["receive_to_publish"].add(receive_to_publish_ms)
        if self.settings.latency_log:
            self._log_latency(stages, receive_to_publish_ms)
        # Counted with the frame, not before tracking: a snapshot of the counters never shows a
        # frame's missing cameras without the frame itself.
        self._degraded(inputs.missing, frame.anchor)
        self.counters.add("frames.processed")
        self.health.processed(now, without=inputs.missing)

    def _capture(
        self,
        frame: RigFrame,
        images: Mapping[str, CameraImage | None],
        intrinsics: dict[str, CameraIntrinsics],
    ) -> RigCapture:
        # One wait per frame: its pose lookups (anchor, each camera) must not each wait out a gap.
        deadline = time.monotonic() + self.settings.tf_wait_ms / 1000.0
        ego_pose = partial(self._ego_pose, deadline=deadline)
        return RigCapture(
            frame.stamp_ns, images, frame.stamps_ns, intrinsics, self._extrinsics(intrinsics), ego_pose
        )

    def _calibration(self) -> dict[str, CameraIntrinsics]:
        """CameraInfo of every camera; waits briefly for ones published just after their images."""
        deadline = time.monotonic() + self.settings.tf_wait_ms / 1000.0
        while True:
            with self._lock:
                intrinsics = dict(self.intrinsics)
            if len(intrinsics) == len(self.settings.camera_channels) or time.monotonic() >= deadline:
                return intrinsics
            time.sleep(0.005)

    def _frame_image(self, channel: str, image: Any, info: CameraIntrinsics | None) -> CameraImage:
        return image if isinstance(image, CameraImage) else self._prepare(channel, image, info)

    def _extrinsics(self, intrinsics: Mapping[str, CameraIntrinsics]) -> dict[str, Transform]:
        out = {}
        for ch, info in intrinsics.items():
            try:
                out[ch] = self.tf.lookup(self.settings.base_frame, info.frame_id)
            except LookupError:
                continue  # assemble() reports the camera as missing its extrinsics
        return out

    def _ego_pose(self, stamp_ns: int, deadline: float) -> Transform:
        """The measured pose, waited for until ``deadline`` (monotonic s): the transform for this
        stamp may still be on its way. Then the last motion continued, through a short gap."""
        while True:
            try:
                return self.ego_poses.measured(stamp_ns)
            except LookupError as err:
                if time.monotonic() >= deadline:
                    return self.ego_poses.bridged(stamp_ns, err)
                time.sleep(0.005)

    def _frame_lost(self, err: FrameError) -> None:
        # A frame lost to missing inputs does not use up its processing period: the next one runs.
        self.last_scheduled = None
        if err.channel:
            self.health.blame(err.channel, err.reason, self.now_ns())
        else:
            self.health.frame_lost(err.reason)
        self.counters.add(
            f"frames.dropped.{err.reason}" + (f".{err.channel}" if err.channel else ""),
            f"frame dropped: {err}",
        )

    def _ego_gap(self, stamp_ns: int, extrapolated_before: int) -> None:
        """Count a frame that used extrapolated ego poses; start the tracker over when poses are
        back after a gap too long to bridge."""
        if self.ego_poses.extrapolated > extrapolated_before:
            gap_ms = self.ego_poses.last_gap_ns / MS
            self.counters.add(
                "frames.ego_pose_extrapolated",
                f"no ego pose yet for {gap_ms:.0f} ms past the newest: the last ego motion continued",
            )
        if self.ego_poses.take_return():
            self.counters.add(
                "resets.ego_pose_gap", "ego poses back after a gap over max_ego_gap_s: tracker reset"
            )
            self._reset_tracker(stamp_ns)

    def _degraded(self, missing: Mapping[str, FrameError], anchor: str) -> None:
        """A frame processed without some cameras: blame each (diagnostics name it) and count it."""
        now = self.now_ns()
        for channel, err in missing.items():
            self.health.blame(channel, err.reason, now)
            self.counters.add(f"frames.without.{err.reason}.{channel}", f"frame processed without {err}")
        if missing:
            self.counters.add("frames.degraded")
        if anchor != self.settings.anchor_camera:
            self.counters.add("frames.anchor_handed_over")

    def _tracker_events(self, stamp_ns: int, resets_before: int, nonfinite_before: int) -> None:
        if self.tracker.resets > resets_before:
            self.counters.add("resets.tracker", f"tracker reset ({self.tracker.last_reset_reason})")
            self.sink.clear(stamp_ns)
        if self.tracker.nonfinite_rows > nonfinite_before:
            self.counters.add(
                "model.nonfinite_frames", "the model produced NaN/inf outputs; those queries ignored"
            )

    def _reset_tracker(self, stamp_ns: int) -> None:
        self.frames.reset()
        self.sink.clear(stamp_ns)

    def _log_latency(self, stages_ms: dict[str, float], receive_to_publish_ms: float) -> None:
        """One JSON line per frame (for `syncl bench node`'s histograms); a write error is counted."""
        line = json.dumps({**stages_ms, "receive_to_publish": receive_to_publish_ms})
        try:
            with open(self.settings.latency_log, "a", encoding="utf-8") as f:
                f.write(line + "\n")
        except OSError as err:
            self.counters.add("latency_log.failed", f"cannot append to latency_log: {err}")

    def _worker_error(self, err: BaseException) -> None:
        self.health.frame_lost("internal_error")
        self.counters.add("frames.dropped.internal_error", f"frame failed: {type(err).__name__}: {err}")

    # -- reporting -----------------------------------------------------------------------------

    def input_values(self, now_ns: int) -> dict[str, Any]:
        """The synchronizer's counters and each camera's health."""
        inputs = self.sync.stats()
        for channel, values in self.health.camera_values(now_ns).items():
            inputs["cameras"][channel].update(values)
        return inputs

    def pipeline_values(self) -> dict[str, Any]:
        tracker = self.tracker
        return {
            "backend": getattr(self.backend, "name", "none"),
            "counts": dict(self.counts),
            # The worker thread adds stages while this runs: iterate over a snapshot (one C-level copy).
            "latency": {k: v.summary() for k, v in list(self.latency.items())},
            "worker": {"replaced_while_busy": self.worker.replaced, "in_flight": self.worker.in_flight()},
            "tracker": {
                "method": self.experiment.tracker.method,
                "live": tracker.num_live,
                "resets": tracker.resets,
                "dropped_births": tracker.dropped_births,
                "duplicate_births": tracker.duplicate_births,
                "reattached": tracker.reattached,
                "full_table_frames": tracker.full_table_frames,
                "nonfinite_rows": tracker.nonfinite_rows,
            },
        }

    def reported(self, now_ns: int) -> None:
        """The health levels at ``now_ns`` have been reported (see :meth:`poll`)."""
        self._reported_levels = self.health.levels(now_ns)


def _same_calibration(a: CameraIntrinsics, b: CameraIntrinsics) -> bool:
    return (a.width, a.height, a.frame_id) == (b.width, b.height, b.frame_id) and bool(np.allclose(a.K, b.K))
