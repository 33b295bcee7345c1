"""Key-frame access to nuScenes-format datasets (real nuScenes or the synthetic
world), through the official nuscenes-devkit.

A Frame holds what the tracker consumes and what training supervises, all in
the model frame at the frame's reference time: the six images with intrinsics
and camera->model transforms (each camera's own ego pose is used, so the rig's
staggered capture times are accounted for), the ego pose, and the ground-truth
boxes with instance ids.

The reference time is the anchor camera's (CAM_FRONT) key-frame capture time,
exactly as the ROS node, which sees only cameras, defines a frame. Annotations
belong to the sample (LIDAR_TOP) time a few tens of milliseconds away; boxes are
moved to the reference time with their velocity, and tracking results are moved
back to the sample time for the official evaluation.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

import cv2
import numpy as np
from numpy.typing import NDArray

from syncl_ros import boxes as box_ops
from syncl_ros.classes import label_of_category
from syncl_ros.data.tables import require_tables
from syncl_ros.geometry import Transform
from syncl_ros.rig import CAMERA_CHANNELS

ModelFrame = Literal["base_link", "LIDAR_TOP"]
ANCHOR_CHANNEL = "CAM_FRONT"  # defines the frame time, as in the node
LIDAR_CHANNEL = "LIDAR_TOP"  # the sample (annotation) time
_REDUCED_READ = {
    1: cv2.IMREAD_COLOR,
    2: cv2.IMREAD_REDUCED_COLOR_2,
    4: cv2.IMREAD_REDUCED_COLOR_4,
    8: cv2.IMREAD_REDUCED_COLOR_8,
}


@dataclass(frozen=True, eq=False)
class CameraView:
    channel: str
    path: Path
    timestamp_ns: int
    width: int
    height: int
    intrinsics: NDArray[np.float64]  # 3x3, for the stored full-size image
    cam_to_model: Transform  # optical frame at capture time -> model frame at the reference time


@dataclass(frozen=True, eq=False)
class LidarView:
    """The key frame's LIDAR_TOP sweep: where it is and where the sensor was when it was taken."""

    path: Path  # nuScenes `.pcd.bin` (x, y, z, intensity, ring as float32)
    timestamp_ns: int
    lidar_to_world: Transform  # sensor frame -> world, at the sweep's own time


@dataclass(frozen=True, eq=False)
class Frame:
    token: str
    scene: str
    index: int  # position of the key frame within its scene
    timestamp_ns: int  # the anchor camera's capture time: the model frame's time
    sample_timestamp_ns: int  # the annotations' (LIDAR_TOP) time
    model_to_world: Transform
    cameras: tuple[CameraView, ...]  # in CAMERA_CHANNELS order
    boxes: NDArray[np.float64]  # (N, 9) ground truth in the model frame
    labels: NDArray[np.int64]  # (N,) detection class labels
    instances: tuple[str, ...]  # instance token per box (stable track identity)
    num_points: NDArray[np.int64]  # (N,) lidar + radar points inside each box
    lidar: LidarView | None = None  # the sample's LIDAR_TOP sweep (dense depth supervision)

    def images(self, reduce: int = 1) -> list[NDArray[np.uint8]]:
        """RGB images, decoded at 1/reduce scale (1, 2, 4 or 8: the JPEG codec does it cheaply)."""
        return [read_rgb(cam.path, reduce) for cam in self.cameras]


def read_rgb(path: Path, reduce: int = 1) -> NDArray[np.uint8]:
    if reduce not in _REDUCED_READ:
        raise ValueError(f"reduce must be one of {sorted(_REDUCED_READ)}, got {reduce}")
    bgr = cv2.imread(str(path), _REDUCED_READ[reduce])
    if bgr is None:
        raise OSError(f"cannot read image {path}")
    return np.ascontiguousarray(bgr[:, :, ::-1])


def split_scenes(version: str, split: str) -> list[str]:
    """Official scene names of a split (the devkit assigns splits by scene name)."""
    from nuscenes.utils.splits import create_splits_scenes

    splits = create_splits_scenes()
    if split not in splits:
        raise ValueError(f"unknown split {split!r}; known: {', '.join(sorted(splits))}")
    if version.endswith("mini") != split.startswith("mini"):
        raise ValueError(f"split {split!r} does not belong to version {version!r}")
    return list(splits[split])


