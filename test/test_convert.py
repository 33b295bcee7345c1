"""`syncl convert`: a synthetic nuScenes scene becomes a playable rosbag2 bag.

The bag is read back with readers independent of the writer (mcap +
mcap_ros2 for MCAP, rclpy for CDR compatibility) and checked against the
devkit's tables and the files on disk.
"""

from __future__ import annotations

import argparse
import importlib
import itertools
import json
import os
import shutil
import sys
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pyquaternion import Quaternion

from syncl_ros.classes import DETECTION_CLASSES
from syncl_ros.data import convert
from syncl_ros.data.convert import ConvertError, TopicNames, convert_loaded_scene, convert_scene
from syncl_ros.geometry import Transform
from syncl_ros.rig import CAMERA_CHANNELS, load_rig

pytestmark = pytest.mark.slow  # processes, datasets or training: see `make test-fast`

VERSION = "v1.0-trainval"
TOPICS = TopicNames()


# ------------------------------------------------------------------ fixtures


def _make_dataset(root: Path) -> None:
    from syncl_ros.data.synth.writer import write_dataset

    # Two short scenes: sweeps between key frames, and a neighbour scene in the same tables.
    write_dataset(root, scenes=2, seed=0, split="val", duration_s=1.5, workers=2, progress=False)


