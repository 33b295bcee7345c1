"""nuScenes results boxes: a world-frame box as a tracking result box, and a tracking result box
as a detection result box (the formats `syncl track` writes and `syncl eval` reads)."""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from syncl_ros import boxes as box_ops

RESULTS_META = {
    "use_camera": True,
    "use_lidar": False,
    "use_radar": False,
    "use_map": False,
    "use_external": False,
}


def result_box(
    world_box: ArrayLike, sample_token: str, dt_s: float, track_id: int, name: str, score: float
) -> dict[str, Any]:
    """A world-frame box (9,) estimated dt_s before the sample time as a nuScenes result box."""
    world = np.array(world_box, dtype=np.float64)
    world[: box_ops.Y + 1] += world[box_ops.VX : box_ops.VY + 1] * dt_s  # move to the sample time
    nus = box_ops.to_nuscenes(world)
    return {
        "sample_token": sample_token,
        "translation": nus["translation"],
        "size": nus["size"],
        "rotation": nus["rotation"],
        "velocity": nus["velocity"],
        "tracking_id": str(track_id),
        "tracking_name": name,
        "tracking_score": float(score),
    }


def detection_box(box: dict[str, Any]) -> dict[str, Any]:
    """A tracking result box as a detection result box (its tracking score as detection score)."""
    keep = ("sample_token", "translation", "size", "rotation", "velocity")
    return {
        **{k: box[k] for k in keep},
        "detection_name": box["tracking_name"],
        "detection_score": box["tracking_score"],
        "attribute_name": "",  # the network predicts no attributes
    }
