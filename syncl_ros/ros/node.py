"""The syncl_ros tracker node (a lifecycle node): the ROS edge of the live pipeline.

configure: read parameters, load the model into a backend, create publishers.
activate:  subscribe to the six cameras, their CameraInfo, /tf + /tf_static (or odometry).
Messages are converted and handed to the live pipeline (syncl_ros/pipeline/live.py), which
synchronizes the rig, processes a frame per processing period (the model's trained frame
interval by default) in one worker thread, and hands back each frame's tracks. Published:
~/tracks, ~/detections, ~/markers (and, with the overlay parameter, ~/overlay: the network's
six input images with the boxes drawn); /diagnostics once a second, and at once when a status
changes level.

A configure that fails (a missing, truncated or foreign model file, weights that do not fit
their configuration) logs one line naming the file and the cause and leaves the node
unconfigured; configure can be requested again once the file is fixed.

QoS, on purpose:
- images and CameraInfo: sensor-data (best effort, keep last 5): matches both
  best-effort camera drivers and reliable publishers such as bag players;
- /tf: reliable, keep all, and each /tf callback also takes every message waiting behind its
  own: a node that falls behind its callbacks (a loaded machine) neither loses transforms (keep
  last 100 lost 200 of 300 sent while the executor was busy) nor works through an ever longer
  queue of old ones; /tf_static: reliable, transient local (latched);
  odometry: sensor-data;
- outputs: reliable, keep last 10 (RViz and recorders get every frame);
  /diagnostics: reliable, keep last 10.
"""

from __future__ import annotations

import functools
import sys
import time
from collections.abc import Sequence
from typing import Any

import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from nav_msgs.msg import Odometry
from rclpy.exceptions import ParameterException
from rclpy.executors import SingleThreadedExecutor
from rclpy.lifecycle import Node as LifecycleNode
from rclpy.lifecycle import State, TransitionCallbackReturn
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from rclpy.utilities import try_shutdown  # rclpy imports it without re-exporting it
from sensor_msgs.msg import CameraInfo, CompressedImage, Image
from tf2_msgs.msg import TFMessage
from vision_msgs.msg import Detection3DArray
from visualization_msgs.msg import MarkerArray

from syncl_ros.msg import TrackedObject3DArray
from syncl_ros.pipeline.frame_pipeline import FrameResult
from syncl_ros.pipeline.live import LivePipeline
from syncl_ros.pipeline.model_setup import ModelSetupError, load_model
from syncl_ros.pipeline.report import Latency
from syncl_ros.ros.markers import MarkerPublisherState
from syncl_ros.ros.messages import (
    camera_info_to_intrinsics,
    diagnostic_array,
    diagnostic_status,
    odometry_to_tf,
    stamp_to_ns,
    tf_message_to_tf,
    tracks_to_detections,
    tracks_to_msg,
)
from syncl_ros.ros.overlay_topic import overlay_message
from syncl_ros.ros.settings import NodeSettings, declare_and_read
from syncl_ros.ros.spin import spin_until_shutdown

MS = 1_000_000
S = 1_000_000_000
RELIABLE_10 = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE, history=HistoryPolicy.KEEP_LAST)
TF_QOS = QoSProfile(reliability=ReliabilityPolicy.RELIABLE, history=HistoryPolicy.KEEP_ALL)
TF_TAKE_MAX = 1000  # /tf messages taken in one callback at most: the other callbacks get their turn
TF_STATIC_QOS = QoSProfile(
    depth=1,
    reliability=ReliabilityPolicy.RELIABLE,
    durability=DurabilityPolicy.TRANSIENT_LOCAL,
    history=HistoryPolicy.KEEP_LAST,
)
# A frame stamp further than this from the node's clock is not on that clock (a bag replayed
# without /clock, a camera clock off by hours): its stamp-to-publish latency would mean nothing.
STAMP_CLOCK_TOLERANCE_NS = 10 * S


