import math

import numpy as np
import pytest
from numpy.typing import NDArray
from nuscenes.utils.data_classes import Box
from pyquaternion import Quaternion

from syncl_ros.boxes import (
    BOX_DIM,
    YAW,
    L,
    W,
    Z,
    bev_corners,
    bottom_from_center,
    center_distance,
    center_from_bottom,
    corners,
    from_devkit_box,
    from_nuscenes,
    lwh_from_wlh,
    to_devkit_box,
    to_nuscenes,
    transform_boxes,
    wlh_from_lwh,
)
from syncl_ros.geometry import Transform

# Corner sign patterns (x forward, y left, z up): the devkit's order and ours.
DEVKIT_SIGNS = [
    (1, 1, 1), (1, -1, 1), (1, -1, -1), (1, 1, -1),
    (-1, 1, 1), (-1, -1, 1), (-1, -1, -1), (-1, 1, -1),
]  # fmt: skip
OUR_SIGNS = [
    (1, 1, -1), (-1, 1, -1), (-1, -1, -1), (1, -1, -1),
    (1, 1, 1), (-1, 1, 1), (-1, -1, 1), (1, -1, 1),
]  # fmt: skip
DEVKIT_TO_OURS = [DEVKIT_SIGNS.index(s) for s in OUR_SIGNS]


def random_boxes(n: int, seed: int = 0) -> NDArray[np.float64]:
    rng = np.random.default_rng(seed)
    b = np.zeros((n, BOX_DIM))
    b[:, :3] = rng.uniform(-50, 50, (n, 3))
    b[:, 3:6] = rng.uniform(0.5, 6.0, (n, 3))
    b[:, 6] = rng.uniform(-math.pi, math.pi, n)
    b[:, 7:9] = rng.normal(size=(n, 2)) * 5.0
    return b


def test_size_order_conversion() -> None:
    np.testing.assert_array_equal(lwh_from_wlh([2.0, 4.5, 1.6]), [4.5, 2.0, 1.6])
    sizes = np.random.default_rng(0).uniform(1, 5, (4, 3))
    np.testing.assert_array_equal(wlh_from_lwh(lwh_from_wlh(sizes)), sizes)


def test_bottom_center_shift() -> None:
    b = np.array([1.0, 2.0, 1.0, 4.0, 2.0, 1.6, 0.0, 0.0, 0.0])
    assert bottom_from_center(b)[Z] == pytest.approx(0.2)
    np.testing.assert_allclose(center_from_bottom(bottom_from_center(random_boxes(5))), random_boxes(5))
    assert b[Z] == 1.0  # input untouched


def test_nuscenes_fields_round_trip_and_order() -> None:
    q = Quaternion(axis=[0, 0, 1], degrees=90)
    b = from_nuscenes([10.0, 20.0, 1.0], [2.0, 4.5, 1.6], q.elements, [1.0, -1.0])
    np.testing.assert_allclose(b, [10.0, 20.0, 1.0, 4.5, 2.0, 1.6, math.pi / 2, 1.0, -1.0])
    fields = to_nuscenes(b)
    assert fields["size"] == pytest.approx([2.0, 4.5, 1.6])
    assert fields["velocity"] == pytest.approx([1.0, -1.0])
    assert Quaternion.absolute_distance(Quaternion(fields["rotation"]), q) < 1e-9
    for box in random_boxes(10):
        f = to_nuscenes(box)
        again = from_nuscenes(f["translation"], f["size"], f["rotation"], f["velocity"])
        np.testing.assert_allclose(again, box)


def test_devkit_round_trip_and_nan_velocity() -> None:
    for box in random_boxes(10, seed=1):
        dk = to_devkit_box(box, label=3, score=0.5, name="car")
        assert dk.label == 3 and dk.name == "car"
        np.testing.assert_allclose(from_devkit_box(dk), box)
    dk = Box([1.0, 2.0, 3.0], [2.0, 4.0, 1.5], Quaternion(axis=[0, 0, 1], angle=0.3))
    np.testing.assert_allclose(from_devkit_box(dk), [1, 2, 3, 4, 2, 1.5, 0.3, 0, 0])


def test_corners_agree_with_devkit() -> None:
    boxes = random_boxes(6, seed=2)
    ours = corners(boxes)
    for box, c in zip(boxes, ours, strict=True):
        devkit = to_devkit_box(box).corners().T[DEVKIT_TO_OURS]
        np.testing.assert_allclose(c, devkit, atol=1e-9)


def test_corner_order_documented() -> None:
    box = np.array([[0.0, 0.0, 1.0, 4.0, 2.0, 2.0, 0.0, 0.0, 0.0]])
    c = corners(box)[0]
    assert (c[:4, 2] == 0.0).all() and (c[4:, 2] == 2.0).all()  # bottom face first
    np.testing.assert_allclose(c[4:, :2], c[:4, :2])  # top directly above bottom
    np.testing.assert_allclose(c[0], [2.0, 1.0, 0.0])  # front-left
    bev = bev_corners(random_boxes(5))
    x, y = bev[..., 0], bev[..., 1]
    area = 0.5 * (x * np.roll(y, -1, axis=1) - np.roll(x, -1, axis=1) * y).sum(axis=1)
    np.testing.assert_allclose(area, random_boxes(5)[:, L] * random_boxes(5)[:, W])  # positive: ccw


def test_transform_boxes_matches_transformed_corners() -> None:
    boxes = random_boxes(8, seed=3)
    T = Transform.from_xy_yaw(3.0, -7.0, 2.5, z=0.4)
    moved = transform_boxes(boxes, T)
    np.testing.assert_allclose(corners(moved), T.apply(corners(boxes)), atol=1e-9)
    speed = np.linalg.norm(boxes[:, 7:9], axis=1)
    np.testing.assert_allclose(np.linalg.norm(moved[:, 7:9], axis=1), speed)
    rotated = np.arctan2(moved[:, 8], moved[:, 7]) - np.arctan2(boxes[:, 8], boxes[:, 7])
    np.testing.assert_allclose(np.cos(rotated), math.cos(2.5))
    back = transform_boxes(moved, T.inverse())
    np.testing.assert_allclose(np.cos(back[:, YAW] - boxes[:, YAW]), 1.0)
    np.testing.assert_allclose(back[:, :6], boxes[:, :6], atol=1e-9)


def test_center_distance() -> None:
    a = np.zeros((2, BOX_DIM))
    a[1, :3] = [3.0, 4.0, 100.0]
    b = np.zeros((3, BOX_DIM))
    b[:, 0] = [0.0, 3.0, -1.0]
    d = center_distance(a, b)
    assert d.shape == (2, 3)
    np.testing.assert_allclose(d, [[0.0, 3.0, 1.0], [5.0, 4.0, math.hypot(4.0, 4.0)]])  # z ignored
