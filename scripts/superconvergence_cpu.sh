#!/usr/bin/env bash
# Super-convergence at CPU scale: 1cycle against the step-decay baseline on cpu-smoke's shape
# (width 16, 10,000 training images, batch 128; the full 10,000-image test set), 3 seeds each:
# 1cycle for 6 and 12 epochs (peak at a third); step decay for 6, 12 and 24 epochs (milestones
# at 50% and 75%). About 30 minutes on 2 cores; a rerun skips the sweeps that finished.
# Usage: scripts/superconvergence_cpu.sh DATA_DIR [RESULTS_DIR]
set -euo pipefail
data=${1:?usage: scripts/superconvergence_cpu.sh DATA_DIR [RESULTS_DIR]}
results=${2:-docs/results/superconvergence-cpu}
supercon=${SUPERCON:-.venv/bin/supercon}
out=${SWEEPS:-sweeps}
common=(--config configs/cpu-smoke.yaml --data-dir "$data" --seeds 0-2 --out "$out")
step=(--config configs/baseline-step.yaml)

"$supercon" sweep "${common[@]}" --name sc-1cycle-6ep
"$supercon" sweep "${common[@]}" --epochs 12 --set schedule.peak_epoch=4 --name sc-1cycle-12ep
"$supercon" sweep "${common[@]}" "${step[@]}" --set 'schedule.milestones=[3,4.5]' --name sc-step-6ep
"$supercon" sweep "${common[@]}" "${step[@]}" --epochs 12 --set 'schedule.milestones=[6,9]' \
    --name sc-step-12ep
"$supercon" sweep "${common[@]}" "${step[@]}" --epochs 24 --set 'schedule.milestones=[12,18]' \
    --name sc-step-24ep

mkdir -p "$results"
names=(sc-1cycle-6ep sc-step-6ep sc-1cycle-12ep sc-step-12ep sc-step-24ep)
"$supercon" compare "${names[@]/#/$out/}" --png "$results/compare.png" | tee "$results/compare.txt"
for name in "${names[@]}"; do
    mkdir -p "$results/$name"
    cp "$out/$name"/{sweep.yaml,results.csv,summary.md} "$results/$name/"
done
.venv/bin/python - "$results" <<'PY'
import platform, sys, torch
from pathlib import Path
from cifar_supercon.engine import cpu_model
line = (f"Hardware: cpu: {cpu_model()}, {torch.get_num_threads()} threads; torch {torch.__version__}, "
        f"Python {platform.python_version()}.\n")
Path(sys.argv[1], "hardware.txt").write_text(line)
PY
