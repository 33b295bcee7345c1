"""Tracks to draw, per key frame, from a nuScenes tracking results JSON or from a recording
(rosbag2 folder or .mcap file) of the node's ~/tracks, in the world frame.

A recording is read with rosbags (no ROS install needed). The node stamps a frame with its
anchor camera's capture time, so a message belongs to the key frame whose anchor image has
that stamp; tracks published in base_link go to the world frame with that image's ego pose.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from pyquaternion import Quaternion

from syncl_ros import boxes as box_ops
from syncl_ros.geometry import quaternion_yaw
from syncl_ros.viz.scene import ANCHOR, TrackBox, ego_to_world

TRACKS_TOPIC = "/syncl_tracker/tracks"
WORLD_FRAME = "map"


class SourceError(ValueError):
    """A results file or recording that cannot be drawn; the message says why."""


def load_tracks(path: Path, nusc: Any, topic: str = TRACKS_TOPIC) -> dict[str, list[TrackBox]]:
    """Sample token -> tracks at that key frame."""
    if not path.exists():
        raise SourceError(f"{path}: no such file or folder")
    if path.suffix == ".json":
        return _from_results(path)
    return _from_recording(path, nusc, topic)


def _from_results(path: Path) -> dict[str, list[TrackBox]]:
    try:
        return tracks_from_results(json.loads(path.read_text())["results"])
    except (json.JSONDecodeError, KeyError, TypeError) as err:
        raise SourceError(f"{path}: not a nuScenes results JSON ({err})") from err


def tracks_from_results(results: dict[str, list[dict[str, Any]]]) -> dict[str, list[TrackBox]]:
    """The "results" mapping of a nuScenes tracking results JSON -> tracks per sample token."""
    return {
        token: [
            TrackBox(
                box_ops.from_nuscenes(b["translation"], b["size"], b["rotation"], b.get("velocity", (0, 0))),
                str(b["tracking_id"]),
                b["tracking_name"],
            )
            for b in boxes
        ]
        for token, boxes in results.items()
    }


def recorded_messages(path: Path, topic: str = TRACKS_TOPIC) -> Iterator[Any]:
    """Messages of ``topic`` in a recording, deserialized by rosbags (same fields as rclpy's)."""
    from rosbags.highlevel import AnyReader
    from rosbags.highlevel.anyreader import AnyReaderError

    from syncl_ros.data.rosmsgs import typestore

    try:
        with AnyReader([path], default_typestore=typestore()) as reader:
            conns = [c for c in reader.connections if c.topic == topic]
            if not conns:
                topics = ", ".join(sorted({c.topic for c in reader.connections}))
                raise SourceError(f"{path}: no {topic} in this recording (it has: {topics})")
            for conn, _, raw in reader.messages(connections=conns):
                yield reader.deserialize(raw, conn.msgtype)
    except AnyReaderError as err:
        raise SourceError(f"{path}: not a readable recording ({err})") from err


def _boxes(msg: Any) -> NDArray[np.float64]:
    rows = []
    for o in msg.objects:
        q = o.pose.orientation
        yaw = quaternion_yaw(Quaternion(q.w, q.x, q.y, q.z))
        p = o.pose.position
        rows.append([p.x, p.y, p.z, o.size.x, o.size.y, o.size.z, yaw, o.velocity.x, o.velocity.y])
    return np.array(rows, dtype=np.float64).reshape(-1, box_ops.BOX_DIM)


def _from_recording(path: Path, nusc: Any, topic: str) -> dict[str, list[TrackBox]]:
    by_stamp = {}
    for sample in nusc.sample:
        sd = nusc.get("sample_data", sample["data"][ANCHOR])
        by_stamp[sd["timestamp"] * 1000] = (sample["token"], sd["token"])
    out: dict[str, list[TrackBox]] = {}
    for msg in recorded_messages(path, topic):
        stamp_ns = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
        if stamp_ns not in by_stamp:
            continue  # not a key frame (the node may process every camera frame)
        token, anchor = by_stamp[stamp_ns]
        boxes = _boxes(msg)
        if msg.header.frame_id != WORLD_FRAME:
            boxes = box_ops.transform_boxes(boxes, ego_to_world(nusc, anchor))
        objects = msg.objects
        out[token] = [TrackBox(b, str(o.track_id), o.class_name) for b, o in zip(boxes, objects, strict=True)]
    return out