class TrackerNode(LifecycleNode):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__("syncl_tracker", **kwargs)
        self.settings: NodeSettings = declare_and_read(self)
        self.pipeline: LivePipeline | None = None
        self._subs: list[Any] = []
        self._tf_sub: Any = None
        self._timers: list[Any] = []
        self._pubs: list[Any] = []
        self.stamps_on_clock: bool | None = None  # frame stamps on the node's clock (None: no frame yet)
        self.stamp_lag_s: float | None = None  # node clock minus the newest frame's stamp, at publish
        self.stamp_latency: Latency | None = None  # stamp -> publish, while the stamps are on the clock

    # -- lifecycle ---------------------------------------------------------------------------

    def on_configure(self, state: State) -> TransitionCallbackReturn:
        try:
            loaded = load_model(self.settings)
        except ModelSetupError as err:
            self.get_logger().error(f"configure failed: {err}")
            return TransitionCallbackReturn.FAILURE
        for line in loaded.backend.selection:
            self.get_logger().info(f"backend: {line}")
        self.get_logger().info(f"tracker: {loaded.experiment.tracker.method}")
        self.get_logger().info(f"model {loaded.path}: processing a frame every {loaded.period_s:.3f} s")
        self.markers = MarkerPublisherState()
        self.pub_tracks = self.create_lifecycle_publisher(TrackedObject3DArray, "~/tracks", RELIABLE_10)
        self.pub_dets = self.create_lifecycle_publisher(Detection3DArray, "~/detections", RELIABLE_10)
        self.pub_markers = self.create_lifecycle_publisher(MarkerArray, "~/markers", RELIABLE_10)
        self.pub_diag = self.create_lifecycle_publisher(DiagnosticArray, "/diagnostics", RELIABLE_10)
        self._pubs = [self.pub_tracks, self.pub_dets, self.pub_markers, self.pub_diag]
        self.pub_overlay = None
        if self.settings.overlay:
            self.pub_overlay = self.create_lifecycle_publisher(CompressedImage, "~/overlay", RELIABLE_10)
            self._pubs.append(self.pub_overlay)
        self.pipeline = LivePipeline(self.settings, loaded, self, self.get_logger().warning)
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: State) -> TransitionCallbackReturn:
        s = self.settings
        image_type = CompressedImage if s.image_transport == "compressed" else Image
        for ch, image_topic, info_topic in zip(
            s.camera_channels, s.image_topics, s.camera_info_topics, strict=True
        ):
            self._subs.append(
                self.create_subscription(
                    image_type, image_topic, functools.partial(self._on_image, ch), qos_profile_sensor_data
                )
            )
            self._subs.append(
                self.create_subscription(
                    CameraInfo, info_topic, functools.partial(self._on_info, ch), qos_profile_sensor_data
                )
            )
        self._tf_sub = self.create_subscription(TFMessage, "/tf", self._on_tf_stream, TF_QOS)
        self._subs.append(self._tf_sub)
        self._subs.append(
            self.create_subscription(
                TFMessage, "/tf_static", lambda m: self._on_tf(m, static=True), TF_STATIC_QOS
            )
        )
        if s.ego_source == "odom":
            self._subs.append(
                self.create_subscription(Odometry, s.odom_topic, self._on_odom, qos_profile_sensor_data)
            )
        self._live().restart_health()  # outages are measured from activation on
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
        if self.pipeline is not None:
            self.pipeline.stop()
        self.pipeline = None
        for pub in self._pubs:  # configure creates them again
            self.destroy_lifecycle_publisher(pub)
        self._pubs = []
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: State) -> TransitionCallbackReturn:
        return self.on_cleanup(state)

    def _live(self) -> LivePipeline:
        assert self.pipeline is not None, "the node is not configured"
        return self.pipeline

    # -- inputs: messages converted for the pipeline ---------------------------------------------

    def _on_image(self, channel: str, msg: Any) -> None:
        self._live().add_image(channel, stamp_to_ns(msg.header.stamp), msg)

    def _on_info(self, channel: str, msg: CameraInfo) -> None:
        try:
            info = camera_info_to_intrinsics(msg)
        except ValueError as err:
            self._live().counters.add(f"camera_info.{channel}.invalid", f"{channel}: bad CameraInfo: {err}")
            return
        self._live().add_camera_info(channel, info)

    def _on_tf_stream(self, msg: TFMessage) -> None:
        """/tf: this message and every one already waiting behind it. rclpy's executor takes one
        message per subscription per turn, so with slow callbacks (images on a loaded machine) a
        topic as busy as /tf would fall ever further behind in its keep-all reader."""
        self._on_tf(msg)
        for _ in range(TF_TAKE_MAX):
            waiting = take_waiting(self._tf_sub)
            if waiting is None:
                return
            self._on_tf(waiting)

    def _on_tf(self, msg: TFMessage, static: bool = False) -> None:
        transforms, errors = tf_message_to_tf(msg)
        for error in errors:
            self._live().counters.add("tf.invalid", f"ignored a transform: {error}")
        self._live().add_transforms(transforms, static)

    def _on_odom(self, msg: Odometry) -> None:
        try:
            pose = odometry_to_tf(msg)
        except ValueError as err:
            self._live().counters.add("odom.invalid", f"ignored odometry: {err}")
            return
        self._live().add_odometry(pose)

    def _poll(self) -> None:
        if self._live().poll():
            self._publish_diagnostics()  # an outage or a recovery: say so now, not at the next tick

    # -- outputs: the pipeline's frames published (worker thread) --------------------------------

    def publish(self, result: FrameResult, cameras: Sequence[str]) -> None:
        s = self.settings
        stamp_ns = result.inputs.stamp_ns
        to_output = result.inputs.model_to_world if s.output_frame == s.world_frame else None
        tracks = result.tracks
        self.pub_tracks.publish(tracks_to_msg(tracks, stamp_ns, s.output_frame, to_output, cameras))
        self.pub_dets.publish(tracks_to_detections(tracks, stamp_ns, s.output_frame, to_output))
        self.pub_markers.publish(self.markers.update(tracks, stamp_ns, s.output_frame, to_output))
        self._stamp_latency(stamp_ns)

    def publish_extras(self, result: FrameResult) -> dict[str, float]:
        """The debug mosaic, after the tracks (it never delays them). A failure is counted and
        logged: a picture must never cost the tracker a frame."""
        if self.pub_overlay is None:
            return {}
        start = time.perf_counter()
        try:
            msg = overlay_message(
                result.inputs,
                result.tracks,
                self.settings.camera_channels,
                self._live().experiment.model.input,
                self.settings.base_frame,
            )
        except Exception as err:  # any drawing failure is the overlay's alone
            self._live().counters.add("overlay.failed", f"overlay not published: {type(err).__name__}: {err}")
        else:
            self.pub_overlay.publish(msg)
        return {"overlay": (time.perf_counter() - start) * 1000.0}

    def clear(self, stamp_ns: int) -> None:
        self.pub_markers.publish(self.markers.reset(stamp_ns, self.settings.output_frame))

    def _stamp_latency(self, stamp_ns: int) -> None:
        """Capture stamp -> publish, on the node's clock, where the stamps are on that clock (live
        sensors, or a replay with /clock and use_sim_time); else only receive_to_publish is shown."""
        lag_ns = self.get_clock().now().nanoseconds - stamp_ns
        self.stamp_lag_s = lag_ns / S
        self.stamps_on_clock = abs(lag_ns) <= STAMP_CLOCK_TOLERANCE_NS
        if not self.stamps_on_clock:
            self.stamp_latency = None  # samples of another clock would mislead
            return
        if self.stamp_latency is None:
            self.stamp_latency = Latency()
        self.stamp_latency.add(lag_ns / MS)

    # -- diagnostics -----------------------------------------------------------------------------

    def diagnostics(self) -> list[Any]:
        """The input and pipeline statuses now (levels from the pipeline's monotonic clock)."""
        live = self._live()
        now = live.now_ns()
        level, message = live.health.input_status(now)
        statuses = [diagnostic_status("syncl_tracker: input", live.input_values(now), level, message)]
        level, message = live.health.pipeline_status(now)
        if self.stamps_on_clock is False:
            message += "; stamps are not on the node clock: latency from arrival only"
        statuses.append(diagnostic_status("syncl_tracker: pipeline", self._pipeline_values(), level, message))
        live.reported(now)
        return statuses

    def _pipeline_values(self) -> dict[str, Any]:
        values = self._live().pipeline_values()
        stamp_latency = self.stamp_latency  # the worker thread may drop it meanwhile
        if stamp_latency is not None:
            values["latency"]["stamp_to_publish"] = stamp_latency.summary()
        on_clock = self.stamps_on_clock
        # Which latency is shown: from the stamps (stamp_to_publish) or only from arrival.
        values["latency_from"] = "n/a" if on_clock is None else ("stamp" if on_clock else "arrival")
        values["stamp_lag_s"] = self.stamp_lag_s
        return values

    def _publish_diagnostics(self) -> None:
        statuses = self.diagnostics()
        self.pub_diag.publish(diagnostic_array(self.get_clock().now().nanoseconds, statuses))


def main(args: Sequence[str] | None = None) -> int:
    rclpy.init(args=list(args) if args is not None else None)
    try:
        node = TrackerNode()
    except (ValueError, ParameterException) as err:  # bad parameters (ConfigError is a ValueError)
        print(f"syncl_tracker: {err}", file=sys.stderr)
        try_shutdown()
        return 2
    s = node.settings
    if s.build_only:
        ready = node.trigger_configure() == TransitionCallbackReturn.SUCCESS
        if ready:
            node.get_logger().info("build_only: the model is ready; exiting")
            node.trigger_cleanup()
        node.destroy_node()
        try_shutdown()
        return 0 if ready else 1
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
        spin_until_shutdown(executor)
    finally:
        if node.pipeline is not None:
            node.pipeline.stop()
        node.destroy_node()
        try_shutdown()
    return 0


def take_waiting(sub: Any) -> Any | None:
    """The next message waiting in a subscription's reader, or None. rclpy has no public call for
    this; it is the take its executor makes (rclpy 3 to 7)."""
    with sub.handle:
        taken = sub.handle.take_message(sub.msg_type, sub.raw)
    return None if taken is None else taken[0]