@pytest.fixture(scope="session")
def dataroot(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("synth")
    _make_dataset(root)
    return root


@pytest.fixture(scope="session")
def nusc(dataroot: Path) -> Any:
    from nuscenes.nuscenes import NuScenes

    return NuScenes(version=VERSION, dataroot=str(dataroot), verbose=False)


def _ego_travel(nusc: Any, scene: dict[str, Any]) -> float:
    ends = [
        nusc.get("sample", scene[k])["data"]["LIDAR_TOP"] for k in ("first_sample_token", "last_sample_token")
    ]
    a, b = (nusc.get("ego_pose", nusc.get("sample_data", t)["ego_pose_token"])["translation"] for t in ends)
    return float(np.linalg.norm(np.subtract(b, a)))


@pytest.fixture(scope="session")
def scene(nusc: Any) -> dict[str, Any]:
    """The scene in which the ego drives farthest, so that odometry has something to show."""
    scenes: list[dict[str, Any]] = list(nusc.scene)
    farthest = max(scenes, key=lambda s: _ego_travel(nusc, s))
    return dict(farthest)


@dataclass
class Read:
    topic: str
    schema: str
    log_time: int
    raw: bytes
    msg: Any


@pytest.fixture(scope="session")
def bag(nusc: Any, scene: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("bags") / "scene.bag"
    stats = convert_loaded_scene(nusc, scene["name"], out, progress=False)
    assert stats.out == out and stats.bytes > 0 and stats.total_messages > 0
    return out


@pytest.fixture(scope="session")
def messages(bag: Path) -> list[Read]:
    from mcap.reader import make_reader
    from mcap_ros2.decoder import DecoderFactory

    (mcap_file,) = bag.glob("*.mcap")
    with mcap_file.open("rb") as f:
        reader = make_reader(f, decoder_factories=[DecoderFactory()])
        return [
            Read(channel.topic, schema.name if schema else "", message.log_time, bytes(message.data), decoded)
            for schema, channel, message, decoded in reader.iter_decoded_messages(log_time_order=True)
        ]


@pytest.fixture(scope="session")
def by_topic(messages: list[Read]) -> dict[str, list[Read]]:
    out: dict[str, list[Read]] = defaultdict(list)
    for m in messages:
        out[m.topic].append(m)
    return dict(out)


def _scene_records(nusc: Any, scene: dict[str, Any], channel: str) -> list[dict[str, Any]]:
    """The devkit's sample_data of ``channel`` in ``scene``, found by a full table scan."""
    records = [
        r
        for r in nusc.sample_data
        if r["channel"] == channel and nusc.get("sample", r["sample_token"])["scene_token"] == scene["token"]
    ]
    return sorted(records, key=lambda r: r["timestamp"])


def _ns(stamp: Any) -> int:
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


def _transform(msg_tf: Any) -> Transform:
    t, q = msg_tf.translation, msg_tf.rotation
    return Transform.from_tq([t.x, t.y, t.z], [q.w, q.x, q.y, q.z])


# --------------------------------------------------------------------- tests


def test_bag_has_every_topic_with_the_right_counts(
    nusc: Any, scene: dict[str, Any], by_topic: dict[str, list[Read]]
) -> None:
    expected = {TOPICS.tf, TOPICS.tf_static, TOPICS.odom, TOPICS.clock, TOPICS.tracks}
    for channel in CAMERA_CHANNELS:
        expected |= {TOPICS.image_topic(channel), TOPICS.camera_info_topic(channel)}
    assert set(by_topic) == expected
    poses = set()
    for channel in CAMERA_CHANNELS:
        records = _scene_records(nusc, scene, channel)
        assert any(not r["is_key_frame"] for r in records), "the scene should have sweeps"
        assert len(by_topic[TOPICS.image_topic(channel)]) == len(records)
        assert len(by_topic[TOPICS.camera_info_topic(channel)]) == len(records)
        poses |= {nusc.get("ego_pose", r["ego_pose_token"])["timestamp"] for r in records}
    assert len(by_topic[TOPICS.tracks]) == scene["nbr_samples"]
    assert len(by_topic[TOPICS.tf_static]) == 1
    assert len(by_topic[TOPICS.tf]) == len(by_topic[TOPICS.odom]) >= len(poses)
    assert len(by_topic[TOPICS.clock]) >= len(by_topic[TOPICS.tf])


def test_log_times_are_header_stamps_and_monotonic(
    messages: list[Read], by_topic: dict[str, list[Read]]
) -> None:
    log_times = [m.log_time for m in messages]
    assert log_times == sorted(log_times)
    for topic, reads in by_topic.items():
        stamps = []
        for m in reads:
            if topic == TOPICS.clock:
                stamp = _ns(m.msg.clock)
            elif topic in (TOPICS.tf, TOPICS.tf_static):
                stamp = _ns(m.msg.transforms[0].header.stamp)
            else:
                stamp = _ns(m.msg.header.stamp)
            assert stamp == m.log_time, topic
            stamps.append(stamp)
        assert all(b > a for a, b in itertools.pairwise(stamps)), topic
    # The clock reaches a message's stamp before the message is delivered.
    clock_ticks = {m.log_time for m in by_topic[TOPICS.clock]}
    assert all(m.log_time in clock_ticks for m in messages)
    # /tf_static comes first.
    assert messages[1].topic == TOPICS.tf_static or messages[0].topic == TOPICS.tf_static


def test_images_are_the_stored_jpegs(
    nusc: Any, scene: dict[str, Any], by_topic: dict[str, list[Read]], dataroot: Path
) -> None:
    for channel in CAMERA_CHANNELS:
        records = _scene_records(nusc, scene, channel)
        reads = by_topic[TOPICS.image_topic(channel)]
        for record, m in zip(records, reads, strict=True):
            assert m.schema == "sensor_msgs/msg/CompressedImage"
            assert m.msg.format == "jpeg"
            assert m.msg.header.frame_id == f"{channel.lower()}_optical"
            assert _ns(m.msg.header.stamp) == record["timestamp"] * 1000
            assert bytes(m.msg.data) == (dataroot / record["filename"]).read_bytes()


def test_camera_info_matches_calibration(
    nusc: Any, scene: dict[str, Any], by_topic: dict[str, list[Read]]
) -> None:
    for channel in CAMERA_CHANNELS:
        records = _scene_records(nusc, scene, channel)
        for record, m in zip(records, by_topic[TOPICS.camera_info_topic(channel)], strict=True):
            info = m.msg
            K = np.asarray(
                nusc.get("calibrated_sensor", record["calibrated_sensor_token"])["camera_intrinsic"]
            )
            assert (info.width, info.height) == (record["width"], record["height"])
            assert info.header.frame_id == f"{channel.lower()}_optical"
            assert _ns(info.header.stamp) == record["timestamp"] * 1000
            np.testing.assert_allclose(np.reshape(info.k, (3, 3)), K)
            np.testing.assert_allclose(np.reshape(info.p, (3, 4)), np.hstack([K, np.zeros((3, 1))]))
            np.testing.assert_allclose(np.reshape(info.r, (3, 3)), np.eye(3))
            assert info.distortion_model == "plumb_bob" and not np.any(info.d)


def test_frame_ids_follow_the_rig() -> None:
    rig = load_rig()
    for cam in rig.cameras:
        assert convert.frame_id_of(cam.channel) == cam.frame_id
    assert convert.frame_id_of("LIDAR_TOP") == rig.lidar.frame_id == "lidar_top"


def test_tf_static_is_latched_and_holds_every_sensor(nusc: Any, scene: dict[str, Any], bag: Path) -> None:
    from mcap.reader import make_reader

    (mcap_file,) = bag.glob("*.mcap")
    with mcap_file.open("rb") as f:
        summary = make_reader(f).get_summary()
    assert summary is not None
    qos = {c.topic: c.metadata["offered_qos_profiles"] for c in summary.channels.values()}
    assert "durability: transient_local" in qos[TOPICS.tf_static]
    assert "durability: volatile" in qos[TOPICS.tf]
    meta = (bag / "metadata.yaml").read_text()
    assert "transient_local" in meta and "storage_identifier: mcap" in meta


def test_tf_chain_resolves_to_the_devkit_pose(
    nusc: Any, scene: dict[str, Any], by_topic: dict[str, list[Read]]
) -> None:
    from nuscenes.utils.geometry_utils import transform_matrix

    (static,) = by_topic[TOPICS.tf_static]
    mounts = {}
    for t in static.msg.transforms:
        assert t.header.frame_id == "base_link"
        mounts[t.child_frame_id] = _transform(t.transform)
    assert set(mounts) == {f"{c.lower()}_optical" for c in CAMERA_CHANNELS} | {"lidar_top"}
    ego_at = {}
    for m in by_topic[TOPICS.tf]:
        (t,) = m.msg.transforms
        assert (t.header.frame_id, t.child_frame_id) == ("map", "base_link")
        ego_at[_ns(t.header.stamp)] = _transform(t.transform)
    for channel in ("CAM_FRONT", "CAM_BACK_LEFT"):
        records = _scene_records(nusc, scene, channel)
        for record in (records[0], records[len(records) // 2 + 1], records[-1]):
            ego = nusc.get("ego_pose", record["ego_pose_token"])
            calib = nusc.get("calibrated_sensor", record["calibrated_sensor_token"])
            # The devkit's own matrices: camera -> ego -> global.
            expected = transform_matrix(ego["translation"], Quaternion(ego["rotation"])) @ transform_matrix(
                calib["translation"], Quaternion(calib["rotation"])
            )
            chained = ego_at[record["timestamp"] * 1000] @ mounts[f"{channel.lower()}_optical"]
            np.testing.assert_allclose(chained.matrix(), expected, atol=1e-9)


def test_odometry_matches_tf_and_moves_like_the_ego(by_topic: dict[str, list[Read]]) -> None:
    odom, tf = by_topic[TOPICS.odom], by_topic[TOPICS.tf]
    poses = []
    for o, t in zip(odom, tf, strict=True):
        assert (o.msg.header.frame_id, o.msg.child_frame_id) == ("map", "base_link")
        p = o.msg.pose.pose
        pose = Transform.from_tq(
            [p.position.x, p.position.y, p.position.z],
            [p.orientation.w, p.orientation.x, p.orientation.y, p.orientation.z],
        )
        assert pose.allclose(_transform(t.msg.transforms[0].transform))
        poses.append((o.log_time, pose, o.msg.twist.twist))
    speeds = [np.hypot(t.linear.x, t.linear.y) for _, _, t in poses]
    assert max(speeds) > 1.0, "the ego should drive in this scene"
    # Body-frame velocity against the displacement over +-0.25 s, away from the ends.
    stamps = np.array([s for s, _, _ in poses])
    for i in range(len(poses) // 4, 3 * len(poses) // 4, 7):
        a = int(np.searchsorted(stamps, stamps[i] - 250_000_000))
        b = int(np.searchsorted(stamps, stamps[i] + 250_000_000))
        dt = (stamps[b] - stamps[a]) * 1e-9
        world_v = (poses[b][1].translation - poses[a][1].translation) / dt
        body_v = poses[i][1].rotation.inverse.rotate(world_v)
        twist = poses[i][2]
        np.testing.assert_allclose(
            [twist.linear.x, twist.linear.y], body_v[:2], atol=0.05 + 0.02 * abs(body_v[0])
        )
        dyaw = (poses[b][1].yaw - poses[a][1].yaw + np.pi) % (2 * np.pi) - np.pi
        assert twist.angular.z == pytest.approx(dyaw / dt, abs=0.02)


def test_ground_truth_tracks(nusc: Any, scene: dict[str, Any], by_topic: dict[str, list[Read]]) -> None:
    from nuscenes.eval.detection.utils import category_to_detection_name

    reads = by_topic[TOPICS.tracks]
    token = scene["first_sample_token"]
    ids: dict[str, int] = {}
    seen: Counter[str] = Counter()
    assert len(reads) == scene["nbr_samples"]
    for m in reads:
        sample = nusc.get("sample", token)
        assert m.schema == "syncl_ros/msg/TrackedObject3DArray"
        assert m.msg.header.frame_id == "map" and _ns(m.msg.header.stamp) == sample["timestamp"] * 1000
        anns = [nusc.get("sample_annotation", t) for t in sample["anns"]]
        anns = [a for a in anns if category_to_detection_name(a["category_name"]) is not None]
        assert len(m.msg.objects) == len(anns)
        for ann, obj in zip(anns, m.msg.objects, strict=True):
            name = category_to_detection_name(ann["category_name"])
            assert obj.class_name == name and obj.label == DETECTION_CLASSES.index(name)
            assert obj.track_id == ids.setdefault(ann["instance_token"], len(ids) + 1)
            assert bytes(obj.uuid.uuid) == convert.instance_uuid(ann["instance_token"])
            seen[ann["instance_token"]] += 1
            assert obj.hits == seen[ann["instance_token"]] and obj.age >= obj.hits - 1
            assert obj.score == 1.0 and obj.frames_since_update == 0 and not obj.has_covariance
            pos = obj.pose.position
            np.testing.assert_allclose([pos.x, pos.y, pos.z], ann["translation"])
            w, length, h = ann["size"]
            np.testing.assert_allclose([obj.size.x, obj.size.y, obj.size.z], [length, w, h], rtol=1e-6)
            q = obj.pose.orientation
            yaw = Quaternion([q.w, q.x, q.y, q.z]).yaw_pitch_roll[0]
            assert yaw == pytest.approx(Quaternion(ann["rotation"]).yaw_pitch_roll[0], abs=1e-9)
            v = np.nan_to_num(nusc.box_velocity(ann["token"])[:2])
            np.testing.assert_allclose([obj.velocity.x, obj.velocity.y, obj.velocity.z], [*v, 0.0], atol=1e-9)
        token = sample["next"]
    assert token == ""
    assert min(len(m.msg.objects) for m in reads) > 0
    assert any(o.velocity.x or o.velocity.y for m in reads for o in m.msg.objects)
    uuids = {bytes(o.uuid.uuid) for m in reads for o in m.msg.objects}
    track_ids = {o.track_id for m in reads for o in m.msg.objects}
    assert len(uuids) == len(track_ids) == len(ids)


def _rclpy_class(schema: str) -> Any:
    package, _, name = schema.split("/")
    return getattr(importlib.import_module(f"{package}.msg"), name)


def test_messages_deserialize_with_rclpy(by_topic: dict[str, list[Read]]) -> None:
    from rclpy import serialization

    for topic, reads in by_topic.items():
        for m in (reads[0], reads[-1]):
            msg = serialization.deserialize_message(m.raw, _rclpy_class(m.schema))
            assert type(msg).__name__ == m.schema.split("/")[-1], topic
            if m.schema == "sensor_msgs/msg/CompressedImage":
                assert bytes(msg.data) == bytes(m.msg.data) and msg.header.frame_id.endswith("_optical")
            elif m.schema == "sensor_msgs/msg/CameraInfo":
                assert list(msg.k) == list(m.msg.k) and msg.width == m.msg.width
            elif m.schema == "syncl_ros/msg/TrackedObject3DArray":
                assert len(msg.objects) == len(m.msg.objects)
                for a, b in zip(msg.objects, m.msg.objects, strict=True):
                    assert (a.track_id, a.label, a.class_name) == (b.track_id, b.label, b.class_name)
                    assert bytes(a.uuid.uuid) == bytes(b.uuid.uuid) and a.size.x == b.size.x
            elif m.schema == "nav_msgs/msg/Odometry":
                assert msg.twist.twist.linear.x == m.msg.twist.twist.linear.x
            elif m.schema == "tf2_msgs/msg/TFMessage":
                assert [t.child_frame_id for t in msg.transforms] == [
                    t.child_frame_id for t in m.msg.transforms
                ]
            # rclpy serializes it back to the same layout (padding bytes are unspecified in CDR).
            assert len(serialization.serialize_message(msg)) == len(m.raw), topic


def test_custom_type_hashes_match_rosidl(bag: Path) -> None:
    share = Path(sys.prefix) / "share" / "syncl_ros" / "msg"
    if not (share / "TrackedObject3DArray.json").is_file():
        pytest.skip("no rosidl type descriptions installed")
    described = json.loads((share / "TrackedObject3DArray.json").read_text())
    (hash_entry,) = [h for h in described["type_hashes"] if h["type_name"].endswith("TrackedObject3DArray")]
    meta = (bag / "metadata.yaml").read_text()
    assert hash_entry["hash_string"] in meta


def test_sqlite3_bag_reads_back(
    nusc: Any, scene: dict[str, Any], tmp_path: Path, by_topic: dict[str, list[Read]]
) -> None:
    from rosbags.rosbag2 import Reader

    from syncl_ros.data.rosmsgs import typestore

    out = tmp_path / "scene_sqlite"
    stats = convert_loaded_scene(nusc, scene["name"], out, storage="sqlite3", progress=False)
    assert list(out.glob("*.db3")) and stats.storage == "sqlite3"
    store = typestore()
    counts: Counter[str] = Counter()
    with Reader(out) as reader:
        for connection, timestamp, raw in reader.messages():
            counts[connection.topic] += 1
            if connection.topic == TOPICS.image_topic("CAM_FRONT") and counts[connection.topic] == 1:
                msg: Any = store.deserialize_cdr(raw, connection.msgtype)
                assert bytes(msg.data) == bytes(by_topic[connection.topic][0].msg.data)
                assert timestamp == by_topic[connection.topic][0].log_time
    assert counts == Counter({topic: len(reads) for topic, reads in by_topic.items()})
    assert dict(counts) == stats.messages


def _linked_copy(src: Path, dst: Path) -> Path:
    """The dataset with its files as symlinks, so that one can be removed cheaply."""
    shutil.copytree(src, dst, copy_function=os.symlink)
    return dst


def _first_sweep(nusc: Any, scene: dict[str, Any]) -> str:
    records = _scene_records(nusc, scene, "CAM_BACK")
    return str(next(r for r in records if not r["is_key_frame"])["filename"])


def test_missing_jpeg_is_a_clear_error_and_leaves_no_bag(
    dataroot: Path, nusc: Any, scene: dict[str, Any], tmp_path: Path
) -> None:
    copy = _linked_copy(dataroot, tmp_path / "data")
    missing = _first_sweep(nusc, scene)
    (copy / missing).unlink()
    out = tmp_path / "bag"
    with pytest.raises(ConvertError, match=r"missing.*" + Path(missing).name):
        convert_scene(copy, VERSION, scene["name"], out, progress=False)
    assert not out.exists() and not Path(f"{out}.partial").exists()


def test_failure_midway_removes_the_partial_bag(
    dataroot: Path, nusc: Any, scene: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A file that vanishes after the up-front check fails the conversion while writing.
    copy = _linked_copy(dataroot, tmp_path / "data")
    monkeypatch.setattr(convert, "_check_images", lambda sweeps: None)
    missing = _first_sweep(nusc, scene)
    (copy / missing).unlink()
    out = tmp_path / "bag"
    partial_seen = []
    real_write = convert._write

    def spy(*args: Any, **kwargs: Any) -> dict[str, int]:
        partial_seen.append(Path(f"{out}.partial").is_dir())
        return real_write(*args, **kwargs)

    monkeypatch.setattr(convert, "_write", spy)
    with pytest.raises(ConvertError, match="cannot read"):
        convert_scene(copy, VERSION, scene["name"], out, progress=False)
    assert partial_seen == [True]
    assert not out.exists() and not Path(f"{out}.partial").exists()


def test_existing_bag_is_refused_unless_overwrite(nusc: Any, scene: dict[str, Any], tmp_path: Path) -> None:
    out = tmp_path / "bag"
    out.mkdir()
    (out / "metadata.yaml").write_text("old")
    with pytest.raises(FileExistsError, match="overwrite"):
        convert_loaded_scene(nusc, scene["name"], out, progress=False)
    assert (out / "metadata.yaml").read_text() == "old"
    convert_loaded_scene(nusc, scene["name"], out, overwrite=True, progress=False)
    assert (out / "metadata.yaml").read_text() != "old" and list(out.glob("*.mcap"))
    not_a_bag = tmp_path / "precious"
    not_a_bag.mkdir()
    with pytest.raises(FileExistsError, match="not a rosbag2 bag"):
        convert_loaded_scene(nusc, scene["name"], not_a_bag, overwrite=True, progress=False)


def test_unknown_scene_names_the_available_ones(nusc: Any, tmp_path: Path) -> None:
    with pytest.raises(ConvertError, match=r"no scene 'scene-9999'.*have: "):
        convert_loaded_scene(nusc, "scene-9999", tmp_path / "bag", progress=False)
    assert not (tmp_path / "bag").exists()


def _cli(*argv: str) -> tuple[int, argparse.Namespace]:
    from syncl_ros.data import convert_cli

    parser = argparse.ArgumentParser(prog="syncl convert")
    convert_cli.configure_parser(parser)
    args = parser.parse_args(list(argv))
    return convert_cli.main(args), args


def test_cli_converts_with_custom_topics_and_refuses_to_overwrite(
    dataroot: Path, nusc: Any, scene: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    second = next(s["name"] for s in nusc.scene if s["token"] != scene["token"])
    out = tmp_path / "cli_bag"
    argv = [str(dataroot), "--version", VERSION, "--scene", second, "--out", str(out), "--no-progress"]
    code, _ = _cli(
        *argv, "--storage", "sqlite3", "--tracks-topic", "/gt", "--image-topic", "/cams/{channel}/jpeg"
    )
    assert code == 0
    report = capsys.readouterr().out
    assert "/gt " in report and "/cams/CAM_FRONT/jpeg" in report and str(out) in report
    assert list(out.glob("*.db3"))
    code, _ = _cli(*argv)
    assert code == 1 and "exists" in capsys.readouterr().err
    code, _ = _cli(*argv[:3], "--scene", "nope", "--out", str(tmp_path / "other"), "--no-progress")
    assert code == 1 and "no scene 'nope'" in capsys.readouterr().err


def test_topic_templates_need_the_channel() -> None:
    with pytest.raises(ValueError, match="channel"):
        TopicNames(image="/images")
    assert TopicNames().image_topic("CAM_BACK") == "/CAM_BACK/image_rect_compressed"


def test_instance_uuid_is_the_token_or_a_stable_hash() -> None:
    token = "0123456789abcdef0123456789abcdef"
    assert convert.instance_uuid(token) == bytes.fromhex(token)
    other = convert.instance_uuid("synthetic-17")
    assert len(other) == 16 and other == convert.instance_uuid("synthetic-17")
    assert other != convert.instance_uuid("synthetic-18")


def _circle(stamps_ns: Iterator[int], speed: float, radius: float) -> list[tuple[int, Transform]]:
    out = []
    for t in stamps_ns:
        angle = speed * t * 1e-9 / radius
        pose = Transform.from_xy_yaw(radius * np.sin(angle), radius * (1 - np.cos(angle)), angle)
        out.append((t, pose))
    return out


def test_ego_twist_on_a_circle_is_forward_speed_and_yaw_rate() -> None:
    # Irregular stamps, milliseconds apart, like staggered cameras.
    rng = np.random.default_rng(0)
    stamps = np.cumsum(rng.integers(1_000_000, 12_000_000, size=400))
    ego = _circle(iter(int(s) for s in stamps), speed=8.0, radius=20.0)
    for linear, angular in convert.ego_twists(ego):
        assert linear[0] == pytest.approx(8.0, rel=2e-3) and abs(linear[1]) < 0.1 and linear[2] == 0
        assert angular[2] == pytest.approx(0.4, rel=1e-6) and abs(angular[0]) < 1e-12
    ((linear, angular),) = convert.ego_twists(ego[:1])  # a single pose cannot tell
    assert not linear.any() and not angular.any()
