"""The syncl_ros tracker node (a lifecycle node).

configure: read parameters, load the model into a backend, create publishers.
activate:  subscribe to the six cameras, their CameraInfo, /tf + /tf_static (or odometry).
Per synchronized rig frame, at the model's trained frame interval by default:
decode (at reduced JPEG scale) -> geometry at the anchor stamp -> backend
encode/decode -> tracker (track queries or greedy: the model's tracker.method, or the
`tracker` parameter) -> publish ~/tracks, ~/detections, ~/markers (and, with the
overlay parameter, ~/overlay: the network's six input images with the boxes drawn);
/diagnostics once a second, and at once when a status changes level. One worker
thread processes frames; while it is busy the newest synchronized frame waits and
older waiting ones are dropped.

A frame whose ego pose is missing after tf_wait_ms continues the last ego motion up to
max_ego_gap_s past the newest pose; further, it is dropped, and the tracker starts over when
poses return (ros/ego_gaps.py).

A configure that fails (a missing, truncated or foreign model file, weights that do not fit
their configuration) logs one line naming the file and the cause and leaves the node
unconfigured; configure can be requested again once the file is fixed.

QoS, on purpose:
- images and CameraInfo: sensor-data (best effort, keep last 5): matches both
  best-effort camera drivers and reliable publishers such as bag players;
- /tf: reliable, keep last 100; /tf_static: reliable, transient local (latched);
  odometry: sensor-data;
- outputs: reliable, keep last 10 (RViz and recorders get every frame);
  /diagnostics: reliable, keep last 10.
"""

from __future__ import annotations

import json
import math
import sys
import threading
import time
from collections import defaultdict, deque
from collections.abc import Sequence
from functools import partial
from typing import Any

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from nav_msgs.msg import Odometry
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.lifecycle import Node as LifecycleNode
from rclpy.lifecycle import State, TransitionCallbackReturn
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from sensor_msgs.msg import CameraInfo, CompressedImage, Image
from tf2_msgs.msg import TFMessage
from vision_msgs.msg import Detection3DArray
from visualization_msgs.msg import MarkerArray

from syncl_ros.geometry import Transform
from syncl_ros.msg import TrackedObject3DArray
from syncl_ros.ros.ego_gaps import EgoPoseBridge
from syncl_ros.ros.frame_inputs import CameraImage, FrameError, assemble, prepare_camera_image
from syncl_ros.ros.health import HealthLimits, RigHealth
from syncl_ros.ros.markers import MarkerPublisherState
from syncl_ros.ros.messages import (
    CameraIntrinsics,
    camera_info_to_intrinsics,
    diagnostic_array,
    diagnostic_status,
    odometry_to_tf,
    stamp_to_ns,
    tf_message_to_tf,
    tracks_to_detections,
    tracks_to_msg,
)
from syncl_ros.ros.model_setup import LoadedModel, ModelSetupError, load_model
from syncl_ros.ros.overlay_topic import overlay_message
from syncl_ros.ros.settings import NodeSettings, declare_and_read
from syncl_ros.ros.sync import DropReason, RigFrame, RigSynchronizer, SyncResult
from syncl_ros.ros.tf_buffer import OdometryEgoSource, TfBuffer, TfEgoSource
from syncl_ros.ros.worker import LatestWorker

MS = 1_000_000
S = 1_000_000_000
RELIABLE_10 = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE, history=HistoryPolicy.KEEP_LAST)
TF_QOS = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE, history=HistoryPolicy.KEEP_LAST)
TF_STATIC_QOS = QoSProfile(
    depth=1,
    reliability=ReliabilityPolicy.RELIABLE,
    durability=DurabilityPolicy.TRANSIENT_LOCAL,
    history=HistoryPolicy.KEEP_LAST,
)
# Frames whose anchor stamps are this close to the processing period still count as due
# (camera stamps jitter by a few milliseconds around their nominal period).
PERIOD_SLACK_NS = 40 * MS
TIME_JUMP_NS = 500 * MS  # a pose stamp this far back starts a new timeline (as the synchronizer decides)
WARN_PERIOD_S = 5.0  # each kind of warning is logged at most this often
# A frame stamp further than this from the node's clock is not on that clock (a bag replayed
# without /clock, a camera clock off by hours): its stamp-to-publish latency would mean nothing.
STAMP_CLOCK_TOLERANCE_NS = 10 * S
# With degraded operation the frame goes on without the camera (below min_frame_cameras it drops).
SYNC_DROPS = {
    DropReason.MISSING: "missing from a rig frame: no image from this camera",
    DropReason.STALE: "missing from a rig frame: this camera's newest image is too old",
    DropReason.SPREAD: "missing from a rig frame: no image from this camera close enough to the anchor's",
    DropReason.OUT_OF_ORDER: "image discarded: older than images already used, or of a previous timeline",
}


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


