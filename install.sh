#!/usr/bin/env bash
# Install hwnas into ./.venv on a fresh Linux machine with Python 3.11 (CPU build of PyTorch).
# GPU machines: see README.md ("GPU install").
set -euo pipefail
cd "$(dirname "$0")"
python3 -m venv .venv
# torch is pinned to the 2.13 CPU build: a plain `torch` requirement pulls a multi-GB CUDA build.
.venv/bin/pip install --quiet --disable-pip-version-check "torch==2.13.*" -e ".[test,tflite]"
# Fashion-MNIST for the quickstart (Debian/Ubuntu package, 31 MB); the tests don't need it.
if [ ! -d /usr/share/datasets/fashion-mnist ]; then
  if [ "$(id -u)" = 0 ]; then
    (apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist) >/dev/null 2>&1 \
      || echo "install.sh: could not apt-get install dataset-fashion-mnist; the quickstart will need it" >&2
  else
    echo "install.sh: for the quickstart run: sudo apt-get install -y dataset-fashion-mnist" >&2
  fi
fi
.venv/bin/nas --version
