# Shared by the training scripts; source it after setting DATA and defining syncl().

# synthetic_data [dev]: the 80 training and 12 val scenes of seed 0 (with "dev", also the 4
# development scenes of seed 1, for tuning only), each written once.
synthetic_data() {
    [ -d "$DATA/synth_train/v1.0-trainval" ] ||
        syncl synth "$DATA/synth_train" --split train --scenes 80 --seed 0 --no-sweeps
    [ -d "$DATA/synth_val/v1.0-trainval" ] ||
        syncl synth "$DATA/synth_val" --split val --scenes 12 --seed 0 --no-sweeps
    if [ "${1:-}" = dev ]; then  # never trained on, never reported
        [ -d "$DATA/synth_dev/v1.0-trainval" ] ||
            syncl synth "$DATA/synth_dev" --split val --scenes 4 --seed 1 --no-sweeps
    fi
}

# in_parallel JOBS THREADS FN ITEM...: runs `FN ITEM` for every item, at most JOBS at a time (a
# new one starts when the oldest ends), each with OMP_NUM_THREADS=THREADS; every job is waited
# for by its pid, so any failure stops a `set -e` caller.
in_parallel() {
    local jobs=$1 threads=$2 fn=$3 item pid pids=()
    shift 3
    for item in "$@"; do
        if [ "${#pids[@]}" -ge "$jobs" ]; then wait "${pids[0]}"; pids=("${pids[@]:1}"); fi
        OMP_NUM_THREADS=$threads "$fn" "$item" &
        pids+=("$!")
    done
    for pid in "${pids[@]}"; do wait "$pid"; done
}
