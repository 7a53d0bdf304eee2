"""`nas search` checks the whole config and its files before it writes anything.

Each bad config runs through the real CLI (`nas.cli.main`) with real files: it must fail with
exit status 2 and an error naming the bad key, and leave the run folder absent (or, when it
already held a run, byte for byte as it was).
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest
import yaml

from nas.cli import main

ROOT = Path(__file__).resolve().parents[2]
TABLE_R32 = ROOT / "latency_tables" / "x86-2core_onnxruntime_t1_ofa_mbv3_r32.csv"
TABLE_R28 = ROOT / "latency_tables" / "x86-2core_onnxruntime_t1_ofa_mbv3_r28_w0.5.csv"
SPACE = {"name": "ofa_mbv3", "resolutions": [32], "num_classes": 10, "in_channels": 1}


def good_config(run_dir: Path) -> dict:
    return {"name": "v", "run_dir": str(run_dir), "seed": 0, "space": dict(SPACE),
            "latency": {"tables": [{"path": str(TABLE_R32), "name": "cpu-ort"}], "budget_ms": 1.0},
            "strategy": {"name": "evolution", "options": {"population": 4}},
            "evaluator": {"name": "synthetic"}, "search": {"n_trials": 3, "progress": False}}


def _set(raw: dict, dotted: str, value) -> None:
    *parents, last = dotted.split(".")
    node = raw
    for p in parents:
        node = node[int(p)] if isinstance(node, list) else node.setdefault(p, {})
    if value is _DELETE:
        del node[last]
    else:
        node[last] = value


_DELETE = object()

# (case id, {dotted key: value}, what the error must name)
BAD = [
    ("typo-strategy", {"strategy.name": "evolutoin"}, ["strategy.name", "evolutoin"]),
    ("unknown-strategy-option", {"strategy.options": {"populaton": 8}}, ["strategy.options", "populaton"]),
    ("bad-strategy-value", {"strategy.options": {"population": 1}}, ["strategy.options", "population"]),
    ("missing-table-file", {"latency.tables": [{"path": "no/such/table.csv"}]},
     ["latency.tables.0.path", "no/such/table.csv", "does not exist"]),
    ("table-of-another-space", {"latency.tables": [{"path": str(TABLE_R28)}]}, ["latency.tables.0.path", "missing"]),
    ("unknown-evaluator", {"evaluator.name": "synthetc"}, ["evaluator.name", "synthetc"]),
    ("unknown-evaluator-option", {"evaluator.options": {"sharpnes": 2.0}}, ["evaluator.options", "sharpnes"]),
    ("missing-checkpoint", {"evaluator": {"name": "supernet", "options": {"checkpoint": "no/ckpt.pt"}}},
     ["evaluator.options.checkpoint", "no/ckpt.pt"]),
    ("checkpoint-option-missing", {"evaluator": {"name": "supernet"}}, ["evaluator.options", "checkpoint"]),
    ("missing-predictor-file", {"evaluator": {"name": "predictor", "options": {"path": "no/pred.pt"}}},
     ["evaluator.options.path", "no/pred.pt"]),
    ("missing-dataset", {"evaluator": {"name": "train", "options": {"dataset": "fashion_mnist", "root": "no/data"}}},
     ["evaluator.options.dataset", "no/data"]),
    ("negative-budget", {"latency.budget_ms": -1.0}, ["latency", "budget_ms"]),
    ("budget-quantile-out-of-range", {"latency.budget_ms": _DELETE, "latency.budget_quantile": 1.5},
     ["latency.budget_quantile"]),
    ("budget-and-quantile", {"latency.budget_quantile": 0.3}, ["latency.budget_ms", "latency.budget_quantile"]),
    ("unknown-reward", {"latency.reward": "sofd"}, ["latency", "sofd"]),
    ("zero-trials", {"search.n_trials": 0}, ["search.n_trials"]),
    ("unknown-space", {"space.name": "ofa_mbv4"}, ["space", "ofa_mbv4"]),
    ("storage-folder-missing", {"search.storage": "no/such/folder/study.journal"}, ["search.storage", "no/such/folder"]),
    ("unknown-preset", {"results": {"presets": ["mobilenet_v9"]}}, ["results.presets", "mobilenet_v9"]),
    ("proxyless-on-macs-proxy", {"strategy": {"name": "proxyless", "options": {"steps": 2, "warmup_steps": 1}},
                                 "latency.tables": [{"path": "macs-proxy"}], "latency.target_ms": 0.5},
     ["proxyless", "needs a latency table"]),
    ("missing-latency", {"latency": _DELETE}, ["latency.tables", "macs-proxy"]),
    ("missing-evaluator", {"evaluator": _DELETE}, ["evaluator.name", "synthetic"]),
]


def _write_bad(tmp_path: Path, run_dir: Path, changes: dict) -> Path:
    raw = good_config(run_dir)
    for key, value in changes.items():
        _set(raw, key, value)
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def _snapshot(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
            for p in sorted(folder.rglob("*"))}


def _fails_naming(config: Path, names: list[str], capsys) -> None:
    rc = main(["search", "--config", str(config), "--quiet"])
    err = capsys.readouterr().err
    assert rc == 2, err
    error = [line for line in err.splitlines() if line.startswith("nas: error:")]
    assert len(error) == 1, err
    for name in names:
        assert name in error[0], error[0]


@pytest.mark.parametrize("case,changes,names", BAD, ids=[b[0] for b in BAD])
def test_bad_config_writes_nothing(tmp_path, monkeypatch, capsys, case, changes, names) -> None:
    monkeypatch.chdir(tmp_path)  # relative paths of the bad configs resolve here, where they do not exist
    run = tmp_path / "runs" / "search"
    _fails_naming(_write_bad(tmp_path, run, changes), names, capsys)
    assert not run.exists() and not (tmp_path / "runs").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.yaml"]


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> Path:
    """A run folder of the good config, after a completed search."""
    base = tmp_path_factory.mktemp("finished")
    path = base / "good.yaml"
    path.write_text(yaml.safe_dump(good_config(base / "run")))
    assert main(["search", "--config", str(path), "--quiet"]) == 0
    return base / "run"


@pytest.mark.parametrize("case", ["typo-strategy", "unknown-strategy-option", "missing-table-file",
                                  "unknown-evaluator-option", "negative-budget", "missing-evaluator"])
def test_bad_config_leaves_an_existing_run_unchanged(tmp_path, monkeypatch, capsys, finished_run, case) -> None:
    monkeypatch.chdir(tmp_path)
    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    before = _snapshot(run)
    assert {"config.yaml", "meta.json", "study.db", "presets.json"} <= set(before)
    _, changes, names = next(b for b in BAD if b[0] == case)
    _fails_naming(_write_bad(tmp_path, run, changes), names, capsys)
    assert _snapshot(run) == before


def test_good_config_still_runs(tmp_path, capsys) -> None:
    """The control: the config every bad case derives from runs, so the failures above are the bad keys'."""
    path = tmp_path / "good.yaml"
    path.write_text(yaml.safe_dump(good_config(tmp_path / "run")))
    assert main(["search", "--config", str(path), "--quiet"]) == 0, capsys.readouterr().err
    assert (tmp_path / "run" / "study.db").is_file()


def test_unknown_strategy_label_writes_nothing(tmp_path, capsys) -> None:
    path = tmp_path / "good.yaml"
    path.write_text(yaml.safe_dump(good_config(tmp_path / "run")))
    assert main(["search", "--config", str(path), "--strategy", "evolutoin"]) == 2
    assert "evolutoin" in capsys.readouterr().err and not (tmp_path / "run").exists()
