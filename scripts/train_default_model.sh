#!/usr/bin/env bash
# The shipped default model, from nothing: synthetic data -> detection pretraining -> SynCL
# tracking training -> learning curve -> released weights -> official metrics on held-out val.
#
#   scripts/train_default_model.sh                      # CPU (or the GPU when one is visible)
#   DET_STEPS=20000 TRACK_STEPS=6000 scripts/train_default_model.sh --device cuda
#   DATA=/big/disk RUN=runs/tiny2 scripts/train_default_model.sh --set train.seed=1
#
# Two stages, as PF-Track trains from a pretrained single-frame detector:
#   1. detection: single key frames (clip_length 1), so every object is new-born and supervises
#      the detection queries on every step (in 3-frame clips only the first frame does);
#   2. tracking: 3-frame clips with the SynCL strategy (config/tiny.yaml), from stage 1's weights.
# Extra arguments go to both `syncl train` calls (e.g. --device cuda, --set KEY=VALUE).
# Re-running resumes: datasets that exist are kept, each stage continues from its last.pt.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${DATA:-data}
RUN=${RUN:-runs/tiny}
DET_STEPS=${DET_STEPS:-7000}
TRACK_STEPS=${TRACK_STEPS:-1000}
OUT=${OUT:-$RUN/release}
PY=${PYTHON:-.venv/bin/python}
syncl() { "$PY" -m syncl_ros.cli "$@"; }

# Key frames only: training and offline tracking never read the camera sweeps.
[ -d "$DATA/synth_train/v1.0-trainval" ] ||
    syncl synth "$DATA/synth_train" --split train --scenes 80 --seed 0 --no-sweeps
[ -d "$DATA/synth_val/v1.0-trainval" ] ||
    syncl synth "$DATA/synth_val" --split val --scenes 12 --seed 0 --no-sweeps

DETECTION=(--set train.clip_length=1 --set train.syncl.hybrid_matching=false
           --set train.syncl.gmm_filter=false --set train.syncl.contrastive=false)
syncl train --config tiny --dataroot "$DATA/synth_train" --out "$RUN/det" --resume --no-progress \
    --max-steps "$DET_STEPS" --set train.snapshot_every=$((DET_STEPS / 4)) \
    --set train.checkpoint_every=250 "${DETECTION[@]}" "$@"
syncl train --config tiny --dataroot "$DATA/synth_train" --out "$RUN/track" --resume --no-progress \
    --init "$RUN/det/last.pt" --max-steps "$TRACK_STEPS" --set train.snapshot_every=$((TRACK_STEPS / 2)) "$@"

"$PY" -m syncl_ros.training.curve "$RUN/det" "$RUN/track" --dataroot "$DATA/synth_val" \
    --plot "$RUN/learning_curve.png"
syncl release "$RUN/track/last.pt" "$OUT/tiny_synth.pt" \
    --note "data=syncl synth seed 0: 80 train scenes; scored on 12 val scenes (seed 0)"
syncl track "$DATA/synth_val" --split val --model "$OUT/tiny_synth.pt" --out "$OUT/val_results.json" --no-progress
syncl eval "$OUT/val_results.json" --dataroot "$DATA/synth_val" --split val --out "$OUT/val_eval"
echo "released weights: $OUT/tiny_synth.pt (copy to syncl_ros/models/tiny_synth.pt to make it the default)"
