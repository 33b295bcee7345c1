"""Dense lidar depth targets: projection as the devkit does it, per-cell minimum, objects first,
loader wiring."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from numpy.typing import NDArray
from training_fixtures import TINY_MODEL

from syncl_ros.data.frames import NuScenesFrames
from syncl_ros.geometry import ego_to_image
from syncl_ros.model.backbone import STRIDE
from syncl_ros.model.inputs import Resize
from syncl_ros.pipeline.dataset_inputs import frame_geometry
from syncl_ros.training.data import ClipDataset
from syncl_ros.training.depth_targets import (
    frame_depth_targets,
    lidar_points_in_model_frame,
    min_depth_grid,
    points_in_boxes,
    project_points,
)

pytestmark = pytest.mark.slow  # processes, datasets or training: see `make test-fast`


@pytest.fixture(scope="module")
def frames(synth_val_root: Path) -> NuScenesFrames:
    return NuScenesFrames(synth_val_root, "v1.0-trainval", split="val")


def _devkit_projection(
    frames: NuScenesFrames, index: int, channel: str
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """(uv (n, 2), depth (n,)) from the devkit's own NuScenesExplorer.map_pointcloud_to_image."""
    nusc = frames.nusc
    sample = nusc.get("sample", frames.sample_tokens()[index])
    points, depth, _ = nusc.explorer.map_pointcloud_to_image(
        sample["data"]["LIDAR_TOP"], sample["data"][channel]
    )
    return points[:2].T, depth


