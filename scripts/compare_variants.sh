#!/usr/bin/env bash
# Side by side on the same data, the same initial weights and the same step budget: the tracking
# stage trained with SynCL, without its parts, and without the convergence aids; tracking by
# detection scores the SynCL run's network (and the stage-1 detector) with the greedy tracker.
# Prints one markdown table (docs/training.md).
#
#   INIT=runs/tiny/det4/last.pt scripts/compare_variants.sh       # every variant, one at a time
#   INIT=... VARIANTS="syncl base" STEPS=1000 JOBS=2 scripts/compare_variants.sh
#
# INIT is the stage-1 detector of scripts/train_default_model.sh (all variants start from it, as
# PF-Track and SynCL start from one pretrained detector). JOBS runs that many variants at a time
# with the CPU threads split between them. Re-running resumes every run from RUNS/<variant>/last.pt
# and scores only snapshots not yet scored.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${DATA:-data}
RUNS=${RUNS:-runs/compare}
STEPS=${STEPS:-400}
SEED=${SEED:-0}
JOBS=${JOBS:-1}
INIT=${INIT:?set INIT to the stage-1 detector checkpoint (scripts/train_default_model.sh: its last RUN/detN/last.pt)}
VARIANTS=${VARIANTS:-"syncl base no_aids"}
PY=${PYTHON:-.venv/bin/python}
syncl() { "$PY" -m syncl_ros.cli "$@"; }
# shellcheck source=scripts/lib.sh
. scripts/lib.sh

variant_args() {
    case "$1" in
        syncl) ;;  # config/tiny.yaml as shipped: SynCL on, convergence aids on
        base)  # the same tracker without SynCL: S-decoder one-to-one matching only
            echo "--set train.syncl.hybrid_matching=false --set train.syncl.gmm_filter=false"
            echo "--set train.syncl.contrastive=false" ;;
        hybrid_only)  # SynCL matching (with the query filter) but no contrastive loss
            echo "--set train.syncl.contrastive=false" ;;
        no_aids)  # SynCL without the dense heatmap/depth losses and query denoising in this stage
            echo "--set train.aids.dense_weight=0 --set train.aids.denoising=false" ;;
        *) echo "compare_variants: unknown variant $1" >&2; return 2 ;;
    esac
}

synthetic_data

train_variant() {
    local name=$1 args
    args=$(variant_args "$name")
    # shellcheck disable=SC2086  # the variant's --set words are meant to split
    syncl train --config tiny --dataroot "$DATA/synth_train" --out "$RUNS/$name-s$SEED" --resume \
        --init "$INIT" --no-progress --max-steps "$STEPS" --set train.seed="$SEED" \
        --set train.snapshot_every=$((STEPS / 2)) $args > "$RUNS/$name-s$SEED.log" 2>&1
}
mkdir -p "$RUNS"
threads=$(( $(nproc) / JOBS )); [ "$threads" -ge 1 ] || threads=1
# shellcheck disable=SC2086  # one variant per word
in_parallel "$JOBS" "$threads" train_variant $VARIANTS

runs=()
for v in $VARIANTS; do runs+=("$RUNS/$v-s$SEED"); done
greedy=()
case " $VARIANTS " in *" syncl "*) greedy=(--greedy "$RUNS/syncl-s$SEED") ;; esac
"$PY" -m syncl_ros.tools.curve "${runs[@]}" --dataroot "$DATA/synth_val" "${greedy[@]}" \
    --plot "$RUNS/curves_s$SEED.png" --table-step "$STEPS"