class NuScenesFrames:
    """Key frames of the selected scenes, in scene then time order; built lazily."""

    def __init__(
        self,
        dataroot: str | Path,
        version: str,
        split: str | None = None,
        scenes: Sequence[str] | None = None,
        model_frame: ModelFrame = "base_link",
        nusc: Any = None,
    ) -> None:
        if nusc is None:
            from nuscenes.nuscenes import NuScenes

            require_tables(dataroot, version)
            nusc = NuScenes(version=version, dataroot=str(dataroot), verbose=False)
        self.nusc = nusc
        self.model_frame = model_frame
        present = {s["name"]: s for s in nusc.scene}
        wanted = list(scenes) if scenes is not None else list(present)
        if split is not None:
            in_split = set(split_scenes(version, split))
            wanted = [name for name in wanted if name in in_split]
        missing = [name for name in wanted if name not in present]
        if missing:
            raise ValueError(f"scenes not in the dataset: {', '.join(missing)}")
        if not wanted:
            raise ValueError(f"no scenes of split {split!r} in {dataroot} ({version})")
        self.scene_names = sorted(wanted, key=lambda name: list(present).index(name))
        self._index = [
            (name, i, token)
            for name in self.scene_names
            for i, token in enumerate(self._sample_tokens(present[name]))
        ]

    def _sample_tokens(self, scene: dict[str, Any]) -> list[str]:
        tokens, token = [], scene["first_sample_token"]
        while token:
            tokens.append(token)
            token = self.nusc.get("sample", token)["next"]
        return tokens

    def __len__(self) -> int:
        return len(self._index)

    def __getitem__(self, i: int) -> Frame:
        scene, index, token = self._index[i]
        return self._build(scene, index, token)

    @cached_property
    def scene_slices(self) -> dict[str, range]:
        """Indices of each scene's key frames."""
        out: dict[str, range] = {}
        for i, (scene, _, _) in enumerate(self._index):
            start = out[scene].start if scene in out else i
            out[scene] = range(start, i + 1)
        return out

    def clips(self, length: int, stride: int = 1) -> list[list[int]]:
        """Indices of every run of `length` consecutive key frames inside one scene."""
        if length < 1 or stride < 1:
            raise ValueError("length and stride must be positive")
        return [
            list(r[s : s + length])
            for r in self.scene_slices.values()
            for s in range(0, len(r) - length + 1, stride)
        ]

    def sample_tokens(self) -> list[str]:
        return [token for _, _, token in self._index]

    # -- building one frame -------------------------------------------------

    def _pose(self, sample_data: dict[str, Any]) -> tuple[Transform, Transform]:
        """(sensor -> ego, ego -> world) of one sample_data record."""
        calib = self.nusc.get("calibrated_sensor", sample_data["calibrated_sensor_token"])
        ego = self.nusc.get("ego_pose", sample_data["ego_pose_token"])
        return (
            Transform.from_tq(calib["translation"], calib["rotation"]),
            Transform.from_tq(ego["translation"], ego["rotation"]),
        )

    def _model_to_world(self, anchor: dict[str, Any], lidar: dict[str, Any]) -> Transform:
        """Ego (or lidar, for checkpoints trained in LIDAR_TOP) at the anchor camera's time -> world."""
        _, ego_to_world = self._pose(anchor)
        if self.model_frame != LIDAR_CHANNEL:
            return ego_to_world
        lidar_to_ego, _ = self._pose(lidar)
        return ego_to_world @ lidar_to_ego

    def _lidar(self, record: dict[str, Any]) -> LidarView:
        lidar_to_ego, ego_to_world = self._pose(record)
        return LidarView(
            path=Path(self.nusc.dataroot) / record["filename"],
            timestamp_ns=int(record["timestamp"]) * 1000,
            lidar_to_world=ego_to_world @ lidar_to_ego,
        )

    def _camera(self, token: str, world_to_model: Transform) -> CameraView:
        record = self.nusc.get("sample_data", token)
        cam_to_ego, ego_to_world = self._pose(record)
        calib = self.nusc.get("calibrated_sensor", record["calibrated_sensor_token"])
        return CameraView(
            channel=record["channel"],
            path=Path(self.nusc.dataroot) / record["filename"],
            timestamp_ns=int(record["timestamp"]) * 1000,
            width=int(record["width"]),
            height=int(record["height"]),
            intrinsics=np.asarray(calib["camera_intrinsic"], dtype=np.float64),
            cam_to_model=world_to_model @ ego_to_world @ cam_to_ego,
        )

    def _ground_truth(
        self, sample: dict[str, Any], world_to_model: Transform, dt_s: float
    ) -> tuple[Any, ...]:
        """Boxes of the sample, moved by their velocity over dt_s (sample -> reference time)."""
        rows, labels, instances, points = [], [], [], []
        for ann_token in sample["anns"]:
            ann = self.nusc.get("sample_annotation", ann_token)
            label = label_of_category(ann["category_name"])
            if label is None:
                continue
            velocity = np.nan_to_num(self.nusc.box_velocity(ann_token)[:2])
            rows.append(box_ops.from_nuscenes(ann["translation"], ann["size"], ann["rotation"], velocity))
            labels.append(label)
            instances.append(ann["instance_token"])
            points.append(ann["num_lidar_pts"] + ann["num_radar_pts"])
        world = np.array(rows, dtype=np.float64).reshape(-1, box_ops.BOX_DIM)
        world[:, :2] += world[:, box_ops.VX : box_ops.VY + 1] * dt_s
        return (
            box_ops.transform_boxes(world, world_to_model),
            np.array(labels, dtype=np.int64),
            tuple(instances),
            np.array(points, dtype=np.int64),
        )

    def _build(self, scene: str, index: int, token: str) -> Frame:
        sample = self.nusc.get("sample", token)
        anchor = self.nusc.get("sample_data", sample["data"][ANCHOR_CHANNEL])
        lidar = self.nusc.get("sample_data", sample["data"][LIDAR_CHANNEL])
        model_to_world = self._model_to_world(anchor, lidar)
        world_to_model = model_to_world.inverse()
        cameras = tuple(self._camera(sample["data"][ch], world_to_model) for ch in CAMERA_CHANNELS)
        t_ref, t_sample = int(anchor["timestamp"]) * 1000, int(sample["timestamp"]) * 1000
        boxes, labels, instances, points = self._ground_truth(
            sample, world_to_model, (t_ref - t_sample) * 1e-9
        )
        return Frame(
            token=token,
            scene=scene,
            index=index,
            timestamp_ns=t_ref,
            sample_timestamp_ns=t_sample,
            model_to_world=model_to_world,
            cameras=cameras,
            boxes=boxes,
            labels=labels,
            instances=instances,
            num_points=points,
            lidar=self._lidar(lidar),
        )
