"""One key frame of a nuScenes-format dataset as a picture: the six camera images with the tracks
(and ground truth) projected into them, laid out as the rig sits, beside the bird's-eye view.

Tracks are boxes in the world frame (nuScenes results, or a recording's tracks turned into
them by viz/sources.py). Each camera gets its own world -> image matrix from its own ego pose
and calibration, so boxes land where the dataset's images show them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

import cv2
import numpy as np
from numpy.typing import NDArray

from syncl_ros import boxes as box_ops
from syncl_ros.geometry import Transform, ego_to_image, image_transform
from syncl_ros.rig import CAMERA_CHANNELS
from syncl_ros.viz.bev import draw_bev
from syncl_ros.viz.overlay import Image, OverlayBox, beside, caption, draw_boxes, gt_box, mosaic, track_box

ANCHOR = "CAM_FRONT"


@dataclass(frozen=True)
class TrackBox:
    """One track at one frame, in the world frame."""

    box: NDArray[np.float64]  # (9,)
    track_id: str
    class_name: str


@dataclass(frozen=True)
class CameraView:
    channel: str
    path: str
    size: tuple[int, int]  # full image (width, height)
    world_to_image: NDArray[np.float64]  # 4x4 for full-resolution pixels


def ego_to_world(nusc: Any, sample_data_token: str) -> Transform:
    sd = nusc.get("sample_data", sample_data_token)
    pose = nusc.get("ego_pose", sd["ego_pose_token"])
    return Transform.from_tq(pose["translation"], pose["rotation"])


def camera_view(nusc: Any, sample: dict[str, Any], channel: str) -> CameraView:
    """Calibration and pose of one camera at its own capture time in this sample."""
    sd = nusc.get("sample_data", sample["data"][channel])
    cs = nusc.get("calibrated_sensor", sd["calibrated_sensor_token"])
    cam_to_ego = Transform.from_tq(cs["translation"], cs["rotation"])
    world_to_ego = ego_to_world(nusc, sd["token"]).inverse().matrix()
    matrix = ego_to_image(np.asarray(cs["camera_intrinsic"]), cam_to_ego) @ world_to_ego
    return CameraView(channel, nusc.get_sample_data_path(sd["token"]), (sd["width"], sd["height"]), matrix)


def scene_samples(nusc: Any, scene_name: str) -> list[dict[str, Any]]:
    """The scene's key frames in time order."""
    scenes = {s["name"]: s for s in nusc.scene}
    if scene_name not in scenes:
        raise ValueError(f"no scene {scene_name!r} in this dataset; it has {', '.join(sorted(scenes))}")
    token, out = scenes[scene_name]["first_sample_token"], []
    while token:
        sample = nusc.get("sample", token)
        out.append(sample)
        token = sample["next"]
    return out


def ground_truth(nusc: Any, sample: dict[str, Any]) -> list[OverlayBox]:
    anns = (nusc.get("sample_annotation", a) for a in sample["anns"])
    return [gt_box(box_ops.from_nuscenes(a["translation"], a["size"], a["rotation"])) for a in anns]


def _load_tile(view: CameraView, tile_width: int) -> Image | None:
    """The camera image at tile width; JPEGs decode at half scale when that is still wide enough."""
    flag = cv2.IMREAD_REDUCED_COLOR_2 if view.size[0] >= 2 * tile_width else cv2.IMREAD_COLOR
    image = cv2.imread(view.path, flag)
    if image is None:
        return None
    height = round(view.size[1] * tile_width / view.size[0])
    return cast(Image, cv2.resize(image, (tile_width, height), interpolation=cv2.INTER_AREA))  # color: uint8


def render_sample(
    nusc: Any, sample: dict[str, Any], tracks: Sequence[TrackBox], show_gt: bool = True, tile_width: int = 400
) -> Image:
    """Camera mosaic with projected boxes beside the bird's-eye view, as one BGR picture."""
    drawn = [track_box(t.box, t.track_id, t.class_name) for t in tracks]
    if show_gt:
        drawn = ground_truth(nusc, sample) + drawn  # grey first, tracks on top
    tiles: dict[str, Image] = {}
    tile_size = (tile_width, tile_width * 9 // 16)
    for channel in CAMERA_CHANNELS:
        view = camera_view(nusc, sample, channel)
        tile = _load_tile(view, tile_width)
        if tile is None:
            continue  # mosaic() marks the camera as missing
        scale = tile.shape[1] / view.size[0]
        aug = np.eye(4)
        aug[:3, :3] = image_transform(scale, tile.shape[0] / view.size[1])
        tiles[channel] = draw_boxes(tile, drawn, aug @ view.world_to_image)
        tile_size = (tile.shape[1], tile.shape[0])
    cameras = mosaic(tiles, tile_size)
    to_ego = ego_to_world(nusc, sample["data"][ANCHOR]).inverse()
    bev = draw_bev(drawn, to_ego, size=cameras.shape[0], scale=cameras.shape[0] / 100.0)
    caption(bev, f"{len(tracks)} tracks" + (", ground truth grey" if show_gt else "") + "; 10 m rings")
    return beside(cameras, bev)
