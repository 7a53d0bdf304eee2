#!/usr/bin/env bash
# One supernet, many devices (issue #15), end to end; every step resumes if interrupted:
#   1. four latency tables of the quickstart space measured on THIS machine, each calibrated on 40
#      whole networks: ONNX Runtime 1 thread, ONNX Runtime 2 threads, TFLite/XNNPACK 1 thread, torch
#      eager 1 thread (the ORT 1-thread table is the quickstart's)
#   2. one search over the quickstart supernet (shipped weights) scored for every table at once
#      (experiments/multi_device.yaml: latency.goal per_device, a budget per table)
#   3. results per device: best arch per device and budget, one Pareto panel per device, one arch JSON
#      per device (runs/multi_device/best/), each verified on its own device (--verify 5: one that
#      measures over its budget is replaced by the most accurate trial that measures within it)
#   4. the cross-device matrix: each verified winner measured on every device (7 passes), CSV + heat map
#
#   bash experiments/multi_device.sh               # everything
#   bash experiments/multi_device.sh --tables-only # step 1 only
set -euo pipefail
cd "$(dirname "$0")/.."
NAS=${NAS:-.venv/bin/nas}
PY=${PY:-.venv/bin/python}
RUN=runs/multi_device
SHAPE=(--space ofa_mbv3 --resolutions 28 --num-classes 10 --in-channels 1 --width-mult 0.5)
build() {  # build BACKEND THREADS
  local table="runs/tables/local_$1_t$2_ofa_mbv3_r28_w0.5.csv"   # experiments/multi_device.yaml reads these
  if [ ! -f "$table" ]; then
    "$NAS" latency build "${SHAPE[@]}" --backend "$1" --threads "$2" --device-name local --out "$table" \
      --if-noisy more-passes --quiet
  fi
  if ! grep -q '"calibration"' "${table%.csv}.json"; then
    "$NAS" latency calibrate --table "$table" --n 40 --seed 1000 --quiet
  fi
}
build onnxruntime 1
build onnxruntime 2
build tflite 1
build torch 1
[ "${1:-}" = --tables-only ] && exit 0
"$NAS" search --config experiments/multi_device.yaml --set "run_dir=$RUN" --quiet
"$NAS" results "$RUN" --export-best "$RUN/best" --verify 5     # each winner timed on its own device first
"$PY" experiments/benchmarks/multi_device.py --run "$RUN" --verify 5
echo "multi_device: winners $RUN/best/, Pareto panels $RUN/pareto.png, matrix experiments/benchmarks/multi_device.csv"
