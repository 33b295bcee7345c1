import math

import numpy as np
import pytest
from pyquaternion import Quaternion

from syncl_ros.geometry import (
    Transform,
    ego_to_image,
    image_transform,
    interpolate,
    optical_to_body,
    project,
    quaternion_yaw,
    relative_motion,
    scaled_intrinsics,
    transform_points,
    transform_velocities,
    yaw_quaternion,
)

K = np.array([[1000.0, 0.0, 800.0], [0.0, 1000.0, 450.0], [0.0, 0.0, 1.0]])


def random_transform(rng: np.random.Generator) -> Transform:
    q = Quaternion(rng.normal(size=4))
    return Transform(q, rng.normal(size=3) * 5.0)


def test_from_tq_known_rotation() -> None:
    # 90 deg about z, then shift by (1, 2, 3): x axis -> y axis.
    q = Quaternion(axis=[0, 0, 1], degrees=90)
    T = Transform.from_tq([1.0, 2.0, 3.0], q.elements)
    np.testing.assert_allclose(T.apply(np.array([1.0, 0.0, 0.0])), [1.0, 3.0, 3.0], atol=1e-12)
    assert T.yaw == pytest.approx(math.pi / 2)


def test_matrix_round_trip_and_inverse() -> None:
    rng = np.random.default_rng(0)
    for _ in range(20):
        T = random_transform(rng)
        assert Transform.from_matrix(T.matrix()).allclose(T)
        np.testing.assert_allclose((T @ T.inverse()).matrix(), np.eye(4), atol=1e-12)
        np.testing.assert_allclose(T.inverse().matrix(), np.linalg.inv(T.matrix()), atol=1e-12)


def test_from_matrix_handles_half_turn_and_noise() -> None:
    m = Transform.from_xy_yaw(1.0, 2.0, math.pi).matrix()
    m[:3, :3] += 1e-9
    T = Transform.from_matrix(m)
    assert abs(T.yaw) == pytest.approx(math.pi)
    np.testing.assert_allclose(T.translation, [1.0, 2.0, 0.0])


def test_composition_matches_sequential_application() -> None:
    rng = np.random.default_rng(1)
    a, b = random_transform(rng), random_transform(rng)
    pts = rng.normal(size=(7, 3))
    np.testing.assert_allclose((a @ b).apply(pts), a.apply(b.apply(pts)), atol=1e-10)
    np.testing.assert_allclose((a @ b).matrix(), a.matrix() @ b.matrix(), atol=1e-10)


def test_apply_shapes_and_rotate_ignores_translation() -> None:
    T = Transform.from_xy_yaw(5.0, 0.0, math.pi / 2, z=1.0)
    single = T.apply(np.array([1.0, 0.0, 0.0]))
    assert single.shape == (3,)
    np.testing.assert_allclose(single, [5.0, 1.0, 1.0], atol=1e-12)
    assert T.apply(np.zeros((4, 3))).shape == (4, 3)
    np.testing.assert_allclose(T.rotate(np.array([1.0, 0.0, 0.0])), [0.0, 1.0, 0.0], atol=1e-12)
    np.testing.assert_allclose(transform_points(T, np.zeros((1, 3))), [[5.0, 0.0, 1.0]])


def test_transform_is_immutable() -> None:
    T = Transform.identity()
    with pytest.raises(ValueError):
        T.translation[0] = 1.0


def test_yaw_quaternion_round_trip() -> None:
    for yaw in np.linspace(-math.pi + 1e-6, math.pi, 37):
        assert quaternion_yaw(yaw_quaternion(yaw)) == pytest.approx(yaw, abs=1e-9)


def test_interpolate_midpoint() -> None:
    a = Transform.from_xy_yaw(0.0, 0.0, 0.0)
    b = Transform.from_xy_yaw(2.0, 4.0, math.pi / 2)
    mid = interpolate(100, a, 300, b, 200)
    np.testing.assert_allclose(mid.translation, [1.0, 2.0, 0.0])
    assert mid.yaw == pytest.approx(math.pi / 4)


def test_interpolate_takes_short_way_across_pi() -> None:
    a = Transform.from_xy_yaw(0.0, 0.0, math.radians(170))
    b = Transform.from_xy_yaw(0.0, 0.0, math.radians(-170))
    assert abs(interpolate(0, a, 10, b, 5).yaw) == pytest.approx(math.pi)


def test_interpolate_bounds_and_extrapolation() -> None:
    a = Transform.from_xy_yaw(0.0, 0.0, 0.0)
    b = Transform.from_xy_yaw(1.0, 0.0, 0.1)
    with pytest.raises(ValueError, match="1200"):
        interpolate(0, a, 1000, b, 1200)
    extra = interpolate(0, a, 1000, b, 1200, max_extrapolation_ns=500)
    np.testing.assert_allclose(extra.translation, [1.2, 0.0, 0.0])
    assert extra.yaw == pytest.approx(0.12)
    with pytest.raises(ValueError):
        interpolate(1000, a, 0, b, 500)
    assert interpolate(5, a, 5, b, 5).allclose(a)
    with pytest.raises(ValueError):
        interpolate(5, a, 5, b, 6, max_extrapolation_ns=10)


