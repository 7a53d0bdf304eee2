"""The package's layers hold: import-linter checks the contract in pyproject.toml ([tool.importlinter]).

arch <- space <- {latency, supernet} <- {strategies, evaluators} <- proxyless <- experiment <- cli: no
import (function-local ones included) goes from a lower layer to a higher one, and siblings of a layer
do not import each other.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_imports_follow_the_layers() -> None:
    exe = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    assert exe, "lint-imports is missing: install the test extra (bash install.sh)"
    out = subprocess.run([exe, "--no-logo", "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-2000:]
