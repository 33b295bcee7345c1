#!/usr/bin/env bash
# The main job: synthetic scene -> rosbag2 -> tracker node over DDS -> metrics and pictures.
set -euo pipefail
cd "$(dirname "$0")/.."
export ROS_AUTOMATIC_DISCOVERY_RANGE=${ROS_AUTOMATIC_DISCOVERY_RANGE:-LOCALHOST}
exec .venv/bin/python -m syncl_ros.tools.demo --out demo_out "$@"
