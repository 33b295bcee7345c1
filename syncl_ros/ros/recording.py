"""Recorded node output -> nuScenes tracking results, for scoring what the node published."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from syncl_ros.data.frames import ANCHOR_CHANNEL
from syncl_ros.pipeline.results import result_box
from syncl_ros.ros.messages import msg_to_boxes, stamp_to_ns


def results_from_messages(
    messages: Iterable[Any], nusc: Any, sample_tokens: Iterable[str]
) -> tuple[dict[str, list[dict[str, Any]]], int]:
    """TrackedObject3DArray messages in a world frame -> (results per sample, messages not at a key frame).

    The node stamps a frame with its anchor camera's capture time; results belong to the sample
    time, so boxes move by their velocity over the difference (as offline tracking does).
    """
    results: dict[str, list[dict[str, Any]]] = {t: [] for t in sample_tokens}
    anchor_ns = {
        t: nusc.get("sample_data", nusc.get("sample", t)["data"][ANCHOR_CHANNEL])["timestamp"] * 1000
        for t in results
    }
    by_stamp = {stamp: token for token, stamp in anchor_ns.items()}
    unmatched = 0
    for msg in messages:
        token = by_stamp.get(stamp_to_ns(msg.header.stamp))
        if token is None:
            unmatched += 1
            continue
        dt_s = (nusc.get("sample", token)["timestamp"] * 1000 - anchor_ns[token]) * 1e-9
        for obj, box in zip(msg.objects, msg_to_boxes(msg), strict=True):
            results[token].append(result_box(box, token, dt_s, obj.track_id, obj.class_name, obj.score))
    return results, unmatched
