"""Camera overlays: boxes land where the camera sees them (checked against geometry.project and
the nuScenes devkit's own projection), edges are clipped behind the camera and at the border,
the rig layout, and `syncl render` on a synthetic nuScenes-format scene."""

import json
from pathlib import Path
from typing import cast

import cv2
import numpy as np
import pytest
from numpy.typing import NDArray

from syncl_ros import boxes as box_ops
from syncl_ros.cli import main as syncl
from syncl_ros.geometry import Transform, ego_to_image, optical_to_body, project
from syncl_ros.viz.overlay import RIG_LAYOUT, class_bgr, draw_boxes, mosaic, project_box_edges, track_box

W, H = 640, 360
K = np.array([[400.0, 0.0, 320.0], [0.0, 400.0, 180.0], [0.0, 0.0, 1.0]])
# a camera at 1.5 m looking along the ego x axis
LIDAR2IMG = ego_to_image(K, Transform(optical_to_body(0.0), np.array([0.0, 0.0, 1.5])))


def car(x: float, y: float = 0.0, yaw: float = 0.0) -> NDArray[np.float64]:
    return np.array([x, y, 0.85, 4.5, 1.9, 1.7, yaw, 3.0, 4.0])


def near(
    image: NDArray[np.uint8], uv: NDArray[np.float64], color: tuple[int, int, int], radius: int = 2
) -> bool:
    """Whether a pixel within ``radius`` of ``uv`` has ``color`` (anti-aliased lines blend at edges)."""
    u, v = (round(float(c)) for c in uv)
    patch = image[max(0, v - radius) : v + radius + 1, max(0, u - radius) : u + radius + 1].astype(int)
    return bool((np.abs(patch - np.array(color)).max(axis=-1) <= 40).any())


def test_a_box_is_drawn_around_the_projected_object() -> None:
    box = car(12.0, 1.0, yaw=0.4)
    image = draw_boxes(np.zeros((H, W, 3), np.uint8), [track_box(box, 7, "car")], LIDAR2IMG)
    color = class_bgr("car")
    corners, depth = project(LIDAR2IMG, box_ops.corners(box[None])[0])
    assert (depth > 0).all()
    assert all(near(image, uv, color) for uv in corners), "every corner lies on a drawn edge"
    center, _ = project(LIDAR2IMG, box[None, :3])
    u, v = (round(c) for c in center[0])
    row = np.abs(image[v].astype(int) - color).max(axis=-1) <= 40
    assert row[:u].any() and row[u:].any(), "edges on both sides of the projected center"
    # the label says id and speed (3-4-5 m/s: 18 km/h), white-ish text on a dark patch above the box
    assert track_box(box, 7, "car").label == "7 18 km/h"


def test_edges_are_clipped_behind_the_camera_and_at_the_border() -> None:
    behind = car(-6.0)
    assert project_box_edges(behind, LIDAR2IMG, (W, H)) == []
    # half of the box is behind the camera plane: naive projection would flip those corners
    straddling = car(0.5, yaw=0.0)
    segments = project_box_edges(straddling, LIDAR2IMG, (W, H))
    assert 0 < len(segments) < 12
    points = np.array([p for s in segments for p in s])
    assert (points >= 0).all() and (points[:, 0] <= W).all() and (points[:, 1] <= H).all()
    # the visible part reaches the image border (the box surrounds the camera's side)
    assert points[:, 0].min() == 0 or points[:, 0].max() >= W - 1 or points[:, 1].max() >= H - 1
    # nothing from behind the camera wraps into the picture: the rear corners (x < 0) stay out
    _, depth = project(LIDAR2IMG, box_ops.corners(straddling[None])[0])
    assert (depth < 0).sum() == 4
    image = draw_boxes(np.zeros((H, W, 3), np.uint8), [track_box(straddling, 1, "car")], LIDAR2IMG)
    assert image.any()


