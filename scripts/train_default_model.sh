#!/usr/bin/env bash
# The shipped default model, from nothing: synthetic data -> SynCL training -> learning curve
# -> released weights -> official tracking metrics on held-out val scenes.
#
#   scripts/train_default_model.sh                 # CPU (or the GPU when one is visible)
#   DATA=/big/disk RUN=runs/tiny2 scripts/train_default_model.sh --set train.seed=1
#
# Extra arguments go to `syncl train` (e.g. --device cuda, --max-steps N, --set KEY=VALUE).
# Re-running resumes: datasets that exist are kept, training continues from RUN/last.pt.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${DATA:-data}
RUN=${RUN:-runs/tiny}
OUT=${OUT:-$RUN/release}
PY=${PYTHON:-.venv/bin/python}
syncl() { "$PY" -m syncl_ros.cli "$@"; }

# Key frames only: training and offline tracking never read the camera sweeps.
[ -d "$DATA/synth_train/v1.0-trainval" ] ||
    syncl synth "$DATA/synth_train" --split train --scenes 80 --seed 0 --no-sweeps
[ -d "$DATA/synth_val/v1.0-trainval" ] ||
    syncl synth "$DATA/synth_val" --split val --scenes 12 --seed 0 --no-sweeps

syncl train --config tiny --dataroot "$DATA/synth_train" --out "$RUN" --resume --no-progress "$@"
"$PY" -m syncl_ros.training.curve "$RUN" --dataroot "$DATA/synth_val" --plot "$RUN/learning_curve.png"
syncl release "$RUN/last.pt" "$OUT/tiny_synth.pt" \
    --note "data=syncl synth seed 0: 80 train scenes; scored on 12 val scenes (seed 0)"
syncl track "$DATA/synth_val" --split val --model "$OUT/tiny_synth.pt" --out "$OUT/val_results.json" --no-progress
syncl eval "$OUT/val_results.json" --dataroot "$DATA/synth_val" --split val --out "$OUT/val_eval"
echo "released weights: $OUT/tiny_synth.pt (copy to syncl_ros/models/tiny_synth.pt to make it the default)"
