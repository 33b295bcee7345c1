#!/usr/bin/env bash
# The main job: synthetic scene -> rosbag2 -> tracker node over DDS -> metrics and pictures.
set -euo pipefail
echo "make demo: the end-to-end demo runs the shipped default model, which this version of" >&2
echo "syncl_ros does not ship yet (it is being trained); nothing was run." >&2
echo "Meanwhile: syncl synth, syncl train, syncl track --model, syncl eval and syncl node all work." >&2
exit 1
