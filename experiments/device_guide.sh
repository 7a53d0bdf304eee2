#!/usr/bin/env bash
# README "Target your own device", verbatim, with THIS machine standing in for the device:
#   1. host:   bundle every layer of the quickstart space, plus whole networks (canaries, 40 calibration
#              archs, 100 held-out archs), as ONNX files and the torch-free runner, in one zip
#   2. device: a fresh venv with numpy + onnxruntime only (no torch, no hwnas), run the bundle
#   3. host:   import the measured table (calibration fitted from the device's whole networks),
#              validate it on the 100 held-out networks the device measured, check it
# Every step resumes if interrupted. Output: runs/device_guide/.
#   bash experiments/device_guide.sh [--small]   # --small: 10 calibration + 10 held-out archs (the slow test)
set -euo pipefail
cd "$(dirname "$0")/.."
NAS=${NAS:-.venv/bin/nas}
PY=${PY:-.venv/bin/python}
CAL=40; VAL=100; OUT=runs/device_guide
if [ "${1:-}" = --small ]; then CAL=10; VAL=10; OUT=runs/device_guide_small; fi
mkdir -p "$OUT/device"

# 1. on the host
if [ ! -f "$OUT/bundle.zip" ]; then
  "$NAS" latency bundle --space ofa_mbv3 --resolutions 28 --num-classes 10 --in-channels 1 --width-mult 0.5 \
    --backend onnxruntime --threads 1 --calibration "$CAL" --validation "$VAL" --out "$OUT/bundle.zip"
fi

# 2. on the device: copy bundle.zip over, then
[ -f "$OUT/device/bundle.zip" ] || cp "$OUT/bundle.zip" "$OUT/device/"
if [ ! -x "$OUT/device/venv/bin/python" ]; then
  "$PY" -m venv "$OUT/device/venv"
  # the same numpy / onnxruntime versions as the host (constraints.txt); on a Pi: pip install numpy onnxruntime
  "$OUT/device/venv/bin/pip" install -q -c constraints.txt numpy onnxruntime
fi
if [ ! -f "$OUT/device/measured.csv" ]; then
  (cd "$OUT/device" && PYTHONPATH=bundle.zip venv/bin/python -m nas.device_runner bundle.zip --out measured.csv \
    --device-name stand-in)
fi
"$OUT/device/venv/bin/python" -c "import torch" 2>/dev/null && { echo "device_guide: the device venv has torch" >&2; exit 1; }

# 3. back on the host
TABLE="$OUT/stand-in_onnxruntime_t1_ofa_mbv3_r28_w0.5.csv"
"$NAS" latency import "$OUT/device/measured.csv" --out "$TABLE"
"$NAS" latency validate --table "$TABLE" --measured "$OUT/device/measured.csv" --out-dir "$OUT/validate"
# `check` re-measures the canaries where it runs: here that is the device itself
"$NAS" latency check --table "$TABLE" || echo "device_guide: check exit code $?"
echo "device_guide: table $TABLE, validation $OUT/validate/"
