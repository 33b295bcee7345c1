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
#      DET_STEPS at lr 5e-4, then DET_MORE_STEPS more from there at lr 3e-4 (a second cosine cycle);
#   2. tracking: 3-frame clips with the SynCL strategy (config/tiny.yaml), from stage 1's weights.
# The released weights are RELEASE, by default stage 1's: on the CPU budget measured so far the
# tracking stage has not yet beaten the detector (docs/training.md); RELEASE=$RUN/track/last.pt
# releases the tracker instead.
# Extra arguments go to every `syncl train` call (e.g. --device cuda, --set KEY=VALUE).
# Re-running resumes: datasets that exist are kept, each stage continues from its last.pt.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${DATA:-data}
RUN=${RUN:-runs/tiny}
DET_STEPS=${DET_STEPS:-7000}
DET_MORE_STEPS=${DET_MORE_STEPS:-6000}
TRACK_STEPS=${TRACK_STEPS:-400}
RELEASE=${RELEASE:-$RUN/det2/last.pt}
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
    --max-steps "$DET_STEPS" --set train.snapshot_every=$((DET_STEPS / 4)) --set train.lr=0.0005 \
    --set train.warmup_steps=300 --set train.checkpoint_every=250 "${DETECTION[@]}" "$@"
syncl train --config tiny --dataroot "$DATA/synth_train" --out "$RUN/det2" --resume --no-progress \
    --init "$RUN/det/last.pt" --max-steps "$DET_MORE_STEPS" --set train.snapshot_every=$((DET_MORE_STEPS / 2)) \
    --set train.lr=0.0003 --set train.warmup_steps=100 --set train.seed=1 \
    --set train.checkpoint_every=250 "${DETECTION[@]}" "$@"
syncl train --config tiny --dataroot "$DATA/synth_train" --out "$RUN/track" --resume --no-progress \
    --init "$RUN/det2/last.pt" --max-steps "$TRACK_STEPS" --set train.snapshot_every=$((TRACK_STEPS / 2)) "$@"

"$PY" -m syncl_ros.training.curve "$RUN/det" "$RUN/det2" "$RUN/track" --dataroot "$DATA/synth_val" \
    --greedy "$RUN/det" --greedy "$RUN/det2" --plot "$RUN/learning_curve.png"
syncl release "$RELEASE" "$OUT/tiny_synth.pt" \
    --note "data=syncl synth seed 0: 80 train scenes; scored on 12 val scenes (seed 0)"
for tracker in queries greedy; do
    syncl track "$DATA/synth_val" --split val --model "$OUT/tiny_synth.pt" --tracker "$tracker" \
        --out "$OUT/val_results_$tracker.json" --no-progress
    syncl eval "$OUT/val_results_$tracker.json" --dataroot "$DATA/synth_val" --split val \
        --out "$OUT/val_eval_$tracker"
done
echo "released weights: $OUT/tiny_synth.pt (copy to syncl_ros/models/tiny_synth.pt to make it the default)"
