#!/usr/bin/env bash
# The quickstart, end to end; every step resumes if interrupted:
#   1. measure a latency table of the quickstart space on THIS machine (ONNX Runtime, 1 thread) and
#      calibrate it on 40 whole networks
#   2. the once-for-all supernet on Fashion-MNIST (ofa_mbv3, 28x28, width 0.5): the shipped weights
#      (experiments/weights/supernet_fmnist.pt, trained by the command below), or with --train a fresh
#      training here (about 17 CPU-minutes):
#        nas supernet train --config experiments/supernet_fmnist.yaml
#   3. evolution search under a latency budget, accuracy from the supernet's shared weights,
#      latency from this machine's table
#   4. results: best arch per budget, Pareto plot, predicted vs measured latency of the winner
#   5. extract the winner to a standalone ONNX model
#
#   bash experiments/quickstart.sh            # shipped supernet weights   -> runs/quickstart
#   bash experiments/quickstart.sh --train    # train the supernet here     -> runs/quickstart_trained
set -euo pipefail
cd "$(dirname "$0")/.."
NAS=${NAS:-.venv/bin/nas}
case "${1:-}" in
  "") RUN=runs/quickstart; CKPT=experiments/weights/supernet_fmnist.pt ;;
  --train) RUN=runs/quickstart_trained; CKPT=runs/supernet_fmnist/checkpoint.pt ;;
  *) echo "quickstart.sh: unknown option '$1' (use --train or nothing)" >&2; exit 2 ;;
esac
TABLE=runs/tables/local_onnxruntime_t1_ofa_mbv3_r28_w0.5.csv   # experiments/quickstart.yaml reads it
if [ ! -f "$TABLE" ]; then
  "$NAS" latency build --space ofa_mbv3 --resolutions 28 --num-classes 10 --in-channels 1 --width-mult 0.5 \
    --backend onnxruntime --threads 1 --device-name local --out "$TABLE" --if-noisy more-passes
fi
if ! grep -q '"calibration"' "${TABLE%.csv}.json"; then
  "$NAS" latency calibrate --table "$TABLE" --n 40 --seed 1000
fi
if [ "${1:-}" = --train ]; then
  "$NAS" supernet train --config experiments/supernet_fmnist.yaml
fi
"$NAS" search --config experiments/quickstart.yaml --set "run_dir=$RUN" --set "evaluator.options.checkpoint=$CKPT"
"$NAS" results "$RUN" --export-best "$RUN/best.json" --measure
# the winner was chosen on validation images; its top-1 on the test split (chosen by nothing) is reported here
"$NAS" extract --checkpoint "$CKPT" --arch "$RUN/best.json" --format onnx --out "$RUN/best.onnx" --recalibrate-bn 8 \
  --evaluate test
echo "quickstart: winner $RUN/best.json, ONNX model $RUN/best.onnx, Pareto plot $RUN/pareto.png"
