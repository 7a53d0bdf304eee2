#!/usr/bin/env bash
# Search under an int8 budget (issue #16), end to end; every step resumes if interrupted:
#   1. the quickstart space's ONNX Runtime tables measured on THIS machine, float32 and int8 (QDQ,
#      per-channel int8 weights, uint8 activations), each calibrated on 40 whole networks
#   2. one search (experiments/int8.yaml): budget on the int8 table, both tables scored
#   3. results: best arch within the int8 budget, timed end to end as an int8 model (7 passes) and
#      checked against the budget; dtypes.png (both fronts, the speed-up across the space)
#   4. the winner extracted, quantized with real calibration images and evaluated (val split)
#
#   bash experiments/int8.sh
set -euo pipefail
cd "$(dirname "$0")/.."
NAS=${NAS:-.venv/bin/nas}
RUN=runs/int8
SHAPE=(--space ofa_mbv3 --resolutions 28 --num-classes 10 --in-channels 1 --width-mult 0.5)
build() {  # build TABLE [--dtype int8]
  local table=$1; shift
  if [ ! -f "$table" ]; then
    "$NAS" latency build "${SHAPE[@]}" --backend onnxruntime --threads 1 "$@" --device-name local --out "$table" \
      --if-noisy more-passes --quiet
  fi
  if ! grep -q '"calibration"' "${table%.csv}.json"; then
    "$NAS" latency calibrate --table "$table" --n 40 --seed 1000 --quiet
  fi
}
build runs/tables/local_onnxruntime_t1_ofa_mbv3_r28_w0.5.csv            # the quickstart's table
build runs/tables/local_onnxruntime_t1_int8_ofa_mbv3_r28_w0.5.csv --dtype int8
"$NAS" search --config experiments/int8.yaml --set "run_dir=$RUN" --quiet
"$NAS" results "$RUN" --export-best "$RUN/best.json" --measure
"$NAS" extract --checkpoint experiments/weights/supernet_fmnist.pt --arch "$RUN/best.json" --format onnx \
  --quantize int8 --recalibrate-bn 8 --out "$RUN/best.int8.onnx" --evaluate val
echo "int8: winner $RUN/best.json ($RUN/best.int8.onnx), fronts $RUN/dtypes.png, panels $RUN/pareto.png"