def test_mosaic_sits_as_the_rig() -> None:
    channels = [c for row in RIG_LAYOUT for c in row]
    tiles = {c: np.full((90, 160, 3), 20 * (i + 1), np.uint8) for i, c in enumerate(channels)}
    del tiles["CAM_BACK"]
    out = mosaic(tiles, (160, 90), captions=False)
    assert out.shape == (180, 480, 3)
    assert out[45, 80, 0] == 20  # front-left: top left
    assert out[45, 240, 0] == 40  # front: top middle
    assert out[135, 400, 0] == 120  # back-right: bottom right
    assert out[130:140, 170:310].max() > 0 and out[100, 240].max() == 0  # missing camera: black, says so


@pytest.fixture(scope="module")
def gt_results(synth_val_root: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """The first scene's ground truth written as tracking results (so every box has an object)."""
    from nuscenes.nuscenes import NuScenes

    nusc = NuScenes("v1.0-trainval", str(synth_val_root), verbose=False)
    scene = nusc.scene[0]
    results, token = {}, scene["first_sample_token"]
    while token:
        sample = nusc.get("sample", token)
        results[token] = [
            {
                "sample_token": token,
                "translation": a["translation"],
                "size": a["size"],
                "rotation": a["rotation"],
                "velocity": [0.0, 0.0],
                "tracking_id": str(i),
                "tracking_name": "car",
                "tracking_score": 1.0,
            }
            for i, a in enumerate(nusc.get("sample_annotation", t) for t in sample["anns"])
        ]
        token = sample["next"]
    path = tmp_path_factory.mktemp("render") / "results.json"
    path.write_text(json.dumps({"meta": {}, "results": results}))
    return path, scene["name"]


@pytest.mark.slow
def test_render_lands_boxes_where_the_devkit_projects_them(
    synth_val_root: Path, gt_results: tuple[Path, str], tmp_path: Path
) -> None:
    from nuscenes.nuscenes import NuScenes
    from nuscenes.utils.geometry_utils import view_points

    results, scene = gt_results
    out = tmp_path / "frames"
    args = ["render", str(results), "--dataroot", str(synth_val_root), "--scene", scene]
    assert syncl([*args, "--out", str(out), "--video", "--no-gt", "--no-progress"]) == 0
    frames = sorted(out.glob("frame_*.png"))
    samples = json.loads(results.read_text())["results"]
    assert len(frames) == len(samples) == 5
    video = cv2.VideoCapture(str(out / "overlay.mp4"))
    count = 0
    while video.read()[0]:
        count += 1
    assert count == len(frames)

    # CAM_FRONT is the top-middle tile (400 px wide by default): project every annotation with the
    # devkit (Box.corners, view_points) and find the class colour at its corners.
    nusc = NuScenes("v1.0-trainval", str(synth_val_root), verbose=False)
    token = nusc.get("scene", nusc.field2token("scene", "name", scene)[0])["first_sample_token"]
    sample = nusc.get("sample", token)
    image = cast(NDArray[np.uint8], cv2.imread(str(frames[0])))  # color: uint8
    sd = nusc.get("sample_data", sample["data"]["CAM_FRONT"])
    _, boxes, K = nusc.get_sample_data(sd["token"])  # boxes in the camera frame, by the devkit
    scale = 400 / sd["width"]
    tile_h = round(sd["height"] * scale)
    hits = checked = 0
    for box in boxes:
        corners = box.corners()
        if corners[2].min() < 1.0:
            continue
        uv = view_points(corners, np.asarray(K), normalize=True)[:2].T * scale
        for p in uv:
            if 3 <= p[0] < 397 and 20 <= p[1] < tile_h - 3:  # inside the tile, below its caption
                checked += 1
                hits += near(image, p + np.array([400, 0]), class_bgr("car"))
    assert checked >= 8, "the scene needs boxes in front of CAM_FRONT"
    assert hits >= 0.8 * checked, (hits, checked)


def test_render_says_what_is_wrong(
    synth_val_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    args = ["--dataroot", str(synth_val_root), "--out", str(tmp_path / "o")]
    assert syncl(["render", str(bad), *args]) == 2
    assert "not a nuScenes results JSON" in capsys.readouterr().err
    assert syncl(["render", str(tmp_path / "missing.mcap"), *args]) == 2
    assert "no such file" in capsys.readouterr().err
    assert syncl(["render", str(bad), "--dataroot", str(tmp_path), "--out", str(tmp_path / "o")]) == 2
    assert "no v1.0-trainval tables" in capsys.readouterr().err
