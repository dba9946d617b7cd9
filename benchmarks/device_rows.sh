#!/usr/bin/env bash
# The second-order rows (MAML, Meta-SGD 5-way 1-shot) on a lent GPU machine, inside its time budget.
#
# Here, once:  mkdir -p .device && cp -r ../shared/data/omniglot .device/ && echo /.device/ >> .git/info/exclude
# There:       device run, carry [".device"], command "bash benchmarks/device_rows.sh" (torch, numpy,
#              safetensors, pyyaml, pillow, matplotlib and tqdm are preinstalled there; nothing to install)
# Back here:   copy the returned maml-5w1s.json and metasgd-5w1s.json into results/, then
#              python benchmarks/reproduce.py --table
#
# TRAIN_SECONDS (default 180) is each learner's training time; the record gives the steps it reached.
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH=src PYTHONUNBUFFERED=1 FEWSHOT_CACHE="${FEWSHOT_CACHE:-/tmp/fewshot-cache}"
for row in maml metasgd; do
    python3 benchmarks/reproduce.py "$row" --cells 5w1s --device "${DEVICE:-cuda}" --episodes "${EPISODES:-1000}" \
        --set time_limit="${TRAIN_SECONDS:-180}" --data-root .device/omniglot --runs /tmp/fewshot-runs \
        --results "${OUT:-results}"
done
