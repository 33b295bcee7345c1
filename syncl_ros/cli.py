"""The `syncl` command line: one entry point, one subcommand per job.

Each implemented subcommand lives in its own module exposing
`configure_parser(parser)` and `main(args) -> int`; modules are imported only
when their subcommand runs, so `syncl --help` stays fast (no torch import).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from importlib import import_module

NOT_IMPLEMENTED_EXIT = 2


@dataclass(frozen=True)
class Command:
    help: str
    module: str | None  # None: not implemented in this version


COMMANDS: dict[str, Command] = {
    "synth": Command(
        "generate a synthetic six-camera dataset in nuScenes format", "syncl_ros.data.synth.cli"
    ),
    "convert": Command(
        "convert a nuScenes scene to a rosbag2 bag (MCAP or sqlite3)", "syncl_ros.data.convert_cli"
    ),
    "play": Command("replay a rosbag2 bag through rclpy with /clock", "syncl_ros.ros.play_cli"),
    "track": Command(
        "run the tracker offline over a split; write nuScenes tracking results",
        "syncl_ros.pipeline.track_cli",
    ),
    "eval": Command("score tracking results with the official nuScenes metrics", "syncl_ros.eval.cli"),
    "train": Command("train the tracker with the SynCL strategy", "syncl_ros.training.cli"),
    "fit-depth": Command(
        "give a trained model the fine center-depth head (stride-8 level) and fit it alone",
        "syncl_ros.training.fine_depth_fit",
    ),
    "release": Command(
        "strip a training checkpoint to the weights a deployment needs", "syncl_ros.experiment.release_cli"
    ),
    "export": Command(
        "export the tracker to ONNX (image encoder + decoder head)", "syncl_ros.inference.export_cli"
    ),
    "build-engine": Command(
        "build and cache TensorRT engines from the exported ONNX", "syncl_ros.inference.build_engine_cli"
    ),
    "render": Command(
        "draw tracks into the six cameras beside the bird's-eye view (pictures, video)",
        "syncl_ros.viz.render_cli",
    ),
    "record": Command(
        "record topics (cameras, TF, the node's outputs) to an MCAP that Foxglove opens",
        "syncl_ros.ros.record_cli",
    ),
    "bench": Command("measure speed and memory (backends, node)", "syncl_ros.tools.bench_cli"),
    "node": Command("run the ROS 2 tracker node", "syncl_ros.ros.node_cli"),
}


def build_parser(selected: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="syncl", description="syncl_ros: six-camera 3D multi-object tracking for ROS 2."
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, command in COMMANDS.items():
        p = sub.add_parser(name, help=command.help, description=command.help)
        if name == selected and command.module is not None:
            import_module(command.module).configure_parser(p)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    selected = next((a for a in argv if not a.startswith("-")), None)
    command = COMMANDS.get(selected or "")
    if command is not None and command.module is None:
        print(f"syncl {selected}: not implemented in this version of syncl_ros", file=sys.stderr)
        return NOT_IMPLEMENTED_EXIT
    args = build_parser(selected).parse_args(argv)
    result: int = import_module(COMMANDS[args.command].module or "").main(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
