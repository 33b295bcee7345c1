"""``syncl convert``: write one nuScenes scene to a rosbag2 bag for ``ros2 bag play``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from syncl_ros.data.convert import (
    DEFAULT_CLOCK_HZ,
    DEFAULT_VERSION,
    STORAGES,
    ConvertError,
    ConvertStats,
    TopicNames,
    convert_scene,
)

_DEFAULTS = TopicNames()
_EPILOG = f"""\
topics (defaults; {{channel}} is the nuScenes channel, e.g. CAM_FRONT):
  {_DEFAULTS.image:34} sensor_msgs/CompressedImage, every camera sweep (stored JPEG)
  {_DEFAULTS.camera_info:34} sensor_msgs/CameraInfo, with every image
  {_DEFAULTS.tf_static:34} tf2_msgs/TFMessage, latched: base_link -> <channel>_optical, lidar_top
  {_DEFAULTS.tf:34} tf2_msgs/TFMessage: map -> base_link at every ego pose
  {_DEFAULTS.odom:34} nav_msgs/Odometry: map -> base_link, twist in base_link
  {_DEFAULTS.clock:34} rosgraph_msgs/Clock
  {_DEFAULTS.tracks:34} syncl_ros/TrackedObject3DArray, ground truth at key frames (map)

example:
  syncl convert data/nuscenes --version v1.0-mini --scene scene-0061 --out bags/scene-0061
  ros2 bag play bags/scene-0061   # the bag carries /clock: run consumers with use_sim_time:=true
"""

# (option, TopicNames field, what it names)
_TOPIC_OPTIONS = (
    ("--image-topic", "image", "compressed images, a template over {channel}"),
    ("--camera-info-topic", "camera_info", "camera infos, a template over {channel}"),
    ("--tf-topic", "tf", "dynamic transforms"),
    ("--tf-static-topic", "tf_static", "static transforms"),
    ("--odom-topic", "odom", "ego odometry"),
    ("--clock-topic", "clock", "clock"),
    ("--tracks-topic", "tracks", "ground-truth tracks"),
)


def configure_parser(p: argparse.ArgumentParser) -> None:
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.epilog = _EPILOG
    p.add_argument("dataroot", type=Path, help="nuScenes dataset root (holds samples/, sweeps/, <version>/)")
    p.add_argument("--version", default=DEFAULT_VERSION, help="table version (default: %(default)s)")
    p.add_argument("--scene", required=True, help="scene name, e.g. scene-0061")
    p.add_argument("--out", required=True, type=Path, help="bag directory to create")
    p.add_argument(
        "--storage", choices=STORAGES, default="mcap", help="storage plugin (default: %(default)s)"
    )
    p.add_argument("--overwrite", action="store_true", help="replace an existing bag at --out")
    p.add_argument(
        "--clock-hz",
        type=float,
        default=DEFAULT_CLOCK_HZ,
        help="regular /clock rate on top of a tick at every message stamp; 0 for stamps only "
        "(default: %(default)s)",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    topics = p.add_argument_group("topic names")
    for option, name, what in _TOPIC_OPTIONS:
        topics.add_argument(
            option,
            dest=f"topic_{name}",
            metavar="TOPIC",
            default=getattr(_DEFAULTS, name),
            help=f"{what} (default: %(default)s)",
        )


def _topics(args: argparse.Namespace) -> TopicNames:
    return TopicNames(**{name: getattr(args, f"topic_{name}") for _, name, _ in _TOPIC_OPTIONS})


def _report(stats: ConvertStats) -> str:
    lines = [
        f"wrote {stats.out} ({stats.storage}): {stats.total_messages} messages, "
        f"{stats.bytes / 1e6:.1f} MB, {stats.duration_s:.1f} s of data in {stats.seconds:.1f} s"
    ]
    lines += [f"  {topic:40} {count:7d}" for topic, count in sorted(stats.messages.items())]
    if stats.skipped_annotations:
        lines.append(f"  ({stats.skipped_annotations} annotations outside the ten detection classes skipped)")
    return "\n".join(lines)


def main(args: argparse.Namespace) -> int:
    try:
        topics = _topics(args)
        stats = convert_scene(
            args.dataroot,
            args.version,
            args.scene,
            args.out,
            storage=args.storage,
            topics=topics,
            overwrite=args.overwrite,
            progress=not args.no_progress,
            clock_hz=args.clock_hz,
        )
    except (ConvertError, FileExistsError, FileNotFoundError, ValueError) as err:
        print(f"syncl convert: error: {err}", file=sys.stderr)
        return 1
    print(_report(stats))
    return 0
