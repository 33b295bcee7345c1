"""RViz markers for tracks: a box, a label and a velocity arrow per track.

Markers live forever in RViz until deleted, so :class:`MarkerPublisherState`
remembers which (namespace, id) pairs are on screen and sends DELETE for the
ones whose track ended (or stopped moving, for arrows); a tracker reset sends
DELETEALL. Marker ids derive from the track id, so a track keeps its markers
from frame to frame and RViz updates them in place.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from builtin_interfaces.msg import Duration
from geometry_msgs.msg import Point, Pose, Quaternion, Vector3
from numpy.typing import NDArray
from std_msgs.msg import ColorRGBA
from visualization_msgs.msg import Marker, MarkerArray

from syncl_ros.classes import CLASS_COLORS, UNKNOWN_COLOR
from syncl_ros.geometry import Transform, yaw_quaternion
from syncl_ros.ros.messages import OutputBoxes, boxes_in_output, make_header, pose_to_msg
from syncl_ros.tracking.interface import Track

_INT32 = 2**31


def marker_id(track_id: int) -> int:
    """Stable int32 marker id of a track (track ids are never reused, so this is unique for 2^31 tracks)."""
    return int(track_id) % _INT32


def class_color(class_name: str, alpha: float = 1.0) -> ColorRGBA:
    r, g, b = CLASS_COLORS.get(class_name, UNKNOWN_COLOR)
    return ColorRGBA(r=r, g=g, b=b, a=float(alpha))


def _point(p: NDArray[np.float64]) -> Point:
    x, y, z = (float(v) for v in p)
    return Point(x=x, y=y, z=z)


class MarkerPublisherState:
    """Builds MarkerArrays and tracks which markers are on screen."""

    def __init__(
        self,
        namespace: str = "tracks",
        box_alpha: float = 0.5,
        min_speed_mps: float = 0.5,
        text_height_m: float = 0.8,
        arrow_horizon_s: float = 1.0,
    ) -> None:
        self.ns_box = f"{namespace}/boxes"
        self.ns_text = f"{namespace}/labels"
        self.ns_arrow = f"{namespace}/velocity"
        self.box_alpha = box_alpha
        self.min_speed_mps = min_speed_mps
        self.text_height_m = text_height_m
        self.arrow_horizon_s = arrow_horizon_s
        self.published: set[tuple[str, int]] = set()

    def update(
        self, tracks: Sequence[Track], stamp_ns: int, frame_id: str, to_output: Transform | None = None
    ) -> MarkerArray:
        """Markers of the current tracks plus DELETE for those that ended since the last call."""
        boxes = boxes_in_output(tracks, to_output)
        header = make_header(stamp_ns, frame_id)
        current: list[Marker] = []
        for i, track in enumerate(tracks):
            current.extend(self._track_markers(track, boxes, i))
        for m in current:
            m.header = header
        keys = {(m.ns, m.id) for m in current}
        ended = sorted(self.published - keys)
        deletes = [Marker(header=header, ns=ns, id=mid, action=Marker.DELETE) for ns, mid in ended]
        self.published = keys
        return MarkerArray(markers=deletes + current)

    def reset(self, stamp_ns: int, frame_id: str) -> MarkerArray:
        """DELETEALL (every namespace: ns left empty) after a tracker reset; forgets the published set."""
        self.published.clear()
        return MarkerArray(markers=[Marker(header=make_header(stamp_ns, frame_id), action=Marker.DELETEALL)])

    def _track_markers(self, track: Track, boxes: OutputBoxes, i: int) -> list[Marker]:
        mid = marker_id(track.track_id)
        center, size, velocity = boxes.centers[i], boxes.sizes[i], boxes.velocities[i]
        speed = float(np.hypot(velocity[0], velocity[1]))
        box = Marker(ns=self.ns_box, id=mid, type=Marker.CUBE, action=Marker.ADD)
        box.pose = pose_to_msg(Transform(yaw_quaternion(float(boxes.yaws[i])), center))
        box.scale = Vector3(x=float(size[0]), y=float(size[1]), z=float(size[2]))
        box.color = class_color(track.class_name, self.box_alpha)
        text = Marker(ns=self.ns_text, id=mid, type=Marker.TEXT_VIEW_FACING, action=Marker.ADD)
        above = np.array([0.0, 0.0, size[2] / 2 + self.text_height_m])
        text.pose = Pose(position=_point(center + above))
        text.pose.orientation = Quaternion(w=1.0)
        text.scale.z = self.text_height_m
        text.color = ColorRGBA(r=1.0, g=1.0, b=1.0, a=1.0)
        text.text = f"{track.track_id} {track.class_name} {speed * 3.6:.0f} km/h"
        markers = [box, text]
        if speed >= self.min_speed_mps:
            arrow = Marker(ns=self.ns_arrow, id=mid, type=Marker.ARROW, action=Marker.ADD)
            arrow.points = [_point(center), _point(center + velocity * self.arrow_horizon_s)]
            arrow.pose.orientation = Quaternion(w=1.0)
            arrow.scale = Vector3(x=0.2, y=0.4, z=0.4)  # shaft diameter, head diameter, head length
            arrow.color = class_color(track.class_name)
            markers.append(arrow)
        for m in markers:
            m.lifetime = Duration()  # forever: ended tracks are deleted explicitly
        return markers
