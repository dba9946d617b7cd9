#!/usr/bin/env bash
# The second-order rows (MAML, Meta-SGD) on a lent GPU machine, inside its time budget.
#
# Here, once:  mkdir -p .device && cp -r ../shared/data/omniglot .device/ && echo /.device/ >> .git/info/exclude
# There:       device run, carry [".device"], command "bash benchmarks/device_rows.sh" (torch, numpy,
#              safetensors, pyyaml, pillow, matplotlib and tqdm are preinstalled there; nothing to install)
#              JOBS="maml:20w1s metasgd:20w1s" bash benchmarks/device_rows.sh picks other cells.
# Back here:   copy the returned <row>-<cell>.json records into results/, then
#              python benchmarks/reproduce.py --table
#              and copy the returned runs/ into .device/runs/: the next loan, given a larger
#              TRAIN_SECONDS (training time summed over loans), resumes them where this one stopped.
#
# All jobs train at once on the one GPU (small conv nets leave it mostly idle), each for
# TRAIN_SECONDS (default 180); each record gives the steps its job reached. Logs go beside the records.
# Leave room for loading and the 1000 test episodes: two 5-way jobs of 380 s took 465 s in all on an
# H200, while six 20-way jobs of 300 s had not finished after 570 s (20-way tests adapt 5 steps; each
# cell was then tested twice, in training and by reproduce.py, now only by reproduce.py).
set -uo pipefail
cd "$(dirname "$0")/.."
jobs=(${JOBS:-maml:5w1s metasgd:5w1s})
threads=$(($(nproc) / ${#jobs[@]}))
export PYTHONPATH=src PYTHONUNBUFFERED=1 FEWSHOT_CACHE="${FEWSHOT_CACHE:-/tmp/fewshot-cache}"
export OMP_NUM_THREADS=$((threads > 0 ? threads : 1))
out="${OUT:-results}"
runs="${RUNS:-.device/runs}"
pids=()
for job in "${jobs[@]}"; do
    row=${job%%:*} cell=${job#*:}
    echo "$(date +%T) start $job"
    python3 benchmarks/reproduce.py "$row" --cells "$cell" --device "${DEVICE:-cuda}" --episodes "${EPISODES:-1000}" \
        --set time_limit="${TRAIN_SECONDS:-180}" --data-root .device/omniglot --runs "$runs" \
        --results "$out" >"$out/$row-$cell.log" 2>&1 &
    pids+=($!)
done
status=0
for i in "${!pids[@]}"; do
    wait "${pids[$i]}" || status=1
    echo "$(date +%T) ended ${jobs[$i]}"
done
for job in "${jobs[@]}"; do tail -n 3 "$out/${job%%:*}-${job#*:}.log"; done
# the run folders go back too (less TensorBoard), so that a later loan can resume them
if [[ -n "${OUT:-}" && -d "$runs" ]]; then
    mkdir -p "$OUT/runs" && cp -r "$runs"/. "$OUT/runs/" && rm -rf "$OUT"/runs/*/tensorboard
fi
exit $status
