#!/usr/bin/env bash
# MAML++ (Antoniou et al. 2019, Table 1) on Omniglot, the four cells of the `mamlpp` reproduction row at
# their presets' full budgets (omniglot-mamlpp-*: 50,000 meta-steps, meta-batch 8, 5 second-order inner
# steps from meta-step 25,000), on a GPU machine.
#
# Here, once:  mkdir -p .device && cp -r ../shared/data/omniglot .device/ && echo /.device/ >> .git/info/exclude
# There:       bash benchmarks/mamlpp_gpu.sh                      all four cells at once, full budgets
#              CELLS="5w1s 20w1s" bash benchmarks/mamlpp_gpu.sh   some cells
#              TRAIN_SECONDS=480 bash benchmarks/mamlpp_gpu.sh    a lent machine: stop training after 8 min
#                                                                 (summed over loans), test, write the records
#              (device run: carry [".device"]; torch, numpy, safetensors, pyyaml, pillow, matplotlib and tqdm
#              are preinstalled there.)
# Back here:   copy the returned mamlpp-<cell>.json records into results/, then
#              python benchmarks/reproduce.py --table
#              and the returned runs/ into .device/runs/: the next loan, given a larger TRAIN_SECONDS,
#              resumes each run where it stopped (the MAML++ schedules count meta-steps in the weights).
#
# The cells train side by side on the one GPU (Conv4 on 28x28 leaves it mostly idle), task axis under vmap;
# each writes results/mamlpp-<cell>.json (accuracy and 95% CI over 1000 test episodes of 15 queries per
# class, steps reached, wall time) and a log beside it.
set -uo pipefail
cd "$(dirname "$0")/.."
cells=(${CELLS:-5w1s 5w5s 20w1s 20w5s})
threads=$(($(nproc) / ${#cells[@]}))
export PYTHONPATH=src PYTHONUNBUFFERED=1 FEWSHOT_CACHE="${FEWSHOT_CACHE:-/tmp/fewshot-cache}"
export OMP_NUM_THREADS=$((threads > 0 ? threads : 1))
out="${OUT:-results}"
runs="${RUNS:-.device/runs}"
data="${DATA_ROOT:-.device/omniglot}"
mkdir -p "$out"
budget=()
[[ -n "${TRAIN_SECONDS:-}" ]] && budget=(--set time_limit="$TRAIN_SECONDS")
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader 2>/dev/null || echo "no nvidia-smi"
pids=()
for cell in "${cells[@]}"; do
    echo "$(date +%T) start mamlpp $cell"
    python3 benchmarks/reproduce.py mamlpp --cells "$cell" --device "${DEVICE:-cuda}" --episodes "${EPISODES:-1000}" \
        "${budget[@]}" --data-root "$data" --runs "$runs" --results "$out" >"$out/mamlpp-$cell.log" 2>&1 &
    pids+=($!)
done
status=0
for i in "${!pids[@]}"; do
    wait "${pids[$i]}" || status=1
    echo "$(date +%T) ended mamlpp ${cells[$i]}"
done
for cell in "${cells[@]}"; do tail -n 3 "$out/mamlpp-$cell.log"; done
# the run folders go back too (less TensorBoard), so that a later loan can resume them
if [[ -n "${OUT:-}" && -d "$runs" ]]; then
    mkdir -p "$OUT/runs" && cp -r "$runs"/. "$OUT/runs/" && rm -rf "$OUT"/runs/*/tensorboard
fi
exit $status
