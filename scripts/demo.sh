#!/usr/bin/env bash
# The main job: synthetic scene -> rosbag2 -> tracker node over DDS -> metrics and pictures.
set -euo pipefail
echo "make demo: the end-to-end demo needs the tracker node and a trained default model," >&2
echo "which this version of syncl_ros does not ship yet; nothing was run." >&2
exit 1
