"""The simulated lidar: occlusion-aware point counts and the nuScenes point layout."""

import numpy as np
from numpy.typing import NDArray

from syncl_ros.data.synth.lidar import BEAM_ELEVATIONS_DEG, MAX_RANGE, scan
from syncl_ros.geometry import Transform

LIDAR_HEIGHT = 1.84


def pose(yaw: float = -np.pi / 2) -> NDArray[np.float64]:
    """The lidar at the origin, 1.84 m up, x axis to the right of a car facing +x (as in nuScenes)."""
    return Transform.from_xy_yaw(0.0, 0.0, yaw, LIDAR_HEIGHT).matrix()


def box(
    x: float, y: float, length: float = 4.5, w: float = 1.9, h: float = 1.7, yaw: float = 0.0
) -> list[float]:
    return [x, y, h / 2, length, w, h, yaw, 0.0, 0.0]


def test_hidden_object_gets_no_points_and_visible_ones_do() -> None:
    boxes = np.array(
        [
            box(8.0, 0.0, length=6.0, w=3.0, h=3.5),  # big truck ahead
            box(18.0, 0.0, length=1.0, w=1.0, h=1.5),  # small box hidden right behind it
            box(12.0, 8.0),  # car to the left, in the open
            box(-10.0, -6.0, length=0.7, w=0.7, h=1.8),  # pedestrian behind-right
        ]
    )
    ids = np.array([10, 11, 12, 13])
    sweep = scan(pose(), boxes, ids, np.array([1, 0, 0, 4]), np.random.default_rng(0))
    counts = sweep.counts(ids)
    assert counts[1] == 0
    assert counts[0] > 200 and counts[2] > 50 and counts[3] > 10
    # Without the truck the small box is seen.
    alone = scan(pose(), boxes[1:], ids[1:], np.array([0, 0, 4]))
    assert alone.counts(ids[1:])[0] > 0


def test_point_layout_and_frame() -> None:
    sweep = scan(pose(), np.array([box(10.0, 0.0)]), np.array([0]), np.array([0]), np.random.default_rng(1))
    pts = sweep.points
    assert pts.dtype == np.float32 and pts.shape[1] == 5
    rings = pts[:, 4]
    assert set(np.unique(rings).astype(int)) <= set(range(len(BEAM_ELEVATIONS_DEG)))
    assert np.linalg.norm(pts[:, :3], axis=1).max() <= MAX_RANGE + 0.1
    ground = sweep.hit_ids == -1
    # Ground returns lie on z = 0, i.e. 1.84 m below the sensor.
    np.testing.assert_allclose(pts[ground, 2], -LIDAR_HEIGHT, atol=0.05)
    # The car ahead of the vehicle (+x in the world) is along the lidar's +y axis.
    car = pts[sweep.hit_ids == 0]
    assert len(car) > 0
    assert np.all(car[:, 1] > 7.0) and np.all(np.abs(car[:, 0]) < 1.5)
    assert (pts[:, 3] > 0).all()
