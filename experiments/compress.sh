#!/usr/bin/env bash
# After the quickstart (bash experiments/quickstart.sh): NetAdapt on its winner, then a distilled fine-tune.
#   1. nas compress: prune the winner's channels, one width per iteration, each step chosen by this machine's
#      latency table (widths it lacks are timed on the fly), until it measures <= 70% of the winner's latency
#   2. nas finetune --model: fine-tune the pruned network, distilled from the supernet's largest subnet
#   3. nas extract --model: the fine-tuned network as ONNX, with its test top-1
# Everything resumes if interrupted. Compare with the unpruned winner and uniform width scaling:
#   python experiments/benchmarks/netadapt.py
set -euo pipefail
cd "$(dirname "$0")/.."
NAS=${NAS:-.venv/bin/nas}
RUN=runs/compress
CKPT=experiments/weights/supernet_fmnist.pt
TABLE=runs/tables/local_onnxruntime_t1_ofa_mbv3_r28_w0.5.csv   # the quickstart's table
"$NAS" compress --checkpoint "$CKPT" --arch runs/quickstart/best.json --table "$TABLE" --ratio 0.7 --out "$RUN"
"$NAS" finetune --checkpoint "$CKPT" --model "$RUN/pruned.pt" --steps 600 --distill --evaluate test \
  --out "$RUN/finetuned.pt"
"$NAS" extract --checkpoint "$CKPT" --model "$RUN/finetuned.pt" --format onnx --out "$RUN/finetuned.onnx" --evaluate test
echo "compress: pruned $RUN/pruned.pt, fine-tuned $RUN/finetuned.pt, ONNX $RUN/finetuned.onnx, plot $RUN/trajectory.png"
