"""The written dataset, read back with the official nuScenes devkit."""

import argparse
import filecmp
import os
from pathlib import Path

import numpy as np
import pytest
from nuscenes.nuscenes import NuScenes
from nuscenes.utils.data_classes import LidarPointCloud
from nuscenes.utils.geometry_utils import points_in_box, view_points
from nuscenes.utils.splits import create_splits_scenes
from PIL import Image
from pyquaternion import Quaternion

from syncl_ros.data.synth import cli
from syncl_ros.data.synth.views import render_camera
from syncl_ros.data.synth.writer import VERSION, scene_seed, token, world_for_log, write_dataset
from syncl_ros.rig import load_rig

pytestmark = pytest.mark.slow  # processes, datasets or training: see `make test-fast`

SEED, SPLIT, SCENES, DURATION = 7, "val", 2, 1.0
CHANNELS = ("CAM_FRONT", "CAM_FRONT_RIGHT", "CAM_FRONT_LEFT", "CAM_BACK", "CAM_BACK_LEFT", "CAM_BACK_RIGHT")


@pytest.fixture(scope="module")
def dataroot(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("synth")
    args = argparse.ArgumentParser()
    cli.configure_parser(args)
    argv = [str(root), "--scenes", str(SCENES), "--seed", str(SEED), "--split", SPLIT]
    parsed = args.parse_args([*argv, "--duration", str(DURATION), "--workers", "2"])
    assert cli.main(parsed) == 0
    return root


@pytest.fixture(scope="module")
def nusc(dataroot: Path) -> NuScenes:
    return NuScenes(version=VERSION, dataroot=str(dataroot), verbose=False)


def test_loads_with_expected_counts(nusc: NuScenes) -> None:
    rig = load_rig("rig_nuscenes")
    samples_per_scene = int(DURATION * rig.keyframe_rate_hz)
    frames_per_scene = samples_per_scene * 6
    assert len(nusc.scene) == SCENES
    assert len(nusc.sample) == SCENES * samples_per_scene
    assert len(nusc.sample_data) == SCENES * (6 * frames_per_scene + samples_per_scene)
    assert len(nusc.ego_pose) == len(nusc.sample_data)
    assert {s["channel"] for s in nusc.sensor} == {*CHANNELS, "LIDAR_TOP"}
    assert len(nusc.sample_annotation) > 20 * len(nusc.sample)
    for scene in nusc.scene:
        assert scene["nbr_samples"] == samples_per_scene
    for sample in nusc.sample:
        assert set(sample["data"]) == {*CHANNELS, "LIDAR_TOP"}
        for sd_token in sample["data"].values():
            assert os.path.exists(nusc.get_sample_data_path(sd_token))


def test_scene_names_put_scenes_in_the_split(nusc: NuScenes) -> None:
    names = [s["name"] for s in nusc.scene]
    assert names == create_splits_scenes(verbose=False)[SPLIT][:SCENES]


def test_chains_timestamps_and_key_frames(nusc: NuScenes, dataroot: Path) -> None:
    rig = load_rig("rig_nuscenes")
    for scene in nusc.scene:
        sample = nusc.get("sample", scene["first_sample_token"])
        times = []
        while True:
            times.append(sample["timestamp"])
            assert nusc.get("sample_data", sample["data"]["LIDAR_TOP"])["timestamp"] == sample["timestamp"]
            if not sample["next"]:
                break
            sample = nusc.get("sample", sample["next"])
        assert sample["token"] == scene["last_sample_token"]
        assert np.all(np.diff(times) == 500_000)  # 2 Hz, in microseconds

        first = nusc.get("sample", scene["first_sample_token"])
        offsets = {}
        for ch in CHANNELS:
            sd = nusc.get("sample_data", first["data"][ch])
            chain = [sd]
            while sd["prev"]:
                sd = nusc.get("sample_data", sd["prev"])
                chain.insert(0, sd)
            sd = chain[-1]
            while sd["next"]:
                sd = nusc.get("sample_data", sd["next"])
                chain.append(sd)
            stamps = np.array([r["timestamp"] for r in chain])
            assert len(chain) == 6 * scene["nbr_samples"]
            assert np.all(np.diff(stamps) > 0)
            np.testing.assert_allclose(np.diff(stamps), 1e6 / 12, atol=1)  # 12 Hz
            keys = [i for i, r in enumerate(chain) if r["is_key_frame"]]
            assert keys == list(range(0, len(chain), 6))  # every 6th frame
            for r in chain:
                folder = "samples" if r["is_key_frame"] else "sweeps"
                assert r["filename"].startswith(f"{folder}/{ch}/") and r["fileformat"] == "jpg"
                assert (dataroot / r["filename"]).stat().st_size > 10_000
                # Own ego pose at its own time.
                assert nusc.get("ego_pose", r["ego_pose_token"])["timestamp"] == r["timestamp"]
            # The key frame is this camera's frame closest to the sample timestamp.
            for r in chain:
                if r["is_key_frame"]:
                    t = nusc.get("sample", r["sample_token"])["timestamp"]
                    assert np.argmin(np.abs(stamps - t)) == chain.index(r)
            offsets[ch] = chain[0]["timestamp"]
        # Staggered capture: each camera fires capture_offset_ms after CAM_FRONT.
        for ch in CHANNELS:
            expected = rig.camera(ch).capture_offset_ms * 1000
            assert offsets[ch] - offsets["CAM_FRONT"] == pytest.approx(expected, abs=1)
        assert len(set(offsets.values())) == 6


def test_calibration_is_the_rig_in_nuscenes_conventions(nusc: NuScenes) -> None:
    rig = load_rig("rig_nuscenes")
    sample = nusc.sample[0]
    for ch in CHANNELS:
        sd = nusc.get("sample_data", sample["data"][ch])
        cs = nusc.get("calibrated_sensor", sd["calibrated_sensor_token"])
        cam = rig.camera(ch)
        np.testing.assert_allclose(cs["camera_intrinsic"], cam.intrinsics())
        rot = Quaternion(cs["rotation"]).rotation_matrix
        # Optical frame: z forward along the viewing direction, y down.
        yaw = np.radians(cam.yaw_deg)
        np.testing.assert_allclose(rot[:, 2], [np.cos(yaw), np.sin(yaw), 0.0], atol=1e-9)
        np.testing.assert_allclose(rot[:, 1], [0.0, 0.0, -1.0], atol=1e-9)
        assert sd["width"] == 1600 and sd["height"] == 900


def test_annotations_project_onto_their_rendered_objects(nusc: NuScenes, dataroot: Path) -> None:
    """Box centers, moved to each camera with the devkit's records, land on that object's pixels."""
    rig = load_rig("rig_nuscenes")
    scene = nusc.scene[0]
    # Rebuild the world from the log and render again on the dataset's clock.
    world = world_for_log(nusc.get("log", scene["log_token"])["logfile"])
    ids = {token(f"{SEED}/{SPLIT}/0", "instance", i): i for i in range(world.num_objects)}
    sample = nusc.get("sample", scene["first_sample_token"])
    hits = total = corner_hits = corner_total = 0
    for ch in CHANNELS:
        sd = nusc.get("sample_data", sample["data"][ch])
        cs = nusc.get("calibrated_sensor", sd["calibrated_sensor_token"])
        pose = nusc.get("ego_pose", sd["ego_pose_token"])
        frame = render_camera(world, rig.camera(ch), sd["timestamp"] * 1000)
        jpeg = np.asarray(Image.open(dataroot / sd["filename"]))
        # The written image is this render (up to JPEG loss).
        assert np.abs(jpeg.astype(int) - frame.rgb.astype(int)).mean() < 4.0
        for ann_token in sample["anns"]:
            ann = nusc.get("sample_annotation", ann_token)
            if ann["visibility_token"] != "4":
                continue
            box = nusc.get_box(ann_token)
            # World -> ego -> camera, exactly as devkit users do.
            box.translate(-np.array(pose["translation"]))
            box.rotate(Quaternion(pose["rotation"]).inverse)
            box.translate(-np.array(cs["translation"]))
            box.rotate(Quaternion(cs["rotation"]).inverse)
            if box.center[2] < 1.0:
                continue
            uv = view_points(box.center[:, None], np.array(cs["camera_intrinsic"]), normalize=True)[:2, 0]
            u, v = np.round(uv).astype(int)
            if not (0 <= u < 1600 and 0 <= v < 900):
                continue
            total += 1
            hits += frame.instance[v, u] == ids[ann["instance_token"]]
            # Corners pulled 20 % towards the center stay on the object too.
            inner = box.center[:, None] + 0.8 * (box.corners() - box.center[:, None])
            if np.all(inner[2] > 1.0):
                uvs = np.round(
                    view_points(inner, np.array(cs["camera_intrinsic"]), normalize=True)[:2]
                ).astype(int)
                ok = (uvs[0] >= 0) & (uvs[0] < 1600) & (uvs[1] >= 0) & (uvs[1] < 900)
                corner_total += ok.sum()
                corner_hits += (frame.instance[uvs[1, ok], uvs[0, ok]] == ids[ann["instance_token"]]).sum()
    assert total >= 5
    assert hits / total > 0.9
    assert corner_total >= 20 and corner_hits / corner_total > 0.8


def test_visibility_and_lidar_counts_are_consistent(nusc: NuScenes, dataroot: Path) -> None:
    anns = nusc.sample_annotation
    levels = {a["visibility_token"] for a in anns}
    assert {"1", "4"} <= levels
    assert {v["token"] for v in nusc.visibility} == {"1", "2", "3", "4"}
    vis = np.array([int(a["visibility_token"]) for a in anns])
    pts = np.array([a["num_lidar_pts"] for a in anns])
    assert np.median(pts[vis == 4]) > np.median(pts[vis == 1])
    assert (pts == 0).any() and (pts > 0).mean() > 0.4
    # Points written to disk fall in the boxes they were counted for: a box grown by the
    # largest range noise holds them all (plus ground points at its foot), and all but
    # those within a few centimetres of the ground are certainly its own.
    sample = nusc.sample[0]
    sd = nusc.get("sample_data", sample["data"]["LIDAR_TOP"])
    cloud = LidarPointCloud.from_file(str(dataroot / sd["filename"]))
    height = nusc.get("calibrated_sensor", sd["calibrated_sensor_token"])["translation"][2]
    off_ground = cloud.points[:3, cloud.points[2] > 0.06 - height]
    _, boxes, _ = nusc.get_sample_data(sd["token"])  # boxes in the lidar frame
    checked = 0
    for b in boxes:
        ann = nusc.get("sample_annotation", b.token)
        b.wlh = b.wlh + 0.12
        upper = points_in_box(b, cloud.points[:3]).sum()
        lower = points_in_box(b, off_ground).sum()
        assert lower <= ann["num_lidar_pts"] <= upper
        if ann["num_lidar_pts"] > 20:
            checked += 1
            assert lower > 0.7 * ann["num_lidar_pts"]
    assert checked >= 5


def test_annotation_fields(nusc: NuScenes) -> None:
    categories = {c["name"] for c in nusc.category}
    used = {a["category_name"] for a in nusc.sample_annotation}
    assert used <= categories and {"vehicle.car", "human.pedestrian.adult"} <= used
    attribute_names = {a["token"]: a["name"] for a in nusc.attribute}
    for ann in nusc.sample_annotation:
        width, length, h = ann["size"]
        assert ann["num_radar_pts"] == 0
        assert len(ann["attribute_tokens"]) == 1 and ann["attribute_tokens"][0] in attribute_names
        if ann["category_name"] == "vehicle.car":
            assert length > width  # nuScenes (w, l, h) order
        assert ann["translation"][2] == pytest.approx(h / 2)
    for inst in nusc.instance:
        chain, tok = [], inst["first_annotation_token"]
        while tok:
            chain.append(tok)
            tok = nusc.get("sample_annotation", tok)["next"]
        assert len(chain) == inst["nbr_annotations"] and chain[-1] == inst["last_annotation_token"]
    # The devkit can estimate velocities from the prev/next chains.
    some = next(a for a in nusc.sample_annotation if a["next"])
    assert np.all(np.isfinite(nusc.box_velocity(some["token"])))


def test_same_seed_gives_identical_files(dataroot: Path, tmp_path: Path) -> None:
    again = tmp_path / "again"
    write_dataset(again, SCENES, SEED, SPLIT, DURATION, workers=1, progress=False)
    for name in sorted(os.listdir(dataroot / VERSION)):
        assert filecmp.cmp(dataroot / VERSION / name, again / VERSION / name, shallow=False), name
    images = sorted((dataroot / "samples" / "CAM_FRONT").iterdir())
    assert filecmp.cmp(images[-1], again / "samples" / "CAM_FRONT" / images[-1].name, shallow=False)
    sweeps = sorted((dataroot / "sweeps" / "CAM_BACK").iterdir())
    assert filecmp.cmp(sweeps[3], again / "sweeps" / "CAM_BACK" / sweeps[3].name, shallow=False)


def test_other_split_and_seed_give_other_worlds(tmp_path: Path) -> None:
    assert scene_seed(SEED, "train", 0) != scene_seed(SEED, "val", 0)
    assert scene_seed(SEED, "val", 0) != scene_seed(SEED + 1, "val", 0)
    with pytest.raises(ValueError, match="scenes"):
        write_dataset(tmp_path, 151, SEED, "val", DURATION, progress=False)
    assert not (tmp_path / VERSION).exists()
