#!/usr/bin/env bash
# Own data, end to end (`data.dataset: folder`); every step resumes or is cheap to redo:
#   1. write a synthetic image folder: 10 classes (a shape, half the time in its class colour; random
#      position, size, background, distractor shape and pixel noise) x 200 RGB PNGs of 36x36, seeded
#      (nas.data.make_image_folder)
#   2. train the quickstart-sized supernet on it (experiments/own_data_supernet.yaml: images read at
#      28x28, 500 steps), a few CPU-minutes
#   3. a latency table of this space (3 input channels) measured on THIS machine and calibrated on 40
#      whole networks, then an evolution search (experiments/own_data_search.yaml: shared-weight accuracy
#      on the own val split, latency from that table, budget at the space's median)
#   4. export the best arch, extract it as a standalone model with batch norm recalibrated on 8 training
#      batches, and report its accuracy on the validation split
#
#   bash experiments/own_data.sh     # -> runs/own_data/{images,supernet,search}
# With your images: point data.root of experiments/own_data_supernet.yaml at them and set the search
# space's in_channels/num_classes to theirs; steps 2-4 are the same.
set -euo pipefail
cd "$(dirname "$0")/.."
NAS=${NAS:-.venv/bin/nas}
PY=${PY:-.venv/bin/python}
OUT=runs/own_data
CKPT=$OUT/supernet/checkpoint.pt
RUN=$OUT/search

"$PY" -m nas.data._make_folder "$OUT/images" --classes 10 --per-class 200 --size 36 --seed 0

start=$(date +%s)
"$NAS" supernet train --config experiments/own_data_supernet.yaml
train_s=$(( $(date +%s) - start ))

TABLE=runs/tables/local_onnxruntime_t1_ofa_mbv3_r28_10cls_3ch_w0.5.csv   # own_data_search.yaml reads it
if [ ! -f "$TABLE" ]; then
  "$NAS" latency build --space ofa_mbv3 --resolutions 28 --num-classes 10 --in-channels 3 --width-mult 0.5 \
    --backend onnxruntime --threads 1 --device-name local --out "$TABLE" --if-noisy more-passes
fi
if ! grep -q '"calibration"' "${TABLE%.csv}.json"; then
  "$NAS" latency calibrate --table "$TABLE" --n 40 --seed 1000
fi

start=$(date +%s)
"$NAS" search --config experiments/own_data_search.yaml
search_s=$(( $(date +%s) - start ))
"$NAS" results "$RUN" --export-best "$RUN/best.json"

"$NAS" extract --checkpoint "$CKPT" --arch "$RUN/best.json" --format torch --out "$RUN/best.pt" --recalibrate-bn 8

"$PY" - "$CKPT" "$RUN" "$train_s" "$search_s" <<'EOF'
import sys
from pathlib import Path

import pandas as pd

from nas.supernet import accuracy, checkpoint_config, config_loaders, load_checkpoint, load_extracted

ckpt, run, train_s, search_s = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
config = checkpoint_config(ckpt)
net = load_extracted(run / "best.pt")
loaders = config_loaders(config, net.arch.resolution)
splits = (loaders.train.dataset, loaders.val.dataset)
trials = pd.read_csv(run / "trials.csv")
step = load_checkpoint(ckpt)["step"]
print(f"own data: {sum(map(len, splits))} images, {splits[0].num_classes} classes "
      f"({len(splits[0])} train / {len(splits[1])} val, read as {splits[0].image_shape} (C, H, W))")
print(f"supernet: {step}/{config.total_steps} steps, {train_s} s wall in this run")
print(f"search: {int((trials['state'] == 'COMPLETE').sum())} completed trials, {search_s} s wall in this run, "
      f"best shared-weight val accuracy {trials['accuracy'].max():.4f}")
print(f"extracted: {net.arch.short()}")
print(f"extracted model's val accuracy: {accuracy(net, loaders.val):.4f} ({len(splits[1])} images, "
      f"{run / 'best.pt'})")
EOF
