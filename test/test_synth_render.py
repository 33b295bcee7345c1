"""The rasterizer: per-pixel depth order, near-plane clipping, visibility, resolutions."""

from collections.abc import Sequence

import numpy as np
import pytest
from numpy.typing import NDArray

from syncl_ros.data.synth.lidar import _ray_box
from syncl_ros.data.synth.render import rasterize, render
from syncl_ros.data.synth.views import render_camera, render_frame
from syncl_ros.data.synth.world import Scene, simulate
from syncl_ros.data.synth.writer import visibility_level
from syncl_ros.geometry import Transform, optical_to_body, scaled_intrinsics
from syncl_ros.rig import load_rig

W, H = 320, 180
K = np.array([[250.0, 0.0, 160.0], [0.0, 250.0, 90.0], [0.0, 0.0, 1.0]])
CAM_HEIGHT = 1.5


def camera(yaw: float = 0.0, x: float = 0.0, y: float = 0.0) -> NDArray[np.float64]:
    """world -> optical frame of a camera at (x, y, 1.5) looking along ``yaw``."""
    cam_to_world = Transform(optical_to_body(yaw), np.array([x, y, CAM_HEIGHT]))
    return cam_to_world.inverse().matrix()


def box(
    x: float, y: float, length: float = 4.5, w: float = 1.9, h: float = 1.7, yaw: float = 0.0
) -> list[float]:
    return [x, y, h / 2, length, w, h, yaw, 0.0, 0.0]


def pixel(point_world: Sequence[float], world_to_cam: NDArray[np.float64] | None = None) -> tuple[int, int]:
    m = camera() if world_to_cam is None else world_to_cam
    p = m[:3, :3] @ np.asarray(point_world, dtype=float) + m[:3, 3]
    uv = K @ p / p[2]
    return round(uv[1]), round(uv[0])


def test_near_object_occludes_far_one_and_visibility_drops() -> None:
    boxes = np.array([box(10.0, 0.6), box(20.0, 0.3, length=7.0, w=2.5, h=2.9)])
    ids = np.array([7, 3])
    alone = rasterize(K, camera(), W, H, boxes[1:], np.array([1]), ids[1:])
    both = rasterize(K, camera(), W, H, boxes, np.array([0, 1]), ids)
    # The near car covers the far truck where they overlap on screen.
    assert both.instance[pixel([10.0, 0.6, 0.85])] == 7
    assert alone.instance[pixel([10.0, 0.6, 0.85])] == 3
    # The truck still shows above the car.
    assert both.instance[pixel([16.5, 0.3, 2.7])] == 3
    vis_alone = alone.visible_pixels()[3]
    vis_both = both.visible_pixels()[3]
    assert alone.alone[3] == both.alone[3] == vis_alone
    assert vis_both < 0.6 * vis_alone
    assert visibility_level(vis_alone, alone.alone[3]) == "4"
    assert visibility_level(vis_both, both.alone[3]) in ("1", "2")
    # Drawing order does not matter: occlusion is resolved per pixel.
    swapped = rasterize(K, camera(), W, H, boxes[::-1], np.array([1, 0]), ids[::-1])
    assert np.array_equal(swapped.instance, both.instance)
    assert np.array_equal(swapped.rgb, both.rgb)


