#!/usr/bin/env bash
# The detector's levers on and off at equal compute: each variant continues the detection stage
# (single key frames, encoder live) from the same detector for the same number of steps, with the
# same seed and schedule, and differs from "base" only in its switches ("data": only in its
# training set, three times the scenes). Scores every run's snapshots on the val split with the
# greedy tracker (AMOTA and detection mAP, tools/curve.py) and writes the range-error table of
# each run's last weights (eval/range_errors.py).
#
#   scripts/detector_ablation.sh                          # every variant, one after the other
#   VARIANTS="base depth" STEPS=3000 JOBS=2 scripts/detector_ablation.sh
#   INIT=none STEPS=6000 LR=0.0005 WARMUP=300 VARIANTS="base no_aids" RUNS=runs/aids_ablation \
#       scripts/detector_ablation.sh                      # the convergence aids, from nothing
#
# INIT defaults to the stage-1 detector (checkpoints/stage1_detector.pt), where the shipped model
# started its tracking stage; INIT=none trains from random weights (the aids speed up a
# detector's start, so "no_aids" means something only from nothing, as the first cycle of
# scripts/train_default_model.sh). Re-running resumes each run from RUNS/<variant>/last.pt.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${DATA:-data}
RUNS=${RUNS:-runs/detector_ablation}
STEPS=${STEPS:-3000}
LR=${LR:-0.0002}
WARMUP=${WARMUP:-100}
SEED=${SEED:-0}
JOBS=${JOBS:-1}
INIT=${INIT:-checkpoints/stage1_detector.pt}
VARIANTS=${VARIANTS:-"base depth depth_pe aug data"}
PY=${PYTHON:-.venv/bin/python}
syncl() { "$PY" -m syncl_ros.cli "$@"; }
# shellcheck source=scripts/lib.sh
. scripts/lib.sh

DETECTION="--set train.clip_length=1 --set train.freeze_encoder=false --set train.track_gate_m=0
--set train.fp_ratio=0 --set train.aids.denoising=true --set train.syncl.hybrid_matching=false
--set train.syncl.gmm_filter=false --set train.syncl.contrastive=false
--set tracker.greedy.score=0.4 --set tracker.greedy.max_age=3"  # the shipped model's tuned greedy tracker
DEPTH="--set model.depth_distribution=true --set train.aids.depth_weight=1.0"

variant_args() {
    case "$1" in
        base) ;;  # the detection stage as it is
        depth)  # per-pixel depth distribution supervised by the lidar (BEVDepth)
            echo "$DEPTH" ;;
        depth_pe)  # ... and the depth-aware position embedding (3DPPE)
            echo "$DEPTH --set model.position_embedding=depth" ;;
        aug)  # BEV and image augmentation with the geometry (BEVDet's BEV values)
            echo "--set train.aug.bev_flip=true --set train.aug.bev_rotate_deg=22.5"
            echo "--set train.aug.bev_scale=0.05 --set train.aug.image_zoom=0.06"
            echo "--set train.aug.image_flip=true" ;;
        data) ;;  # the same switches on three times the scenes (variant_scenes)
        no_aids)  # none of the convergence aids: no dense heads (so no heatmap-seeded queries
            # and no re-anchoring to them), no denoising; the one-to-many head is off in both
            echo "--set model.dense_heads=false --set model.dense_queries=0"
            echo "--set model.track_reanchor_m=0 --set train.aids.denoising=false" ;;
        *) echo "detector_ablation: unknown variant $1" >&2; return 2 ;;
    esac
}

# The "data" variant's training set: 240 scenes of the same seed, the 80 of every other variant
# and 160 more.
variant_scenes() {
    if [ "$1" = data ]; then echo 240; else echo 80; fi
}

for v in $VARIANTS; do variant_args "$v" > /dev/null; done  # an unknown name stops here, not midway
synthetic_data
for v in $VARIANTS; do train_set "$(variant_scenes "$v")" > /dev/null; done  # all written first

train_variant() {
    local name=$1 args data init=()
    args=$(variant_args "$name")
    if [ "$INIT" != none ]; then init=(--init "$INIT"); fi
    data=$(train_set "$(variant_scenes "$name")")
    # shellcheck disable=SC2086  # the --set words are meant to split
    syncl train --config tiny --dataroot "$data" --out "$RUNS/$name" --resume --no-progress \
        "${init[@]}" --max-steps "$STEPS" --set train.seed="$SEED" --set train.lr="$LR" \
        --set train.warmup_steps="$WARMUP" --set train.checkpoint_every=250 \
        --set train.snapshot_every=$((STEPS / 2)) $DETECTION $args >> "$RUNS/$name.log" 2>&1
}
mkdir -p "$RUNS"
# shellcheck disable=SC2086  # one variant per word
in_parallel "$JOBS" 1 train_variant $VARIANTS

runs=() greedy=()
for v in $VARIANTS; do runs+=("$RUNS/$v") greedy+=(--greedy "$RUNS/$v"); done
"$PY" -m syncl_ros.tools.curve --dataroot "$DATA/synth_val" "${greedy[@]}" \
    --plot "$RUNS/curves.png" --table-step "$STEPS" | tee "$RUNS/table.md"
for v in $VARIANTS; do
    results="$RUNS/$v/val_greedy.json"
    [ -f "$results" ] || syncl track "$DATA/synth_val" --split val --model "$RUNS/$v/last.pt" \
        --tracker greedy --out "$results" --no-progress
done
"$PY" -m syncl_ros.eval.range_errors "${runs[@]/%//val_greedy.json}" --dataroot "$DATA/synth_val" \
    --split val | tee "$RUNS/range_errors.md"
