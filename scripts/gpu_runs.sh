#!/usr/bin/env bash
# The GPU checks of issues 6 and 7 in one go, for a machine with a CUDA GPU and the data unpacked.
#
#   scripts/gpu_runs.sh /root/cifar10-png docs/results/gpu
#
# Writes, under the results folder: the 24-epoch assignment run (console log, summary.json,
# metrics.csv), the 5-seed benchmark of configs/default.yaml and of configs/speedrun.yaml (JSON logs
# and console output), a kernel profile, and the hardware/versions (nvidia-smi, torch).
# With this workplace's device tool: stage the data as ../shared/cifar10/README.md says, carry the
# pydantic wheels (../shared/device-wheels/README.md), then run this script in the same call.
set -euo pipefail
data=${1:?usage: gpu_runs.sh DATA_DIR RESULTS_DIR}
results=${2:?usage: gpu_runs.sh DATA_DIR RESULTS_DIR}
mkdir -p "$results"
export PYTHONUNBUFFERED=1
py=${PYTHON:-python3}

{ nvidia-smi; $py -c "import torch, torchvision; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'torchvision', torchvision.__version__)"; } \
    > "$results/hardware.txt" 2>&1

# 1) The assignment: supercon train --epochs 24 --peak-epoch 5 on the full data set.
$py -m cifar_supercon train --config configs/default.yaml --data-dir "$data" --out runs/gpu \
    --epochs 24 --peak-epoch 5 --no-progress 2>&1 | tee "$results/default-train.log"
run=$(ls -d runs/gpu/*-default | tail -n 1)
cp "$run/summary.json" "$results/default-summary.json"
cp "$run/metrics.csv" "$results/default-metrics.csv"

# 2) Five seeds of the default config, then of the speedrun config.
$py scripts/bench_train.py --config configs/default.yaml --data-dir "$data" --out runs/bench \
    --seeds 0 1 2 3 4 --log "$results/bench-default.json" 2>&1 | tee "$results/bench-default.txt"
$py scripts/bench_train.py --config configs/speedrun.yaml --data-dir "$data" --out runs/bench \
    --seeds 0 1 2 3 4 --log "$results/bench-speedrun.json" 2>&1 | tee "$results/bench-speedrun.txt"

# 3) Where the time goes.
$py scripts/profile_train.py --config configs/default.yaml --data-dir "$data" \
    > "$results/profile-default.txt" 2>&1
