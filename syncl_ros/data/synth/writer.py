"""Write simulated scenes as a nuScenes-format dataset (v1.0-trainval) that the devkit loads unchanged.

Layout: ``samples/CAM_*/*.jpg`` (camera key frames), ``sweeps/CAM_*/*.jpg``
(the other camera frames), ``samples/LIDAR_TOP/*.pcd.bin`` (lidar key
frames), ``maps/*.png`` and the tables in ``v1.0-trainval/``. The table
folder is moved into place last, so an interrupted run never looks like a
complete dataset. Tokens, images and tables are a pure function of
(seed, split, scene count, duration, rig): the same arguments give
byte-identical files.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import itertools
import json
import multiprocessing
import os
import re
import shutil
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from tqdm import tqdm

from syncl_ros.atomic import remove_stale_partials, temp_dir
from syncl_ros.boxes import to_nuscenes
from syncl_ros.data.synth import lidar, metadata
from syncl_ros.data.synth.actors import CATEGORY_NAMES
from syncl_ros.data.synth.timeline import Timeline, plan
from syncl_ros.data.synth.views import prepare_rig, render_camera
from syncl_ros.data.synth.world import Scene, simulate
from syncl_ros.geometry import Transform
from syncl_ros.rig import RigSpec, load_rig

VERSION = "v1.0-trainval"
DEFAULT_WORKERS = min(4, os.cpu_count() or 1)  # render processes
ANNOTATION_RADIUS = 60.0  # objects farther from the ego than this are not annotated (m)
JPEG_QUALITY = 90
# First scene starts 2018-08-01 00:00 UTC; scenes are an hour apart, val a year after train.
_EPOCH_US = 1_533_081_600_000_000
_SCENE_SPACING_US = 3_600_000_000
_SPLIT_OFFSET_US = {"train": 0, "val": 365 * 24 * _SCENE_SPACING_US}


def token(*parts: object) -> str:
    """Deterministic 32-hex token of a name."""
    return hashlib.sha1("/".join(str(p) for p in parts).encode()).hexdigest()[:32]


def scene_seed(seed: int, split: str, index: int) -> int:
    """World seed of scene ``index``: train and val never share a world."""
    return int.from_bytes(
        hashlib.sha256(f"syncl-synth/{seed}/{split}/{index}".encode()).digest()[:8], "little"
    )


def scene_start_ns(split: str, index: int) -> int:
    """First rig trigger of scene ``index`` (ns since the epoch, on the microsecond grid)."""
    return (_EPOCH_US + _SPLIT_OFFSET_US[split] + index * _SCENE_SPACING_US) * 1000


def log_name(seed: int, split: str, index: int, duration_s: float) -> str:
    """Log file name; it records everything needed to rebuild the scene's world."""
    return f"synth-{split}-s{seed}-i{index}-d{round(duration_s * 1000)}ms"


def scene_world(seed: int, split: str, index: int, duration_s: float) -> Scene:
    """The world of scene ``index`` of a dataset, on the dataset's clock."""
    return simulate(scene_seed(seed, split, index), duration_s, scene_start_ns(split, index))


def world_for_log(logfile: str) -> Scene:
    """Rebuild a scene's world from its log record's ``logfile`` (to render it again at any time)."""
    match = re.fullmatch(r"synth-(train|val)-s(-?\d+)-i(\d+)-d(\d+)ms", logfile)
    if match is None:
        raise ValueError(f"not a synthetic log name: {logfile!r}")
    split, seed, index, duration_ms = match.groups()
    return scene_world(int(seed), split, int(index), int(duration_ms) / 1000.0)


def scene_names(split: str) -> list[str]:
    """Official nuScenes scene names of a split; the devkit assigns splits by these names."""
    from nuscenes.utils.splits import create_splits_scenes

    names = create_splits_scenes(verbose=False)
    if split not in ("train", "val"):
        raise ValueError(f"split must be 'train' or 'val', got {split!r}")
    return list(names[split])