def test_matches_a_ray_cast_even_for_interpenetrating_boxes() -> None:
    # Two boxes crossing in an X (no drawing order is right for both) and a third behind.
    boxes = np.array(
        [
            box(14.0, 0.0, length=9.0, w=1.0, h=2.0, yaw=0.5),
            box(14.0, 0.0, length=9.0, w=1.0, h=2.5, yaw=-0.5),
            box(25.0, 1.0, length=3.0, w=8.0, h=4.0),
        ]
    )
    ids = np.array([0, 1, 2])
    frame = rasterize(K, camera(), W, H, boxes, np.array([0, 1, 2]), ids)
    # Reference: nearest box hit of each pixel's ray.
    cam_to_world = np.linalg.inv(camera())
    v, u = np.mgrid[0:H, 0:W]
    rays = (
        np.stack([u.ravel(), v.ravel(), np.ones(u.size)], axis=1)
        @ np.linalg.inv(K).T
        @ cam_to_world[:3, :3].T
    )
    hits = np.stack([_ray_box(cam_to_world[:3, 3], rays, b) for b in boxes])
    expected = np.where(np.isfinite(hits.min(axis=0)), hits.argmin(axis=0), -1).reshape(H, W)
    agree = (expected == frame.instance).mean()
    assert agree > 0.995
    # Both crossing boxes win somewhere in front of each other.
    assert np.sum(frame.instance == 0) > 500 and np.sum(frame.instance == 1) > 500
    # Inverse depth equals the ray cast (depth along the optical axis = t * ray_z in camera).
    sel = expected >= 0
    t_hit = hits.min(axis=0).reshape(H, W)
    depth = t_hit  # rays have unit optical depth
    both = sel & (frame.instance == expected)
    np.testing.assert_allclose(1.0 / frame.inv_depth[both], depth[both], rtol=2e-3)


def test_objects_behind_the_camera_do_not_draw() -> None:
    frame = rasterize(
        K, camera(), W, H, np.array([box(-8.0, 0.0), box(-3.0, 2.0)]), np.array([0, 0]), np.array([0, 1])
    )
    assert (frame.instance == -1).all()
    assert frame.alone == {}


def test_box_crossing_the_camera_plane_is_clipped() -> None:
    # A bus alongside, from 6 m behind to 5 m ahead of the camera, 2 m to the left.
    bus = np.array([box(-0.5, 3.5, length=11.0, w=2.5, h=3.2)])
    frame = rasterize(K, camera(), W, H, bus, np.array([2]), np.array([5]))
    mask = frame.instance == 5
    assert mask.sum() > 0.1 * W * H
    cols = np.flatnonzero(mask.any(axis=0))
    assert cols.max() < W // 2  # only on the left of the image
    assert cols.min() == 0  # reaches the image border (the rest is behind the camera)
    assert frame.alone[5] == mask.sum()


def test_ground_and_sky() -> None:
    none = np.zeros(0, dtype=np.int64)
    rgb, inst = render(K, camera(), W, H, np.zeros((0, 9)), none, none)
    assert (inst == -1).all()
    sky, ground = rgb[5].astype(float).mean(axis=0), rgb[-5].astype(float).mean(axis=0)
    assert sky[2] > sky[0] + 20  # blue sky above
    assert abs(ground[2] - sky[2]) > 30  # something else below the horizon


@pytest.fixture(scope="module")
def scene() -> Scene:
    return simulate(5, duration_s=4.0)


def test_model_resolution_matches_full_resolution(scene: Scene) -> None:
    rig = load_rig("rig_nuscenes")
    cam = rig.camera("CAM_FRONT")
    t = 2 * 10**9
    full = render_camera(scene, cam, t)
    small = render_camera(scene, cam, t, width=400, height=225)
    assert small.rgb.shape == (225, 400, 3) and small.instance.shape == (225, 400)
    # Same objects in the same places: compare against the full-resolution buffer sampled at 1/4.
    sampled = full.instance[2::4, 2::4][:225, :400]
    agree = (sampled == small.instance).mean()
    assert agree > 0.97
    # A crop like the ones multi-view detectors use (resize by 0.22 then crop the top).
    K_crop = scaled_intrinsics(cam.intrinsics(), 0.22, 0.22, 0.0, 70.0)
    crop = render_camera(scene, cam, t, width=352, height=128, K=K_crop)
    ref = render_camera(scene, cam, t, width=352, height=198)
    assert (crop.instance == ref.instance[70:198]).mean() > 0.99


def test_render_frame_renders_all_cameras_at_their_capture_times(scene: Scene) -> None:
    rig = load_rig("rig_nuscenes")
    frames = render_frame(scene, rig, 10**9, width=176, height=99)
    assert len(frames) == 6
    assert all(f.rgb.shape == (99, 176, 3) for f in frames)
    assert sum((f.instance >= 0).sum() for f in frames) > 0
