"""The synthetic world: determinism, kinematics, density, class mix, no collisions."""

import numpy as np
import pytest

from syncl_ros.boxes import corners
from syncl_ros.data.synth.actors import CLASSES, MEAN_LWH
from syncl_ros.data.synth.kinematics import Path, ProfileBuilder
from syncl_ros.data.synth.world import EGO_FRONT, EGO_REAR, EGO_WIDTH, Scene, _overlap, simulate

SEEDS = (1, 2, 3, 4, 5, 6)


@pytest.fixture(scope="module")
def scenes() -> list[Scene]:
    return [simulate(seed, duration_s=20.0, start_ns=10**15) for seed in SEEDS]


def test_same_seed_same_world() -> None:
    a, b = simulate(11, 20.0), simulate(11, 20.0)
    for t in (0, 3_141_592_000, 19_000_000_000):
        assert np.array_equal(a.objects_at(t)[2], b.objects_at(t)[2])
        assert a.ego_pose(t).allclose(b.ego_pose(t), atol=0.0)
    other = simulate(12, 20.0)
    assert other.num_objects != a.num_objects or not np.allclose(other.objects_at(0)[2], a.objects_at(0)[2])


def test_velocity_is_time_derivative_of_position(scenes: list[Scene]) -> None:
    for scene in scenes[:3]:
        for t in np.arange(0.5, 20.0, 1.7):
            t_ns = scene.start_ns + int(t * 1e9)
            _, _, box = scene.objects_at(t_ns)
            _, _, before = scene.objects_at(t_ns - 1_000_000)
            _, _, after = scene.objects_at(t_ns + 1_000_000)
            numeric = (after[:, :2] - before[:, :2]) / 2e-3
            np.testing.assert_allclose(box[:, 7:9], numeric, atol=1e-3)


def test_ego_pose_is_smooth_and_planar(scenes: list[Scene]) -> None:
    for scene in scenes:
        times = scene.start_ns + np.arange(0, 20_000_000_001, 50_000_000)
        poses = [scene.ego_pose(int(t)) for t in times]
        xy = np.array([p.translation for p in poses])
        yaw = np.unwrap([p.yaw for p in poses])
        assert np.all(xy[:, 2] == 0.0)
        step = np.linalg.norm(np.diff(xy[:, :2], axis=0), axis=1)
        assert step.max() < 14.0 * 0.05  # below ~50 km/h
        assert np.abs(np.diff(yaw)).max() < 0.05  # no heading jumps at 20 Hz


def test_boxes_stand_on_the_ground_with_plausible_sizes(scenes: list[Scene]) -> None:
    for scene in scenes:
        _, classes, boxes = scene.objects_at(scene.start_ns + 5 * 10**9)
        np.testing.assert_allclose(boxes[:, 2], boxes[:, 5] / 2.0)
        rel = boxes[:, 3:6] / MEAN_LWH[classes]
        assert np.all((rel > 0.75) & (rel < 1.25))


def test_density_and_class_mix(scenes: list[Scene]) -> None:
    seen = np.zeros(len(CLASSES), dtype=int)
    for scene in scenes:
        counts = []
        for t in np.arange(0.0, 20.0, 2.0):
            t_ns = scene.start_ns + int(t * 1e9)
            _, classes, boxes = scene.objects_at(t_ns)
            ego = scene.ego_pose(t_ns).translation
            near = np.hypot(boxes[:, 0] - ego[0], boxes[:, 1] - ego[1]) < 50.0
            counts.append(near.sum())
            seen += np.bincount(classes[near], minlength=len(CLASSES))
        assert 12 <= np.mean(counts) <= 45, counts
    assert np.all(seen > 0), dict(zip(CLASSES, seen, strict=True))
    # Cars and pedestrians dominate, as in nuScenes.
    assert seen[CLASSES.index("car")] == seen.max()
    assert seen[CLASSES.index("pedestrian")] > seen[CLASSES.index("bus")]