class TrackerNode(LifecycleNode):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__("syncl_tracker", **kwargs)
        self.settings: NodeSettings = declare_and_read(self)
        self.counts: dict[str, int] = defaultdict(int)
        self._warned: dict[str, float] = {}  # warning key -> when it was last logged (monotonic s)
        self.latency: dict[str, Latency] = defaultdict(Latency)
        self._lock = threading.Lock()  # guards intrinsics and the pipeline state shared with the worker
        self._subs: list[Any] = []
        self._timers: list[Any] = []
        self._pubs: list[Any] = []
        self.backend: Any = None
        self.worker: LatestWorker | None = None
        self._published_levels: tuple[int, int] | None = None
        self.stamps_on_clock: bool | None = None  # frame stamps on the node's clock (None: no frame yet)
        self.stamp_lag_s: float | None = None  # node clock minus the newest frame's stamp, at publish

    # -- lifecycle ---------------------------------------------------------------------------

    def on_configure(self, state: State) -> TransitionCallbackReturn:
        try:
            loaded = load_model(self.settings)
        except ModelSetupError as err:
            self.get_logger().error(f"configure failed: {err}")
            return TransitionCallbackReturn.FAILURE
        self._use_model(loaded)
        s = self.settings
        self.sync = RigSynchronizer(
            s.camera_channels,
            s.anchor_camera,
            int(s.max_spread_ms * MS),
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
        self.intrinsics: dict[str, Any] = {}
        self.markers = MarkerPublisherState()
        self.last_scheduled: int | None = None
        self.pending_reset = False
        self.last_pose_ns: int | None = None
        self.pub_tracks = self.create_lifecycle_publisher(TrackedObject3DArray, "~/tracks", RELIABLE_10)
        self.pub_dets = self.create_lifecycle_publisher(Detection3DArray, "~/detections", RELIABLE_10)
        self.pub_markers = self.create_lifecycle_publisher(MarkerArray, "~/markers", RELIABLE_10)
        self.pub_diag = self.create_lifecycle_publisher(DiagnosticArray, "/diagnostics", RELIABLE_10)
        self._pubs = [self.pub_tracks, self.pub_dets, self.pub_markers, self.pub_diag]
        self.pub_overlay = None
        if s.overlay:
            self.pub_overlay = self.create_lifecycle_publisher(CompressedImage, "~/overlay", RELIABLE_10)
            self._pubs.append(self.pub_overlay)
        self._new_health()
        self.worker = LatestWorker(self._process, self._worker_error)
        return TransitionCallbackReturn.SUCCESS

    def _use_model(self, loaded: LoadedModel) -> None:
        self.experiment, self.backend, self.tracker = loaded.experiment, loaded.backend, loaded.tracker
        self.period_ns = int(loaded.period_s * 1e9)
        for line in self.backend.selection:
            self.get_logger().info(f"backend: {line}")
        self.get_logger().info(f"tracker: {self.experiment.tracker.method}")
        self.get_logger().info(f"model {loaded.path}: processing a frame every {loaded.period_s:.3f} s")

    def _new_health(self) -> None:
        s = self.settings
        # A frame is due once per processing period: a limit below two periods would flap.
        frame_timeout_ns = max(int(s.frame_timeout_s * S), 2 * self.period_ns)
        limits = HealthLimits(int(s.camera_timeout_s * S), frame_timeout_ns, s.min_cameras)
        self.health = RigHealth(s.camera_channels, limits)
        self._published_levels = None

    def on_activate(self, state: State) -> TransitionCallbackReturn:
        s = self.settings
        image_type = CompressedImage if s.image_transport == "compressed" else Image
        for ch, image_topic, info_topic in zip(
            s.camera_channels, s.image_topics, s.camera_info_topics, strict=True
        ):
            self._subs.append(
                self.create_subscription(
                    image_type, image_topic, lambda m, c=ch: self._on_image(c, m), qos_profile_sensor_data
                )
            )
            self._subs.append(
                self.create_subscription(
                    CameraInfo, info_topic, lambda m, c=ch: self._on_info(c, m), qos_profile_sensor_data
                )
            )
        self._subs.append(self.create_subscription(TFMessage, "/tf", self._on_tf, TF_QOS))
        self._subs.append(
            self.create_subscription(
                TFMessage, "/tf_static", lambda m: self._on_tf(m, static=True), TF_STATIC_QOS
            )
        )
        if s.ego_source == "odom":
            self._subs.append(
                self.create_subscription(Odometry, s.odom_topic, self._on_odom, qos_profile_sensor_data)
            )
        self._new_health()  # outages are measured from activation on
        self._timers.append(self.create_timer(0.02, self._poll))
        self._timers.append(self.create_timer(s.diagnostics_period_s, self._publish_diagnostics))
        return super().on_activate(state)

    def on_deactivate(self, state: State) -> TransitionCallbackReturn:
        for sub in self._subs:
            self.destroy_subscription(sub)
        for timer in self._timers:
            self.destroy_timer(timer)
        self._subs, self._timers = [], []
        return super().on_deactivate(state)

    def on_cleanup(self, state: State) -> TransitionCallbackReturn:
        if self.worker is not None:
            self.worker.stop()
        self.worker, self.backend = None, None
        for pub in self._pubs:  # configure creates them again
            self.destroy_lifecycle_publisher(pub)
        self._pubs = []
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: State) -> TransitionCallbackReturn:
        return self.on_cleanup(state)

    # -- inputs ------------------------------------------------------------------------------

    def _now_ns(self) -> int:
        return time.monotonic_ns()

    def _on_image(self, channel: str, msg: Any) -> None:
        now = self._now_ns()
        self.health.image(channel, now)
        with self._lock:
            info = self.intrinsics.get(channel)
        # Without the camera's CameraInfo the image's size cannot be checked before decoding:
        # the worker prepares it with its frame, once the calibration has had time to arrive.
        image = msg if info is None else self._prepare(channel, msg, info)
        self._handle(self.sync.add(channel, stamp_to_ns(msg.header.stamp), (image, now), now))

    def _prepare(self, channel: str, msg: Any, info: CameraIntrinsics | None) -> CameraImage:
        start = self._now_ns()
        size = None if info is None else (info.width, info.height)
        image = prepare_camera_image(msg, self.settings.image_transport, self.experiment.model.input, size)
        self.latency["prepare_image"].add((self._now_ns() - start) / MS)
        if image.problem is not None:  # counted per image, whether or not its frame is processed
            self.counts[f"images.{image.problem[0]}.{channel}"] += 1
        return image

    def _poll(self) -> None:
        now = self._now_ns()
        self._handle(self.sync.poll(now))
        if self.health.levels(now) != self._published_levels:
            self._publish_diagnostics()  # an outage or a recovery: say so now, not at the next tick

    def _on_info(self, channel: str, msg: CameraInfo) -> None:
        try:
            info = camera_info_to_intrinsics(msg)
        except ValueError as err:
            self._count(f"camera_info.{channel}.invalid", f"{channel}: bad CameraInfo: {err}")
            return
        with self._lock:
            old = self.intrinsics.get(channel)
            if (
                old is not None
                and (old.width, old.height, old.frame_id) == (info.width, info.height, info.frame_id)
                and np.allclose(old.K, info.K)
            ):
                return
            if old is not None:
                self._count(
                    f"camera_info.{channel}.changed",
                    f"{channel}: calibration changed; geometry follows from the next frame",
                )
            self.intrinsics[channel] = info

    def _ego_time_jump(self, stamp_ns: int) -> None:
        """Poses from an earlier timeline (bag loop) would be interpolated with the new ones: drop them."""
        if self.last_pose_ns is not None and stamp_ns < self.last_pose_ns - TIME_JUMP_NS:
            self.ego_poses.clear()
            self._count("resets.ego_poses", "ego poses jumped back in time: pose history cleared")
        self.last_pose_ns = stamp_ns

    def _on_tf(self, msg: TFMessage, static: bool = False) -> None:
        transforms, errors = tf_message_to_tf(msg)
        for error in errors:
            self._count("tf.invalid", f"ignored a transform: {error}")
        if not static and transforms:
            self._ego_time_jump(min(t.stamp_ns for t in transforms))
        for t in transforms:
            try:
                self.tf.set_transform(t.parent, t.child, t.stamp_ns, t.transform, static=static)
            except ValueError as err:
                self._count("tf.invalid", f"ignored a transform: {err}")

    def _on_odom(self, msg: Odometry) -> None:
        try:
            t = odometry_to_tf(msg)
            assert isinstance(self.ego, OdometryEgoSource)
            self._ego_time_jump(t.stamp_ns)
            self.ego.add(t.stamp_ns, t.transform, t.parent, t.child)
        except ValueError as err:
            self._count("odom.invalid", f"ignored odometry: {err}")

    # -- scheduling ---------------------------------------------------------------------------

    def _handle(self, result: SyncResult) -> None:
        self._sync_drops(result.drops)
        if result.reset:
            self._count("resets.time_jump", "time jumped backward (bag loop?): tracker reset")
            self.last_scheduled = None
            self.pending_reset = True
        for frame in result.frames:
            if (
                self.last_scheduled is not None
                and frame.stamp_ns - self.last_scheduled < self.period_ns - PERIOD_SLACK_NS
            ):
                self.counts["frames.skipped_by_period"] += 1
                continue
            self.last_scheduled = frame.stamp_ns
            with self._lock:
                job = (frame, self.pending_reset)
                self.pending_reset = False
            assert self.worker is not None
            self.worker.submit(job)

    # -- processing (worker thread) ----------------------------------------------------------------

    def _extrinsics(self, intrinsics: dict[str, Any]) -> dict[str, Transform]:
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

    def _calibration(self) -> dict[str, Any]:
        """CameraInfo of every camera; waits briefly for ones published just after their images."""
        deadline = time.monotonic() + self.settings.tf_wait_ms / 1000.0
        while True:
            with self._lock:
                intrinsics = dict(self.intrinsics)
            if len(intrinsics) == len(self.settings.camera_channels) or time.monotonic() >= deadline:
                return intrinsics
            time.sleep(0.005)

    def _process(self, job: tuple[RigFrame, bool]) -> None:
        frame, reset = job
        intrinsics = self._calibration()
        images = {
            ch: self._frame_image(ch, payload[0], intrinsics.get(ch)) if payload is not None else None
            for ch, payload in frame.payloads.items()
        }
        received_ns = frame.payloads[frame.anchor][1]
        if reset:
            self._reset_tracker(frame.stamp_ns)
        extrapolated = self.ego_poses.extrapolated
        # One wait per frame: its pose lookups (anchor, each camera) must not each wait out a gap.
        ego_pose = partial(self._ego_pose, deadline=time.monotonic() + self.settings.tf_wait_ms / 1000.0)
        t0 = time.perf_counter()
        try:
            inputs = assemble(
                self.settings.camera_channels,
                images,
                frame.stamps_ns,
                frame.stamp_ns,
                intrinsics,
                self._extrinsics(intrinsics),
                ego_pose,
                self.experiment.model.input,
                self.settings.min_frame_cameras,
            )
        except FrameError as err:
            # A frame lost to missing inputs does not use up its processing period: the next one runs.
            self.last_scheduled = None
            if err.channel:
                self.health.blame(err.channel, err.reason, self._now_ns())
            else:
                self.health.frame_lost(err.reason)
            self._count(
                f"frames.dropped.{err.reason}" + (f".{err.channel}" if err.channel else ""),
                f"frame dropped: {err}",
            )
            return
        self._ego_gap(frame.stamp_ns, extrapolated)
        self._degraded(inputs.missing, frame.anchor)
        t1 = time.perf_counter()
        feats = self.backend.encode(inputs.images)
        t2 = time.perf_counter()
        resets, nonfinite = self.tracker.resets, self.tracker.nonfinite_rows
        slots = self.tracker.prepare(frame.stamp_ns, inputs.model_to_world)
        outputs = self.backend.decode(feats, inputs.img2lidar, slots, inputs.used)
        t3 = time.perf_counter()
        tracks = self.tracker.update(outputs)
        t4 = time.perf_counter()
        if self.tracker.resets > resets:
            self._count("resets.tracker", f"tracker reset ({self.tracker.last_reset_reason})")
            self.pub_markers.publish(self.markers.reset(frame.stamp_ns, self.settings.output_frame))
        if self.tracker.nonfinite_rows > nonfinite:
            self._count("model.nonfinite_frames", "the model produced NaN/inf outputs; those queries ignored")
        used = [c for c, on in zip(self.settings.camera_channels, inputs.used, strict=True) if on]
        self._publish(tracks, frame.stamp_ns, inputs.model_to_world, used)
        now = self._now_ns()  # the tracks are out: the overlay (after them) does not count here
        stages = {"assemble": t1 - t0, "encode": t2 - t1, "decode": t3 - t2, "tracker": t4 - t3}
        if self.pub_overlay is not None:
            stages["overlay"] = self._publish_overlay(inputs, tracks)
        for stage, seconds in stages.items():
            self.latency[stage].add(seconds * 1000.0)
        self.latency["receive_to_publish"].add((now - received_ns) / MS)
        if self.settings.latency_log:
            self._log_latency({k: v * 1000.0 for k, v in stages.items()}, (now - received_ns) / MS)
        self._stamp_latency(frame.stamp_ns)
        self.counts["frames.processed"] += 1
        self.health.processed(now, without=inputs.missing)

    def _publish_overlay(self, inputs: Any, tracks: Sequence[Any]) -> float:
        """Publish the debug mosaic after the tracks (it never delays them); seconds it took.
        A failure is counted and logged: a picture must never cost the tracker a frame."""
        start = time.perf_counter()
        try:
            msg = overlay_message(
                inputs,
                tracks,
                self.settings.camera_channels,
                self.experiment.model.input,
                self.settings.base_frame,
            )
        except Exception as err:  # any drawing failure is the overlay's alone
            self._count("overlay.failed", f"overlay not published: {type(err).__name__}: {err}")
        else:
            assert self.pub_overlay is not None
            self.pub_overlay.publish(msg)
        return time.perf_counter() - start

    def _log_latency(self, stages_ms: dict[str, float], receive_to_publish_ms: float) -> None:
        """One JSON line per frame (for `syncl bench node`'s histograms); a write error is counted."""
        line = json.dumps({**stages_ms, "receive_to_publish": receive_to_publish_ms})
        try:
            with open(self.settings.latency_log, "a", encoding="utf-8") as f:
                f.write(line + "\n")
        except OSError as err:
            self._count("latency_log.failed", f"cannot append to latency_log: {err}")

    def _ego_gap(self, stamp_ns: int, extrapolated_before: int) -> None:
        """Count a frame that used extrapolated ego poses; start the tracker over when poses are
        back after a gap too long to bridge."""
        if self.ego_poses.extrapolated > extrapolated_before:
            gap_ms = self.ego_poses.last_gap_ns / MS
            self._count(
                "frames.ego_pose_extrapolated",
                f"no ego pose yet for {gap_ms:.0f} ms past the newest: the last ego motion continued",
            )
        if self.ego_poses.take_return():
            self._count("resets.ego_pose_gap", "ego poses back after a gap over max_ego_gap_s: tracker reset")
            self._reset_tracker(stamp_ns)

    def _reset_tracker(self, stamp_ns: int) -> None:
        self.tracker.reset()
        self.pub_markers.publish(self.markers.reset(stamp_ns, self.settings.output_frame))

    def _stamp_latency(self, stamp_ns: int) -> None:
        """Capture stamp -> publish, on the node's clock, where the stamps are on that clock (live
        sensors, or a replay with /clock and use_sim_time); else only receive_to_publish is shown."""
        lag_ns = self.get_clock().now().nanoseconds - stamp_ns
        self.stamp_lag_s = lag_ns / S
        self.stamps_on_clock = abs(lag_ns) <= STAMP_CLOCK_TOLERANCE_NS
        if self.stamps_on_clock:
            self.latency["stamp_to_publish"].add(lag_ns / MS)
        else:
            self.latency.pop("stamp_to_publish", None)  # samples of another clock would mislead

    def _frame_image(self, channel: str, image: Any, info: CameraIntrinsics | None) -> CameraImage:
        return image if isinstance(image, CameraImage) else self._prepare(channel, image, info)

    def _degraded(self, missing: dict[str, FrameError], anchor: str) -> None:
        """A frame processed without some cameras: blame each (diagnostics name it) and count it."""
        now = self._now_ns()
        for channel, err in missing.items():
            self.health.blame(channel, err.reason, now)
            self._count(f"frames.without.{err.reason}.{channel}", f"frame processed without {err}")
        if missing:
            self.counts["frames.degraded"] += 1
        if anchor != self.settings.anchor_camera:
            self.counts["frames.anchor_handed_over"] += 1

    def _publish(
        self, tracks: Sequence[Any], stamp_ns: int, model_to_world: Transform, cameras: Sequence[str]
    ) -> None:
        s = self.settings
        to_output = model_to_world if s.output_frame == s.world_frame else None
        self.pub_tracks.publish(tracks_to_msg(tracks, stamp_ns, s.output_frame, to_output, cameras))
        self.pub_dets.publish(tracks_to_detections(tracks, stamp_ns, s.output_frame, to_output))
        self.pub_markers.publish(self.markers.update(tracks, stamp_ns, s.output_frame, to_output))

    def _worker_error(self, err: BaseException) -> None:
        self.health.frame_lost("internal_error")
        self._count("frames.dropped.internal_error", f"frame failed: {type(err).__name__}: {err}")

    # -- reporting -------------------------------------------------------------------------------

    def _count(self, key: str, message: str) -> None:
        self.counts[key] += 1
        if self._warning_due(key):
            self.get_logger().warning(f"{message} [{key}: {self.counts[key]}]")

    def _sync_drops(self, drops: Sequence[tuple[str, DropReason]]) -> None:
        now = self._now_ns()
        for channel, reason in drops:
            self.health.blame(channel, reason.value, now)
            key = f"sync.dropped.{reason.value}.{channel}"
            if self._warning_due(key):
                total = self.sync.stats()["cameras"][channel]["dropped"][reason.value]
                self.get_logger().warning(f"{channel}: {SYNC_DROPS[reason]} [{key}: {total}]")

    def _warning_due(self, key: str) -> bool:
        """One throttle per kind of warning: rclpy's throttles per call site, where a frequent kind
        would hide all the others."""
        now = time.monotonic()
        if now - self._warned.get(key, -math.inf) < WARN_PERIOD_S:
            return False
        self._warned[key] = now
        return True

    def diagnostics(self) -> list[Any]:
        """The input and pipeline statuses now (levels from the node's monotonic clock)."""
        now = self._now_ns()
        inputs = self.sync.stats()
        for channel, values in self.health.camera_values(now).items():
            inputs["cameras"][channel].update(values)
        level, message = self.health.input_status(now)
        statuses = [diagnostic_status("syncl_tracker: input", inputs, level, message)]
        level, message = self.health.pipeline_status(now)
        if self.stamps_on_clock is False:
            message += "; stamps are not on the node clock: latency from arrival only"
        statuses.append(diagnostic_status("syncl_tracker: pipeline", self._pipeline_values(), level, message))
        self._published_levels = self.health.levels(now)
        return statuses

    def _pipeline_values(self) -> dict[str, Any]:
        on_clock = self.stamps_on_clock
        return {
            "backend": getattr(self.backend, "name", "none"),
            "counts": dict(self.counts),
            # The worker thread adds stages while this runs: iterate over a snapshot (one C-level copy).
            "latency": {k: v.summary() for k, v in list(self.latency.items())},
            # Which latency is shown: from the stamps (stamp_to_publish) or only from arrival.
            "latency_from": "n/a" if on_clock is None else ("stamp" if on_clock else "arrival"),
            "stamp_lag_s": self.stamp_lag_s,
            "worker": {"replaced_while_busy": self.worker.replaced if self.worker else 0},
            "tracker": {
                "method": self.experiment.tracker.method,
                "live": self.tracker.num_live,
                "resets": self.tracker.resets,
                "dropped_births": self.tracker.dropped_births,
                "duplicate_births": self.tracker.duplicate_births,
                "full_table_frames": self.tracker.full_table_frames,
                "nonfinite_rows": self.tracker.nonfinite_rows,
            },
        }

    def _publish_diagnostics(self) -> None:
        statuses = self.diagnostics()
        self.pub_diag.publish(diagnostic_array(self.get_clock().now().nanoseconds, statuses))


def main(args: Sequence[str] | None = None) -> int:
    rclpy.init(args=list(args) if args is not None else None)
    try:
        node = TrackerNode()
    except ValueError as err:  # bad parameters
        print(f"syncl_tracker: {err}", file=sys.stderr)
        rclpy.try_shutdown()
        return 2
    s = node.settings
    if s.build_only:
        ok = node.trigger_configure() == TransitionCallbackReturn.SUCCESS
        if ok:
            node.get_logger().info("build_only: the model is ready; exiting")
            node.trigger_cleanup()
        node.destroy_node()
        rclpy.try_shutdown()
        return 0 if ok else 1
    if s.autostart:
        if node.trigger_configure() == TransitionCallbackReturn.SUCCESS:
            node.trigger_activate()
        else:
            name = node.get_fully_qualified_name()
            hint = f"ros2 lifecycle set {name} configure, then activate"
            node.get_logger().info(f"staying unconfigured; once fixed: {hint}")
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    try:
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        if node.worker is not None:
            node.worker.stop()
        node.destroy_node()
        rclpy.try_shutdown()
    return 0
