"""`syncl play BAG`: replay a rosbag2 bag through rclpy with /clock.

Also runnable on its own: ``python -m syncl_ros.ros.play_cli BAG [options]``.
Everything after ``--ros-args`` goes to rclpy (remaps, parameters, log levels).
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path
from types import FrameType
from typing import Any

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def configure_parser(p: argparse.ArgumentParser) -> None:
    p.add_argument("bag", type=Path, help="rosbag2 folder (MCAP or sqlite3 storage)")
    p.add_argument("--rate", type=float, default=1.0, help="playback speed factor (default 1.0)")
    p.add_argument("--loop", action="store_true", help="start over at the end until Ctrl-C")
    p.add_argument(
        "--start-offset", type=float, default=0.0, metavar="S", help="skip the first S seconds of the bag"
    )
    p.add_argument(
        "--topics", nargs="+", metavar="T", help="play only these topics (put BAG before this option)"
    )
    p.add_argument(
        "--clock-hz", type=float, default=100.0, metavar="H", help="/clock publishing rate (default 100)"
    )
    p.add_argument("--no-clock", action="store_true", help="do not publish /clock (replay the bag's own)")
    p.add_argument(
        "--wait-for-subscribers",
        type=float,
        default=0.0,
        metavar="S",
        help="before playing, wait up to S seconds until every topic has a subscriber",
    )
    p.add_argument(
        "--min-subscribers",
        type=int,
        default=1,
        metavar="N",
        help="with --wait-for-subscribers: wait for N subscribers per topic (default 1; e.g. 2 for a "
        "node and a recorder, so that neither misses the first messages)",
    )
    p.add_argument(
        "--faults",
        type=int,
        default=None,
        metavar="SEED",
        help="inject seeded random faults (corrupt, truncated or wrong-size images, silent cameras, "
        "NaN in /tf, time jumps, bursts at twice the rate); for soak tests",
    )
    p.add_argument(
        "--fault-every", type=float, default=5.0, metavar="S", help="mean seconds between faults (default 5)"
    )
    p.add_argument(
        "--fault-log", type=Path, default=None, help="append one JSON line per injected fault here"
    )
    p.add_argument(
        "--ros-args",
        dest="ros_args",
        nargs=argparse.REMAINDER,
        default=[],
        help="arguments for rclpy (everything after it), e.g. --ros-args -r __node:=player",
    )


def _install_stop_handlers(stop: threading.Event) -> dict[int, Any]:
    """SIGINT / SIGTERM set ``stop`` for a clean shutdown; a second SIGINT interrupts at once."""

    def on_signal(signum: int, frame: FrameType | None) -> None:
        if stop.is_set() and signum == signal.SIGINT:
            raise KeyboardInterrupt
        stop.set()

    previous: dict[int, Any] = {}
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGINT, signal.SIGTERM):
            previous[signum] = signal.signal(signum, on_signal)
    return previous


def main(args: argparse.Namespace) -> int:
    from syncl_ros.ros.faults import FaultSettings
    from syncl_ros.ros.player import PlayOptions, play

    try:
        faults = None if args.faults is None else FaultSettings(args.faults, every_s=args.fault_every)
        options = PlayOptions(
            bag=args.bag,
            rate=args.rate,
            loop=args.loop,
            start_offset_s=args.start_offset,
            topics=args.topics,
            clock_hz=args.clock_hz,
            publish_clock=not args.no_clock,
            wait_for_subscribers_s=args.wait_for_subscribers,
            min_subscribers=args.min_subscribers,
            ros_args=list(args.ros_args or []),
            faults=faults,
            fault_log=args.fault_log,
        )
    except ValueError as err:
        print(f"syncl play: error: {err}", file=sys.stderr)
        return EXIT_USAGE
    stop = threading.Event()
    previous = _install_stop_handlers(stop)
    try:
        stats = play(options, stop)
    except ValueError as err:
        print(f"syncl play: error: {err}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print("syncl play: interrupted", file=sys.stderr)
        return EXIT_FAILED
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    print(f"syncl play: {stats.summary(options.rate)}", flush=True)
    return EXIT_OK


def standalone(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="syncl play", description=__doc__.splitlines()[0])
    configure_parser(parser)
    return main(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(standalone())