def _ours_in_source_pixels(
    frames: NuScenesFrames, index: int, cam: int
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Our projection into the full-size image, filtered as the devkit filters (min_dist 1, 1-px border)."""
    frame = frames[index]
    view = frame.cameras[cam]
    l2i = ego_to_image(view.intrinsics, view.cam_to_model)[None]
    uv, depth = project_points(lidar_points_in_model_frame(frame), l2i)
    uv, depth = uv[0], depth[0]
    keep = (
        (depth > 1.0)
        & (uv[:, 0] > 1)
        & (uv[:, 0] < view.width - 1)
        & (uv[:, 1] > 1)
        & (uv[:, 1] < view.height - 1)
    )
    return uv[keep], depth[keep]


@pytest.mark.parametrize("index", [0, 7])
def test_projection_matches_the_devkit(frames: NuScenesFrames, index: int) -> None:
    frame = frames[index]
    assert frame.lidar is not None and frame.lidar.path.is_file()
    seen = 0
    for cam, view in enumerate(frame.cameras):
        uv, depth = _ours_in_source_pixels(frames, index, cam)
        ref_uv, ref_depth = _devkit_projection(frames, index, view.channel)
        assert len(uv) == len(ref_uv), view.channel
        # The devkit keeps float32 points between its steps: agreement to a hundredth of a pixel.
        np.testing.assert_allclose(uv, ref_uv, atol=1e-2, err_msg=view.channel)
        np.testing.assert_allclose(depth, ref_depth, atol=1e-3, err_msg=view.channel)
        seen += len(uv)
    assert seen > 1000  # the sweep really reaches the cameras


def test_feature_targets_are_the_devkit_points_minimum_per_cell(frames: NuScenesFrames) -> None:
    """The per-cell target equals the nearest devkit point after the network's resize and crop."""
    cfg = TINY_MODEL
    frame = frames[3]
    l2i, _ = frame_geometry(frame, cfg)
    h, w = cfg.input.height // STRIDE, cfg.input.width // STRIDE
    grid = frame_depth_targets(frame, l2i, h, w, STRIDE)
    assert grid.shape == (6, h, w) and grid.dtype == np.float32
    for cam, view in enumerate(frame.cameras):
        ref_uv, ref_depth = _devkit_projection(frames, 3, view.channel)
        m = Resize.for_input(view.width, view.height, cfg.input).matrix()
        uv = ref_uv @ m[:2, :2].T + m[:2, 2]
        expected = min_depth_grid(uv[None], ref_depth[None], h, w, STRIDE)[0]
        # The devkit drops a 1-pixel border of the full image (no cell is only border), and its float32
        # steps can move a point lying on a cell edge across it: a few cells may take a neighbour's
        # point, nothing more.
        same = np.abs(grid[cam] - expected) < 1e-3
        assert same.mean() >= 0.9, (view.channel, grid[cam], expected)
        np.testing.assert_allclose(grid[cam], expected, atol=0.25, err_msg=view.channel)
    assert (grid > 0).mean() > 0.3  # the lidar covers the lower image, so a good share of the cells


def test_min_depth_grid_by_hand() -> None:
    uv = np.array(
        [
            [
                [5.0, 5.0],  # cell (0, 0), 12 m
                [15.9, 2.0],  # cell (0, 0), 7 m: the nearer wins
                [16.0, 2.0],  # cell (0, 1), 30 m
                [40.0, 20.0],  # cell (1, 2), 0.5 m: nearer than the devkit's 1 m, dropped
                [-1.0, 3.0],  # left of the image
                [3.0, 32.0],  # below the grid (2 rows of 16 px)
                [47.9, 31.9],  # cell (1, 2), 20 m
            ]
        ]
    )
    depth = np.array([[12.0, 7.0, 30.0, 0.5, 5.0, 5.0, 20.0]])
    grid = min_depth_grid(uv, depth, h=2, w=3, stride=16)
    expected = np.array([[[7.0, 30.0, 0.0], [0.0, 0.0, 20.0]]], np.float32)
    np.testing.assert_array_equal(grid, expected)
    # behind the camera never counts, whatever its pixel
    assert min_depth_grid(uv, -depth, 2, 3, 16).sum() == 0.0


def test_clip_samples_carry_depth_targets_only_when_asked(frames: NuScenesFrames) -> None:
    plain = ClipDataset(frames, TINY_MODEL, 1)[0][0]
    assert plain.depth is None
    sample = ClipDataset(frames, TINY_MODEL, 1, depth_targets=True)[0][0]
    h, w = TINY_MODEL.input.height // STRIDE, TINY_MODEL.input.width // STRIDE
    assert sample.depth is not None and sample.depth.shape == (6, h, w)
    valid = sample.depth[sample.depth > 0]
    assert valid.numel() > 0 and float(valid.min()) >= 1.0 and float(valid.max()) < 80.0


def test_points_in_boxes_by_hand() -> None:
    # a 4 x 2 x 2 m box at (10, 0, 1) turned 90 degrees: it spans x 9..11, y -2..2, z 0..2
    box = np.array([[10.0, 0.0, 1.0, 4.0, 2.0, 2.0, np.pi / 2, 0.0, 0.0]])
    points = np.array(
        [
            [10.0, 1.9, 1.0],  # inside: along the turned length
            [10.9, -1.5, 0.1],  # inside, near a corner
            [11.5, 0.0, 1.0],  # outside: beyond the turned width
            [10.0, 0.0, 2.5],  # above
            [30.0, 0.0, 1.0],
        ]
    )
    np.testing.assert_array_equal(points_in_boxes(points, box), [True, True, False, False, False])
    assert not points_in_boxes(points, np.empty((0, 9))).any()


def test_objects_first_takes_the_objects_points_over_nearer_ground(frames: NuScenesFrames) -> None:
    """A cell holding an object's points takes their nearest depth; every other cell is unchanged."""
    cfg = TINY_MODEL
    h, w = cfg.input.height // STRIDE, cfg.input.width // STRIDE
    farther = 0
    for index in (0, 3, 7):
        frame = frames[index]
        l2i, _ = frame_geometry(frame, cfg)
        plain = frame_depth_targets(frame, l2i, h, w, STRIDE)
        first = frame_depth_targets(frame, l2i, h, w, STRIDE, objects_first=True)
        points = lidar_points_in_model_frame(frame)
        on_object = points_in_boxes(points, frame.boxes)
        assert on_object.any()
        uv, depth = project_points(points[on_object], l2i)
        objects = min_depth_grid(uv, depth, h, w, STRIDE)
        held = objects > 0
        np.testing.assert_array_equal(first[held], objects[held])
        np.testing.assert_array_equal(first[~held], plain[~held])
        assert (first >= plain).all()  # never nearer than the nearest point of the cell
        farther += int((first - plain > 5.0).sum())
    assert farther > 0  # some objects' cells held road points more than 5 m nearer


def test_clip_samples_take_objects_first_when_asked(frames: NuScenesFrames) -> None:
    plain = ClipDataset(frames, TINY_MODEL, 1, depth_targets=True)[5][0].depth
    first = ClipDataset(frames, TINY_MODEL, 1, depth_targets=True, depth_objects_first=True)[5][0].depth
    assert plain is not None and first is not None
    assert bool((first >= plain).all()) and bool((first > plain).any())
