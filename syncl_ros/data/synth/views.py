"""Render a scene through the rig's cameras, at full or model resolution."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

from syncl_ros.data.synth.ground import GroundTexture, ground_texture
from syncl_ros.data.synth.render import Frame, prepare, rasterize
from syncl_ros.data.synth.timeline import to_us_grid
from syncl_ros.data.synth.world import Scene
from syncl_ros.geometry import Transform, scaled_intrinsics
from syncl_ros.rig import CameraSpec, RigSpec


def camera_intrinsics(
    cam: CameraSpec, width: int | None = None, height: int | None = None
) -> NDArray[np.float64]:
    """K of ``cam`` for an image resized to (width, height) (no crop); the native K by default."""
    K = cam.intrinsics()
    if width is None and height is None:
        return K
    sx = (width or cam.width) / cam.width
    sy = (height or cam.height) / cam.height
    return scaled_intrinsics(K, sx, sy)


def world_to_camera(scene: Scene, cam: CameraSpec, t_ns: int) -> NDArray[np.float64]:
    """4x4 world -> optical frame of ``cam`` with the ego where it is at ``t_ns``."""
    cam_to_world: Transform = scene.ego_pose(t_ns) @ cam.to_base()
    return np.asarray(cam_to_world.inverse().matrix())


def render_camera(
    scene: Scene,
    cam: CameraSpec,
    t_ns: int,
    width: int | None = None,
    height: int | None = None,
    K: ArrayLike | None = None,
    ground: GroundTexture | None = None,
) -> Frame:
    """One camera image of the scene at ``t_ns`` (the ego pose and objects of that instant).

    The size defaults to the camera's; a smaller (width, height) scales K,
    and an explicit ``K`` (e.g. from geometry.scaled_intrinsics with a crop)
    takes precedence.
    """
    w = width or cam.width
    h = height or cam.height
    intr = camera_intrinsics(cam, w, h) if K is None else np.asarray(K, dtype=np.float64)
    ids, classes, boxes = scene.objects_at(t_ns)
    texture = ground if ground is not None else ground_texture(scene)
    return rasterize(
        intr, world_to_camera(scene, cam, t_ns), w, h, boxes, classes, ids, texture, scene.sun, scene.seed
    )


def capture_times(rig: RigSpec, trigger_ns: int) -> list[int]:
    """When each camera exposes after a rig trigger at ``trigger_ns``, rounded to microseconds."""
    # Dataset timestamps are microseconds; render exactly at a representable time.
    return [to_us_grid(trigger_ns + cam.capture_offset_ns) for cam in rig.cameras]


def render_frame(
    scene: Scene,
    rig: RigSpec,
    t_ns: int,
    width: int | None = None,
    height: int | None = None,
    staggered: bool = True,
) -> list[Frame]:
    """All six cameras (rig order) for a trigger at ``t_ns``.

    With ``staggered`` each camera renders at its own capture time
    (trigger + capture_offset_ms), as the dataset images are; otherwise all
    at ``t_ns``.
    """
    times = capture_times(rig, t_ns) if staggered else [t_ns] * len(rig.cameras)
    texture = ground_texture(scene)
    return [
        render_camera(scene, cam, t, width, height, ground=texture)
        for cam, t in zip(rig.cameras, times, strict=True)
    ]


def prepare_rig(scene: Scene, rig: RigSpec, width: int | None = None, height: int | None = None) -> None:
    """Paint the ground and precompute each camera's sky once, e.g. before forking render workers."""
    ground_texture(scene)
    for cam in rig.cameras:
        w, h = width or cam.width, height or cam.height
        prepare(camera_intrinsics(cam, w, h), world_to_camera(scene, cam, scene.start_ns), w, h)