def test_relative_motion_forward_brings_static_point_closer() -> None:
    prev = Transform.from_xy_yaw(10.0, 5.0, 0.3)
    cur = prev @ Transform.from_xy_yaw(1.0, 0.0, 0.0)  # drove 1 m forward
    point_prev = np.array([10.0, 0.0, 0.0])  # 10 m ahead in the previous ego frame
    np.testing.assert_allclose(relative_motion(prev, cur).apply(point_prev), [9.0, 0.0, 0.0], atol=1e-12)


def test_relative_motion_turn_left_moves_point_right() -> None:
    prev = Transform.identity()
    cur = Transform.from_xy_yaw(0.0, 0.0, math.pi / 2)
    np.testing.assert_allclose(
        relative_motion(prev, cur).apply(np.array([5.0, 0.0, 0.0])), [0.0, -5.0, 0.0], atol=1e-12
    )


def test_transform_velocities_rotates_and_keeps_width() -> None:
    T = Transform.from_xy_yaw(100.0, -3.0, math.pi / 2)
    v2 = transform_velocities(T, np.array([[1.0, 0.0], [0.0, 2.0]]))
    assert v2.shape == (2, 2)
    np.testing.assert_allclose(v2, [[0.0, 1.0], [-2.0, 0.0]], atol=1e-12)
    v3 = transform_velocities(T, np.array([[1.0, 0.0, 0.5]]))
    np.testing.assert_allclose(v3, [[0.0, 1.0, 0.5]], atol=1e-12)


def test_optical_to_body_matches_nuscenes_front_camera() -> None:
    # nuScenes CAM_FRONT calibrated rotation (w, x, y, z), a near-level forward camera.
    nusc = Quaternion([0.4998015, -0.5030316, 0.4997798, -0.4973708])
    q = optical_to_body(0.0)
    assert Quaternion.absolute_distance(q, nusc.normalised) < 0.01
    np.testing.assert_allclose(abs(q.elements), [0.5, 0.5, 0.5, 0.5], atol=1e-12)


def test_optical_axes_follow_yaw_and_pitch() -> None:
    r = optical_to_body(math.radians(90)).rotation_matrix
    np.testing.assert_allclose(r[:, 2], [0.0, 1.0, 0.0], atol=1e-12)  # looks left
    np.testing.assert_allclose(r[:, 1], [0.0, 0.0, -1.0], atol=1e-12)  # image down = world down
    np.testing.assert_allclose(r[:, 0], [1.0, 0.0, 0.0], atol=1e-12)  # image right = forward
    pitched = optical_to_body(0.0, pitch=math.radians(10)).rotation_matrix
    assert pitched[2, 2] == pytest.approx(-math.sin(math.radians(10)))


def test_project_point_on_axis_hits_principal_point() -> None:
    cam = Transform(optical_to_body(0.0), np.array([1.5, 0.0, 1.5]))
    pts = np.array([[11.5, 0.0, 1.5], [11.5, -1.0, 0.5], [0.0, 0.0, 1.5]])
    uv, depth = project(ego_to_image(K, cam), pts)
    np.testing.assert_allclose(uv[0], [800.0, 450.0])
    np.testing.assert_allclose(depth[:2], [10.0, 10.0])
    np.testing.assert_allclose(uv[1], [900.0, 550.0])  # right and below
    assert np.isnan(uv[2]).all() and depth[2] < 0


def test_image_augmentation_equals_transforming_pixels() -> None:
    rng = np.random.default_rng(2)
    cam = Transform(optical_to_body(0.4, 0.05), np.array([1.0, 0.3, 1.6]))
    pts = np.column_stack([rng.uniform(5, 30, 10), rng.uniform(-5, 15, 10), rng.uniform(-1, 3, 10)])
    aug = image_transform(0.5, 0.4, crop_x=20.0, crop_y=30.0)
    uv, depth = project(ego_to_image(K, cam), pts)
    uv_aug, depth_aug = project(ego_to_image(K, cam, aug), pts)
    expected = np.column_stack([uv, np.ones(len(uv))]) @ aug.T
    np.testing.assert_allclose(uv_aug, expected[:, :2], atol=1e-9)
    np.testing.assert_allclose(depth_aug, depth)
    uv_scaled, _ = project(ego_to_image(scaled_intrinsics(K, 0.5, 0.4, 20.0, 30.0), cam), pts)
    np.testing.assert_allclose(uv_scaled, uv_aug, atol=1e-9)