def test_objects_move_stop_and_park(scenes: list[Scene]) -> None:
    speeds = []
    for scene in scenes:
        for t in np.arange(0.0, 20.0, 1.0):
            _, _, boxes = scene.objects_at(scene.start_ns + int(t * 1e9))
            speeds.append(np.hypot(boxes[:, 7], boxes[:, 8]))
    speeds_all = np.concatenate(speeds)
    assert (speeds_all < 0.05).mean() > 0.1  # parked, standing, waiting
    assert (speeds_all > 5.0).mean() > 0.1  # traffic
    attrs = {a for s in scenes for a in s.attributes_at(s.start_ns + 8 * 10**9)}
    assert {"vehicle.moving", "vehicle.parked", "pedestrian.moving", "cycle.with_rider"} <= attrs


def test_no_two_objects_overlap(scenes: list[Scene]) -> None:
    for scene in scenes:
        for t in np.arange(0.0, 20.0, 0.5):
            t_ns = scene.start_ns + int(t * 1e9)
            _, _, boxes = scene.objects_at(t_ns)
            fp = np.stack([boxes[:, 0], boxes[:, 1], boxes[:, 6], boxes[:, 3] / 2, boxes[:, 4] / 2], axis=1)
            i, j = np.triu_indices(len(boxes), k=1)
            assert not _overlap(fp[i], fp[j], np.zeros(len(i))).any()
            pose = scene.ego_pose(t_ns)
            shift = (EGO_FRONT - EGO_REAR) / 2.0
            ego = np.array(
                [
                    pose.translation[0] + shift * np.cos(pose.yaw),
                    pose.translation[1] + shift * np.sin(pose.yaw),
                    pose.yaw,
                    (EGO_FRONT + EGO_REAR) / 2.0,
                    EGO_WIDTH / 2.0,
                ]
            )
            assert not _overlap(fp, np.broadcast_to(ego, fp.shape), np.zeros(len(fp))).any()


def test_objects_enter_and_leave_the_surroundings(scenes: list[Scene]) -> None:
    for scene in scenes[:3]:
        inside = []
        for t in np.arange(0.0, 20.0, 1.0):
            t_ns = scene.start_ns + int(t * 1e9)
            _, _, boxes = scene.objects_at(t_ns)
            ego = scene.ego_pose(t_ns).translation
            inside.append(np.hypot(boxes[:, 0] - ego[0], boxes[:, 1] - ego[1]) < 40.0)
        inside_arr = np.array(inside)
        changed = inside_arr.any(axis=0) & ~inside_arr.all(axis=0)
        assert changed.sum() >= 5


def test_path_offsets_reversal_and_profiles() -> None:
    path = Path.build(0.0, 0.0, 0.0, [(10.0, 0.0), (np.pi / 2 * 20.0, 1 / 20.0), (10.0, 0.0)])
    x, y, h = path.eval(np.array([10.0 + np.pi / 2 * 20.0 + 10.0]))
    np.testing.assert_allclose([x[0], y[0], h[0]], [30.0, 30.0, np.pi / 2], atol=1e-9)
    inner = path.offset(5.0)  # left of a left turn: radius 15
    assert inner.total_length == pytest.approx(20.0 + np.pi / 2 * 15.0)
    rev = path.reversed()
    xr, yr, hr = rev.eval(np.array([0.0]))
    np.testing.assert_allclose([xr[0], yr[0]], [30.0, 30.0], atol=1e-9)
    assert np.cos(hr[0] - (np.pi / 2 + np.pi)) == pytest.approx(1.0)
    prof = ProfileBuilder(10.0).cruise(2.0).stop_at(50.0, 2.0).hold_until(12.0).ramp(10.0, 2.0).build()
    s, v = prof.at(np.array([1.0, 2.0, 11.0, 12.0, 20.0]))
    np.testing.assert_allclose(s[:2], [10.0, 20.0])
    assert s[2] == pytest.approx(50.0) and v[2] == 0.0
    assert v[-1] == pytest.approx(10.0)


def test_corners_follow_the_heading() -> None:
    # Sanity check of the box convention the world relies on.
    box = np.array([[0.0, 0.0, 1.0, 4.0, 2.0, 2.0, np.pi / 2, 0.0, 0.0]])
    c = corners(box)[0]
    assert np.ptp(c[:, 1]) == pytest.approx(4.0) and np.ptp(c[:, 0]) == pytest.approx(2.0)
