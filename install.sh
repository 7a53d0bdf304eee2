#!/usr/bin/env bash
# Install hwnas into ./.venv on a fresh Linux machine with Python 3.11 (CPU build of PyTorch).
# GPU machines: see README.md ("GPU install").
#
#   bash install.sh                  the versions the test suite last passed on (constraints.txt)
#   bash install.sh --refresh-lock   the newest releases; runs the tests and, only if they pass,
#                                    rewrites constraints.txt (then commit it)
set -euo pipefail
cd "$(dirname "$0")"
refresh=0
case "${1:-}" in
  --refresh-lock) refresh=1 ;;
  "") ;;
  *) echo "install.sh: unknown option '$1' (use --refresh-lock or nothing)" >&2; exit 2 ;;
esac
python3 -m venv .venv
pip=(.venv/bin/pip install --quiet --disable-pip-version-check)
# torch is pinned to the 2.13 CPU build: a plain `torch` requirement pulls a multi-GB CUDA build. It comes
# from PyTorch's CPU wheel index when that answers (HWNAS_TORCH_INDEX overrides the index; "none" skips
# it); otherwise from what pip is configured with (a local wheel folder or a mirror).
TORCH_INDEX=${HWNAS_TORCH_INDEX:-https://download.pytorch.org/whl/cpu}
torch_from=()
if [ "$TORCH_INDEX" != none ] && python3 - "$TORCH_INDEX" <<'PY' 2>/dev/null
import sys, urllib.request
urllib.request.urlopen(sys.argv[1].rstrip("/") + "/torch/", timeout=5)
PY
then
  torch_from=(--extra-index-url "$TORCH_INDEX")
  echo "install.sh: torch from $TORCH_INDEX"
else
  echo "install.sh: $TORCH_INDEX does not answer; torch from pip's configured sources"
fi
if [ "$refresh" = 1 ]; then
  "${pip[@]}" "${torch_from[@]}" --upgrade "torch==2.13.*" -e ".[test,tflite,postgres]"
else
  "${pip[@]}" "${torch_from[@]}" -c constraints.txt "torch==2.13.*" -e ".[test,tflite,postgres]"
fi
# Fashion-MNIST for the quickstart (Debian/Ubuntu package, 31 MB); the tests don't need it.
if [ ! -d /usr/share/datasets/fashion-mnist ]; then
  if [ "$(id -u)" = 0 ]; then
    (apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist) >/dev/null 2>&1 \
      || echo "install.sh: could not apt-get install dataset-fashion-mnist; the quickstart will need it" >&2
  else
    echo "install.sh: for the quickstart run: sudo apt-get install -y dataset-fashion-mnist" >&2
  fi
fi
if [ "$refresh" = 1 ]; then
  .venv/bin/python -m pytest -q
  { echo "# The exact versions the test suite last passed on (Linux x86_64, Python 3.11); install.sh uses it."
    echo "# Refresh: bash install.sh --refresh-lock (newest releases, runs the tests, rewrites this file), then commit."
    .venv/bin/pip freeze --exclude-editable --disable-pip-version-check; } > constraints.txt.tmp
  mv constraints.txt.tmp constraints.txt
  echo "install.sh: tests passed; constraints.txt rewritten with $(grep -vc '^#' constraints.txt) pinned packages"
fi
.venv/bin/nas --version
