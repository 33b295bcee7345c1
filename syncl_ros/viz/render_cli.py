"""`syncl render RESULTS --dataroot D --scene NAME --out DIR [--video]`.

One picture per key frame of a scene: the six cameras with every track's box projected
(colour per class, id and speed; ground truth in grey unless --no-gt), laid out as the rig
sits, beside the bird's-eye view. RESULTS is a nuScenes tracking results JSON or a
recording of the node (rosbag2 folder or .mcap) holding its ~/tracks. Writes
DIR/frame_NNNN.png and, with --video, DIR/overlay.mp4 (one key frame per video frame).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import IO, Any

import cv2
from tqdm import tqdm

from syncl_ros.atomic import write_atomic
from syncl_ros.data.tables import require_tables
from syncl_ros.viz.overlay import Image
from syncl_ros.viz.sources import TRACKS_TOPIC, SourceError, load_tracks

VIDEO = "overlay.mp4"


def configure_parser(p: argparse.ArgumentParser) -> None:
    p.add_argument("results", type=Path, help="tracking results JSON, or a recording (bag folder / .mcap)")
    p.add_argument("--dataroot", type=Path, required=True, help="nuScenes-format dataset root")
    p.add_argument("--version", default="v1.0-trainval", help="dataset version (default: %(default)s)")
    p.add_argument("--scene", default=None, help="scene name (default: the first scene with tracks)")
    p.add_argument("--out", type=Path, required=True, help="output folder")
    p.add_argument("--video", action="store_true", help=f"also write {VIDEO}")
    p.add_argument(
        "--fps", type=float, default=2.0, help="video frames per second (default: 2, key-frame rate)"
    )
    p.add_argument("--no-gt", action="store_true", help="do not draw ground truth")
    p.add_argument("--tile-width", type=int, default=400, help="width of one camera tile (default: 400)")
    p.add_argument(
        "--topic", default=TRACKS_TOPIC, help=f"tracks topic in a recording (default: {TRACKS_TOPIC})"
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def write_png(path: Path, image: Image) -> Path:
    ok, data = cv2.imencode(".png", image, [cv2.IMWRITE_PNG_COMPRESSION, 9])
    if not ok:
        raise OSError(f"could not encode {path}")

    def write(f: IO[Any]) -> None:
        f.write(data.tobytes())

    return write_atomic(path, write)


def write_video(frames: Iterable[Image], path: Path, fps: float) -> int:
    """MP4 (mp4v) of the frames, written beside ``path`` and renamed when complete; frame count."""
    tmp = path.with_name(f".{path.stem}.partial{path.suffix}")
    writer: Any = None
    count = 0
    try:
        for frame in frames:
            if writer is None:
                size = (frame.shape[1], frame.shape[0])
                writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter.fourcc(*"mp4v"), fps, size)
                if not writer.isOpened():
                    raise OSError(f"OpenCV cannot write {tmp}")
            writer.write(frame)
            count += 1
    finally:
        if writer is not None:
            writer.release()
    if count:
        os.replace(tmp, path)
    return count


def _pick_scene(nusc: Any, tracks: dict[str, list[Any]], wanted: str | None) -> str:
    if wanted is not None:
        return wanted
    for scene in nusc.scene:
        token = scene["first_sample_token"]
        while token:
            if tracks.get(token):
                return str(scene["name"])
            token = nusc.get("sample", token)["next"]
    raise SourceError("no tracks at any key frame of this dataset (wrong --dataroot or --version?)")


def render_scene(
    nusc: Any,
    tracks: dict[str, list[Any]],
    scene: str,
    out: Path,
    video: bool,
    args: argparse.Namespace,
) -> tuple[list[Path], int]:
    """Frames of one scene as PNGs (and the video): (paths, video frames)."""
    from syncl_ros.viz.scene import render_sample, scene_samples

    samples = scene_samples(nusc, scene)
    paths: list[Path] = []

    def frames() -> Iterable[Image]:
        for i, sample in enumerate(tqdm(samples, desc=f"render {scene}", disable=args.no_progress)):
            image = render_sample(
                nusc, sample, tracks.get(sample["token"], []), not args.no_gt, args.tile_width
            )
            paths.append(write_png(out / f"frame_{i:04d}.png", image))
            yield image

    if video:
        return paths, write_video(frames(), out / VIDEO, args.fps)
    for _ in frames():
        pass
    return paths, 0


def main(args: argparse.Namespace) -> int:
    from nuscenes.nuscenes import NuScenes

    try:
        require_tables(args.dataroot, args.version)
    except FileNotFoundError as err:
        print(f"syncl render: {err}", file=sys.stderr)
        return 2
    nusc = NuScenes(args.version, str(args.dataroot), verbose=False)
    try:
        tracks = load_tracks(args.results, nusc, args.topic)
        scene = _pick_scene(nusc, tracks, args.scene)
        paths, frames = render_scene(nusc, tracks, scene, args.out, args.video, args)
    except (SourceError, ValueError) as err:
        print(f"syncl render: {err}", file=sys.stderr)
        return 2
    print(f"syncl render: {len(paths)} frames of {scene} in {args.out}" + (f", {VIDEO}" if frames else ""))
    return 0
