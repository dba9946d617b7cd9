#!/usr/bin/env bash
# FS-Mol (docs/molecules.md) on a GPU machine: the learners the 2-core CPU could not afford, trained at longer
# budgets with `fewshot molecules train --device cuda`, then evaluated with the full FS-Mol protocol (157 test
# assays, support 16/32/64/128, ten stratified draws each). Cells, side by side on the one GPU:
#   gnn        ProtoNet, GNN over the molecular graph alone (fsmol-protonet-gnn with featurizer=graph)
#   gnn-ecfp   ProtoNet, GNN + ECFP, FS-Mol's best published encoder (fsmol-protonet-gnn)
#   adkf       deep-kernel GP on an ECFP MLP (fsmol-adkf)
#
# Here, once (FS-Mol's assays, 24 MB, and the rdkit wheel, which that machine lacks, some 35 MB: together near the
# 64 MiB that a device run carries with the working tree, so leave out fs-mol/baselines and check `du -sh .device`):
#   mkdir -p .device/fs-mol && cp -r ../shared/data/molecules/fs-mol/{train,valid,test,fsmol-0.1.json} .device/fs-mol/
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#       --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
#       -d .device/whl rdkit==2026.9.1
#   echo /.device/ >> .git/info/exclude
# There:  bash benchmarks/molecules_gpu.sh                      all three cells, TRAIN_SECONDS=7200 each
#         CELLS="gnn-ecfp" bash benchmarks/molecules_gpu.sh      some cells
#         TRAIN_SECONDS=240 bash benchmarks/molecules_gpu.sh     a lent machine (15 minutes, 10 a command):
#                                                                featurize, train 4 min, evaluate; neither the
#                                                                featurizing (231 s on one CPU thread, here run on
#                                                                WORKERS processes) nor the evaluation has been
#                                                                timed there: a first loan is safer with CELLS=gnn-ecfp
#         (device run: carry [".device"]; torch, numpy, scikit-learn, safetensors and pyyaml are preinstalled there.)
# Settings: DEVICE (cuda), STEPS (the presets' 20,000), TRAIN_SECONDS (7200, per cell and session), EVAL_DEVICE
# (DEVICE), DATA_ROOT (.device/fs-mol), RUNS (.device/runs), OUT (results), WORKERS (featurizing processes),
# THREADS (CPU threads per cell), WARM=0 (skip the featurizing pass), EXTRA (more train flags, e.g.
# "--set batch_size=16"), EVAL (more evaluate flags, e.g. "--support-sizes 16 --draws 2").
# Writes $OUT/molecules-gpu.json ({cell: {preset, train: the train --json line, evaluate: one record per support
# size with roc_auc and delta_auprc, mean and 95% intervals}}), $OUT/molecules-<cell>.log, and with OUT set (a
# device run) $OUT/molecules-<cell>-checkpoint.tar (the best weights and the run's settings, for `fewshot
# molecules evaluate|predict` on a CPU: checkpoints always load there). A second call on the same machine resumes
# each run in $RUNS from its last/ (weights + optimizer state); that folder is too large to come back from a
# device run, so a later loan starts the runs afresh.
# Check without a GPU: DEVICE=cpu STEPS=2 WARM=0 DATA_ROOT=../shared/data/molecules/fs-mol OUT=/tmp/m RUNS=/tmp/m/runs
#   EXTRA="--set data_options.tasks=8 --set validate_every=0 --set batch_size=2" EVAL="--support-sizes 16 --draws 1"
set -uo pipefail
cd "$(dirname "$0")/.."
cells=(${CELLS:-gnn gnn-ecfp adkf})
threads=${THREADS:-$(($(nproc) / ${#cells[@]}))}
export PYTHONPATH=src PYTHONUNBUFFERED=1 FEWSHOT_CACHE="${FEWSHOT_CACHE:-/tmp/fewshot-cache}"
export OMP_NUM_THREADS=$((threads > 0 ? threads : 1))
py="${PYTHON:-python3}"
device="${DEVICE:-cuda}"
out="${OUT:-results}"
runs="${RUNS:-.device/runs}"
data="${DATA_ROOT:-.device/fs-mol}"
mkdir -p "$out" "$runs"
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader 2>/dev/null || echo "no nvidia-smi"
if ! "$py" -c "import rdkit" 2>/dev/null; then  # the molecules extra: rdkit travels as a wheel
    "$py" -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .device/whl/*.whl || exit 1
    export PYTHONPATH="src:/tmp/site"
fi

preset_of() { case "$1" in gnn | gnn-ecfp) echo fsmol-protonet-gnn ;; adkf) echo fsmol-adkf ;; *) return 1 ;; esac; }
for cell in "${cells[@]}"; do
    preset_of "$cell" >/dev/null || { echo "unknown cell $cell (gnn, gnn-ecfp, adkf)"; exit 2; }
done

if [[ "${WARM:-1}" != 0 ]]; then  # every assay featurized once, in parallel, into the cache the runs read
    echo "$(date +%T) featurize FS-Mol (ECFP + graphs)"
    "$py" - "$data" "${WORKERS:-$(nproc)}" <<'EOF' || exit 1
import sys
from concurrent.futures import ProcessPoolExecutor

from fewshot.molecules.featurize import featurize
from fewshot.molecules.fsmol import fsmol_files, read_fsmol_task


def one(path):  # the same cache entries as load_fs_mol(root, split, featurizer="ecfp+graph")
    featurize(read_fsmol_task(path)[0], "ecfp+graph", cache=True, where=path.name, report=False)


root, workers = sys.argv[1], int(sys.argv[2])
files = [f for split in ("train", "valid", "test") for f in fsmol_files(root, split)]
with ProcessPoolExecutor(workers) as pool:
    list(pool.map(one, files, chunksize=16))
print(f"{len(files)} assays featurized")
EOF
fi

train_cell() {
    local cell=$1 run="$runs/$1" preset
    preset=$(preset_of "$cell")
    local flags=(--device "$device" --json --quiet)
    [[ -n "${STEPS:-}" ]] && flags+=(--steps "$STEPS")
    flags+=(--set time_limit="${TRAIN_SECONDS:-7200}")
    if [[ -d "$run/last" ]]; then
        "$py" -m fewshot.molecules.cli train --resume --out "$run" "${flags[@]}" >"$run.train.json" || return 1
    else
        local set=()
        [[ "$cell" == gnn ]] && set=(--set featurizer=graph)
        # shellcheck disable=SC2086  # EXTRA is a list of flags
        "$py" -m fewshot.molecules.cli train --config "$preset" --out "$run" --data-root "$data" --overwrite \
            "${set[@]}" "${flags[@]}" ${EXTRA:-} >"$run.train.json" || return 1
    fi
    # shellcheck disable=SC2086  # EVAL is a list of flags
    "$py" -m fewshot.molecules.cli evaluate "$run" --json --device "${EVAL_DEVICE:-$device}" ${EVAL:-} >"$run.eval.json"
}

pids=()
for cell in "${cells[@]}"; do
    echo "$(date +%T) start $cell"
    train_cell "$cell" >"$out/molecules-$cell.log" 2>&1 &
    pids+=($!)
done
status=0
for i in "${!pids[@]}"; do
    wait "${pids[$i]}" || status=1
    echo "$(date +%T) ended ${cells[$i]}"
done
for cell in "${cells[@]}"; do tail -n 3 "$out/molecules-$cell.log"; done

"$py" - "$runs" "$out/molecules-gpu.json" "${cells[@]}" <<'EOF' || status=1
import json
import sys
from pathlib import Path

runs, target, cells = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3:]
found = json.loads(target.read_text()) if target.is_file() else {}


def last_line(path: Path):  # the JSON line a command printed last, or None when it failed
    try:
        return json.loads(path.read_text().strip().splitlines()[-1])
    except (OSError, IndexError, ValueError):
        return None


for cell in cells:
    config = runs / cell / "config.json"
    rows = last_line(runs / f"{cell}.eval.json")
    found[cell] = {
        "preset": json.loads(config.read_text()).get("preset") if config.is_file() else None,
        "train": last_line(runs / f"{cell}.train.json"),
        "evaluate": [rows] if isinstance(rows, dict) else rows,
    }
target.write_text(json.dumps(found, indent=2) + "\n")
for cell in cells:
    for row in found[cell]["evaluate"] or []:
        d = row["delta_auprc"]
        print(f"{cell:<9} support {row['support_size']:>3}: delta-AUPRC {d['mean']:.4f} +- {d['ci95_tasks']:.4f}")
EOF
if [[ -n "${OUT:-}" ]]; then  # the best weights come back (last/, with the optimizer state, is too large)
    for cell in "${cells[@]}"; do
        [[ -d "$runs/$cell/checkpoint" ]] || continue
        tar -cf "$OUT/molecules-$cell-checkpoint.tar" -C "$runs" "$cell/config.json" "$cell/history.json" \
            "$cell/checkpoint"
    done
fi
exit $status
