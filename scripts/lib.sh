# Shared by the training scripts; source it after setting DATA and defining syncl().

# train_set SCENES: prints the path of the training set of SCENES scenes of seed 0, written
# once. The 80 of the default recipe are $DATA/synth_train; a larger set is $DATA/synth_trainN and
# holds those 80 and more (a scene is a function of seed, split and index).
train_set() {
    local scenes=$1 path="$DATA/synth_train"
    if [ "$scenes" != 80 ]; then path="$DATA/synth_train$scenes"; fi
    [ -d "$path/v1.0-trainval" ] ||
        syncl synth "$path" --split train --scenes "$scenes" --seed 0 --no-sweeps >&2
    echo "$path"
}

# synthetic_data [dev]: the 80 training and 12 val scenes of seed 0 (with "dev", also the 4
# development scenes of seed 1, for tuning only), each written once.
synthetic_data() {
    train_set 80 > /dev/null
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