def visibility_level(visible: int, alone: int) -> str:
    """nuScenes visibility token: '1' 0-40 %, '2' 40-60 %, '3' 60-80 %, '4' 80-100 % visible."""
    if alone <= 0:
        return "1"
    frac = visible / alone
    return "1" if frac < 0.4 else "2" if frac < 0.6 else "3" if frac < 0.8 else "4"


@dataclass
class SceneJob:
    """What the worker processes need for one scene (inherited through fork)."""

    scene: Scene
    rig: RigSpec
    timeline: Timeline
    root: Path
    log_name: str
    key_paths: list[list[str]] = field(default_factory=list)  # (C, F) relative image paths
    sweeps: bool = True  # False: only the cameras' key frames are rendered and recorded

    def writes(self, cam: int, frame: int) -> bool:
        return self.sweeps or self.timeline.is_key(cam, frame)

    def image_path(self, cam: int, frame: int) -> str:
        return self.key_paths[cam][frame]

    def lidar_path(self, sample: int) -> str:
        t_us = int(self.timeline.sample_times[sample]) // 1000
        channel = self.rig.lidar.channel
        return f"samples/{channel}/{self.log_name}__{channel}__{t_us}.pcd.bin"


_JOB: SceneJob | None = None


def _job() -> SceneJob:
    assert _JOB is not None, "no scene job set"
    return _JOB


def _write_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def _render_frame(frame: int) -> tuple[str, int, dict[int, dict[int, tuple[int, int]]]]:
    """Render and save frame ``frame`` of every camera; visibility stats of the key frames."""
    job = _job()
    stats: dict[int, dict[int, tuple[int, int]]] = {}
    for c, cam in enumerate(job.rig.cameras):
        if not job.writes(c, frame):
            continue
        out = render_camera(job.scene, cam, int(job.timeline.camera_times[c, frame]))
        ok, jpg = cv2.imencode(
            ".jpg", cv2.cvtColor(out.rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY]
        )
        if not ok:
            raise RuntimeError("JPEG encoding failed")
        _write_bytes(job.root / job.image_path(c, frame), jpg.tobytes())
        if job.timeline.is_key(c, frame):
            visible = out.visible_pixels()
            stats[c] = {i: (visible.get(i, 0), n) for i, n in out.alone.items()}
    return "camera", frame, stats


def lidar_pose(scene: Scene, rig: RigSpec, t_ns: int) -> Transform:
    return scene.ego_pose(t_ns) @ rig.lidar.to_base()


def _scan_sample(sample: int) -> tuple[str, int, dict[int, int]]:
    """Simulate and save the lidar key frame of ``sample``; points per object id."""
    job = _job()
    t_ns = int(job.timeline.sample_times[sample])
    ids, classes, boxes = job.scene.objects_at(t_ns)
    rng = np.random.default_rng([job.scene.seed, sample, 0x6C6964])
    sweep = lidar.scan(lidar_pose(job.scene, job.rig, t_ns).matrix(), boxes, ids, classes, rng)
    _write_bytes(job.root / job.lidar_path(sample), sweep.points.astype(np.float32).tobytes())
    counts = sweep.counts(ids)
    return "lidar", sample, {int(i): int(n) for i, n in zip(ids, counts, strict=True) if n > 0}


def _run(tasks: list[tuple[Callable[[int], Any], int]], workers: int, bar: tqdm) -> Iterator[Any]:
    """Run tasks, in worker processes forked with the current job when ``workers`` > 1."""
    if workers <= 1:
        for fn, arg in tasks:
            yield fn(arg)
            bar.update(1)
        return
    # One process per core already, so OpenCV's own thread pool would only
    # oversubscribe. Set before forking: reconfiguring it in a forked child can hang.
    threads = cv2.getNumThreads()
    cv2.setNumThreads(1)
    try:
        with multiprocessing.get_context("fork").Pool(workers) as pool:
            for result in pool.imap_unordered(_call, tasks, chunksize=2):
                yield result
                bar.update(1)
    finally:
        cv2.setNumThreads(threads)


