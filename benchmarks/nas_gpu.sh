#!/usr/bin/env bash
# DARTS searching ProtoNet's backbone on Omniglot at a longer budget than this CPU allows, on a GPU
# machine: the search (second order unless ORDER=1), then the found genotype retrained against Conv4 by
# the same ProtoNet loop and tested at 5-way and 20-way 1-shot (benchmarks/nas_fewshot.py).
#
# Here, once:  mkdir -p .device && cp -r ../shared/data/omniglot .device/ && echo /.device/ >> .git/info/exclude
# There:       bash benchmarks/nas_gpu.sh                         30 epochs x 200 steps, 20,000 retrain episodes
#              EPOCHS=10 RETRAIN=5000 bash benchmarks/nas_gpu.sh   a shorter loan
#              (device run: carry [".device"]; torch and the core's dependencies are preinstalled there.)
# It writes $OUT/nas-omniglot.json (genotype, parameters, accuracies with 95% CIs, wall times) and the log.
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH=src PYTHONUNBUFFERED=1 OMP_NUM_THREADS="${OMP_NUM_THREADS:-4}"
out="${OUT:-results}"
mkdir -p "$out"
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader 2>/dev/null || echo "no nvidia-smi"
python3 benchmarks/nas_fewshot.py --dataset omniglot --data-root "${DATA_ROOT:-.device/omniglot}" \
    --epochs "${EPOCHS:-30}" --steps-per-epoch "${STEPS:-200}" --order "${ORDER:-2}" \
    --search-channels "${SEARCH_CHANNELS:-16}" --retrain-steps "${RETRAIN:-20000}" \
    --device "${DEVICE:-cuda}" --json "$out/nas-omniglot.json" 2>&1 | tee "$out/nas-omniglot.log"
