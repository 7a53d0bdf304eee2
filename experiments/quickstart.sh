#!/usr/bin/env bash
# The quickstart, end to end; every step resumes if interrupted:
#   1. measure a latency table of the quickstart space on THIS machine (ONNX Runtime, 1 thread) and
#      calibrate it on 40 whole networks
#   2. train the once-for-all supernet on Fashion-MNIST (ofa_mbv3, 28x28, width 0.5)
#   3. evolution search under a latency budget, accuracy from the supernet's shared weights,
#      latency from this machine's table
#   4. results: best arch per budget, Pareto plot, predicted vs measured latency of the winner
#   5. extract the winner to a standalone ONNX model
set -euo pipefail
cd "$(dirname "$0")/.."
NAS=${NAS:-.venv/bin/nas}
RUN=runs/quickstart
TABLE=runs/tables/local_onnxruntime_t1_ofa_mbv3_r28_w0.5.csv   # experiments/quickstart.yaml reads it
if [ ! -f "$TABLE" ]; then
  "$NAS" latency build --space ofa_mbv3 --resolutions 28 --num-classes 10 --in-channels 1 --width-mult 0.5 \
    --backend onnxruntime --threads 1 --device-name local --out "$TABLE" --if-noisy more-passes
fi
if ! grep -q '"calibration"' "${TABLE%.csv}.json"; then
  "$NAS" latency calibrate --table "$TABLE" --n 40 --seed 1000
fi
"$NAS" supernet train --config experiments/supernet_fmnist.yaml
"$NAS" search --config experiments/quickstart.yaml
"$NAS" results "$RUN" --export-best "$RUN/best.json" --measure
"$NAS" extract --checkpoint runs/supernet_fmnist/checkpoint.pt --arch "$RUN/best.json" --format onnx \
  --out "$RUN/best.onnx"
echo "quickstart: winner $RUN/best.json, ONNX model $RUN/best.onnx, Pareto plot $RUN/pareto.png"
