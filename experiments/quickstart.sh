#!/usr/bin/env bash
# The quickstart, end to end (about 11 minutes on a quiet 2-core CPU; every step resumes if interrupted):
#   1. train the once-for-all supernet on Fashion-MNIST (ofa_mbv3, 28x28, width 0.5)
#   2. evolution search under a latency budget, accuracy from the supernet's shared weights,
#      latency from the shipped ONNX Runtime table of this machine kind
#   3. results: best arch per budget, Pareto plot, predicted vs measured latency of the winner
#   4. extract the winner to a standalone ONNX model
set -euo pipefail
cd "$(dirname "$0")/.."
NAS=${NAS:-.venv/bin/nas}
RUN=runs/quickstart
"$NAS" supernet train --config experiments/supernet_fmnist.yaml
"$NAS" search --config experiments/quickstart.yaml
"$NAS" results "$RUN" --export-best "$RUN/best.json" --measure
"$NAS" extract --checkpoint runs/supernet_fmnist/checkpoint.pt --arch "$RUN/best.json" --format onnx \
  --out "$RUN/best.onnx"
echo "quickstart: winner $RUN/best.json, ONNX model $RUN/best.onnx, Pareto plot $RUN/pareto.png"