def _call(task: tuple[Callable[[int], Any], int]) -> Any:
    fn, arg = task
    return fn(arg)


class Tables:
    """The nuScenes tables, filled scene by scene."""

    NAMES = (
        "attribute", "calibrated_sensor", "category", "ego_pose", "instance", "log", "map",
        "sample", "sample_annotation", "sample_data", "scene", "sensor", "visibility",
    )  # fmt: skip

    def __init__(self, rig: RigSpec) -> None:
        self.rows: dict[str, list[dict[str, Any]]] = {name: [] for name in self.NAMES}
        self.rows["category"] = metadata.categories()
        self.rows["attribute"] = metadata.attributes()
        self.rows["visibility"] = metadata.visibilities()
        self.rows["sensor"] = metadata.sensors(rig)

    def write(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        for name, rows in self.rows.items():
            (folder / f"{name}.json").write_text(json.dumps(rows, indent=1), encoding="utf-8")


def _link(rows: list[dict[str, Any]]) -> None:
    """Fill prev/next of records listed in time order."""
    for a, b in itertools.pairwise(rows):
        a["next"], b["prev"] = b["token"], a["token"]


def _pose_record(tok: str, t_ns: int, pose: Transform) -> dict[str, Any]:
    return {
        "token": tok,
        "timestamp": t_ns // 1000,
        "rotation": pose.rotation.elements.tolist(),
        "translation": pose.translation.tolist(),
    }


def _scene_tables(
    tables: Tables,
    job: SceneJob,
    key: str,
    name: str,
    cam_stats: dict[int, dict[int, dict[int, tuple[int, int]]]],
    lidar_counts: dict[int, dict[int, int]],
) -> None:
    """Append the records of one rendered scene."""
    scene, rig, tl = job.scene, job.rig, job.timeline
    rows = tables.rows
    log_token, scene_token = token(key, "log"), token(key, "scene")
    start = dt.datetime.fromtimestamp(int(tl.sample_times[0]) / 1e9, tz=dt.UTC)
    rows["log"].append(
        {
            "token": log_token,
            "logfile": job.log_name,
            "vehicle": "synth",
            "date_captured": start.strftime("%Y-%m-%d"),
            "location": "synth-city",
        }
    )
    sample_tokens = [token(key, "sample", j) for j in range(tl.num_samples)]
    samples = [
        {
            "token": sample_tokens[j],
            "timestamp": int(t) // 1000,
            "prev": "",
            "next": "",
            "scene_token": scene_token,
        }
        for j, t in enumerate(tl.sample_times)
    ]
    _link(samples)
    rows["sample"] += samples
    rows["scene"].append(
        {
            "token": scene_token,
            "log_token": log_token,
            "nbr_samples": tl.num_samples,
            "first_sample_token": sample_tokens[0],
            "last_sample_token": sample_tokens[-1],
            "name": name,
            "description": f"synthetic, {scene.scenario}, {scene.street.layout.lanes} lane(s) per direction",
        }
    )

    def add_channel(channel: str, calib: dict[str, Any], records: list[dict[str, Any]]) -> None:
        calib_token = token(key, "calibrated_sensor", channel)
        rows["calibrated_sensor"].append(
            {"token": calib_token, "sensor_token": metadata.sensor_token(channel), **calib}
        )
        for rec in records:
            rec["calibrated_sensor_token"] = calib_token
        _link(records)
        rows["sample_data"] += records

    for c, cam in enumerate(rig.cameras):
        records = []
        for f in range(tl.num_frames):
            if not job.writes(c, f):
                continue
            t_ns = int(tl.camera_times[c, f])
            sd_token = token(key, "sample_data", cam.channel, f)
            rows["ego_pose"].append(_pose_record(sd_token, t_ns, scene.ego_pose(t_ns)))
            records.append(
                {
                    "token": sd_token,
                    "sample_token": sample_tokens[int(tl.sample_of[c, f])],
                    "ego_pose_token": sd_token,
                    "timestamp": t_ns // 1000,
                    "fileformat": "jpg",
                    "is_key_frame": tl.is_key(c, f),
                    "height": cam.height,
                    "width": cam.width,
                    "filename": job.image_path(c, f),
                    "prev": "",
                    "next": "",
                }
            )
        add_channel(cam.channel, metadata.calibration(cam.to_base(), cam.intrinsics()), records)

    records = []
    for j in range(tl.num_samples):
        t_ns = int(tl.sample_times[j])
        sd_token = token(key, "sample_data", rig.lidar.channel, j)
        rows["ego_pose"].append(_pose_record(sd_token, t_ns, scene.ego_pose(t_ns)))
        records.append(
            {
                "token": sd_token,
                "sample_token": sample_tokens[j],
                "ego_pose_token": sd_token,
                "timestamp": t_ns // 1000,
                "fileformat": "pcd",
                "is_key_frame": True,
                "height": 0,
                "width": 0,
                "filename": job.lidar_path(j),
                "prev": "",
                "next": "",
            }
        )
    add_channel(rig.lidar.channel, metadata.calibration(rig.lidar.to_base(), None), records)
    _annotations(tables, job, key, sample_tokens, cam_stats, lidar_counts)


def _annotations(
    tables: Tables,
    job: SceneJob,
    key: str,
    sample_tokens: list[str],
    cam_stats: dict[int, dict[int, dict[int, tuple[int, int]]]],
    lidar_counts: dict[int, dict[int, int]],
) -> None:
    """sample_annotation and instance records of the objects near the ego at each key frame."""
    scene, tl = job.scene, job.timeline
    per_instance: dict[int, list[dict[str, Any]]] = {}
    rows = tables.rows
    for j, t in enumerate(tl.sample_times):
        t_ns = int(t)
        ids, _, boxes = scene.objects_at(t_ns)
        attrs = scene.attributes_at(t_ns)
        ego = scene.ego_pose(t_ns).translation
        near = np.hypot(boxes[:, 0] - ego[0], boxes[:, 1] - ego[1]) <= ANNOTATION_RADIUS
        for i in np.flatnonzero(near):
            obj = int(ids[i])
            # Visibility over all six key-frame images, as nuScenes defines it.
            seen = [stats.get(obj, (0, 0)) for stats in cam_stats[j].values()]
            fields = to_nuscenes(boxes[i])
            rec = {
                "token": token(key, "sample_annotation", j, obj),
                "sample_token": sample_tokens[j],
                "instance_token": token(key, "instance", obj),
                "visibility_token": visibility_level(sum(s[0] for s in seen), sum(s[1] for s in seen)),
                "attribute_tokens": [metadata.attribute_token(attrs[i])],
                "translation": fields["translation"],
                "size": fields["size"],
                "rotation": fields["rotation"],
                "prev": "",
                "next": "",
                "num_lidar_pts": lidar_counts[j].get(obj, 0),
                "num_radar_pts": 0,
            }
            per_instance.setdefault(obj, []).append(rec)
            rows["sample_annotation"].append(rec)
    for obj in sorted(per_instance):
        recs = per_instance[obj]
        _link(recs)
        rows["instance"].append(
            {
                "token": token(key, "instance", obj),
                "category_token": metadata.category_token(CATEGORY_NAMES[int(scene.classes[obj])]),
                "nbr_annotations": len(recs),
                "first_annotation_token": recs[0]["token"],
                "last_annotation_token": recs[-1]["token"],
            }
        )


def _image_paths(rig: RigSpec, tl: Timeline, log_name: str) -> list[list[str]]:
    paths = []
    for c, cam in enumerate(rig.cameras):
        row = []
        for f in range(tl.num_frames):
            folder = "samples" if tl.is_key(c, f) else "sweeps"
            t_us = int(tl.camera_times[c, f]) // 1000
            row.append(f"{folder}/{cam.channel}/{log_name}__{cam.channel}__{t_us}.jpg")
        paths.append(row)
    return paths


def _frames_to_render(tl: Timeline, sweeps: bool) -> set[int]:
    return set(range(tl.num_frames)) if sweeps else {int(f) for f in tl.key_frame.ravel()}


def _clear_tables(root: Path) -> None:
    """Remove a previous table folder first, so that a half-written rerun never looks complete."""
    remove_stale_partials(root)  # table folders that a kill left half-written or half-deleted
    target = root / VERSION
    if target.exists():
        trash = temp_dir(target)
        target.rename(trash / VERSION)
        shutil.rmtree(trash)
    elif any((root / folder).is_dir() for folder in ("samples", "sweeps")):
        print(
            f"syncl synth: {root} has images but no tables (an interrupted run): writing it anew",
            file=sys.stderr,
        )


def write_dataset(
    out: str | os.PathLike[str],
    scenes: int,
    seed: int = 0,
    split: str = "train",
    duration_s: float = 20.0,
    workers: int = 1,
    rig: str | RigSpec = "rig_nuscenes",
    progress: bool = True,
    sweeps: bool = True,
) -> Path:
    """Simulate, render and write ``scenes`` scenes under ``out``; returns the table folder.

    ``sweeps=False`` renders only the cameras' key frames (about six times
    faster): enough for training and offline tracking, not for bags.
    """
    spec = load_rig(rig) if isinstance(rig, str) else rig
    names = scene_names(split)
    if not 1 <= scenes <= len(names):
        raise ValueError(f"--scenes must be in 1..{len(names)} for split {split!r}, got {scenes}")
    num_samples = max(1, round(duration_s * spec.keyframe_rate_hz))
    root = Path(out)
    root.mkdir(parents=True, exist_ok=True)
    _clear_tables(root)
    tables = Tables(spec)
    per_scene = num_samples * (1 + (round(spec.camera_rate_hz / spec.keyframe_rate_hz) if sweeps else 1))
    global _JOB
    with tqdm(total=scenes * per_scene, unit="frame", desc="synth", disable=not progress) as bar:
        for i in range(scenes):
            key = f"{seed}/{split}/{i}"
            world = scene_world(seed, split, i, duration_s)
            tl = plan(spec, world.start_ns, num_samples)
            log = log_name(seed, split, i, duration_s)
            _JOB = SceneJob(world, spec, tl, root, log, _image_paths(spec, tl, log), sweeps)
            prepare_rig(world, spec)  # paint the ground and the skies once, before the workers fork
            tasks: list[tuple[Callable[[int], Any], int]] = [(_scan_sample, j) for j in range(num_samples)]
            tasks += [(_render_frame, f) for f in sorted(_frames_to_render(tl, sweeps))]
            cam_stats: dict[int, dict[int, dict[int, tuple[int, int]]]] = {j: {} for j in range(num_samples)}
            lidar_counts: dict[int, dict[int, int]] = {}
            for kind, index, payload in _run(tasks, workers, bar):
                if kind == "lidar":
                    lidar_counts[index] = payload
                    continue
                for c, stats in payload.items():
                    # Key frames are unique per camera and sample.
                    cam_stats[int(np.flatnonzero(tl.key_frame[c] == index)[0])][c] = stats
            _scene_tables(tables, _JOB, key, names[i], cam_stats, lidar_counts)
            _JOB = None
    metadata.write_map(root, tables.rows, token(seed, split, "map"))
    staging = temp_dir(root / VERSION)
    tables.write(staging)
    staging.rename(root / VERSION)
    return root / VERSION
