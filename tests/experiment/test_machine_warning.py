"""A table measured on another machine is named in `nas search` and `nas results`; one measured here is not.

The shipped quickstart table is copied twice: once with this machine's fingerprint, once with the
fingerprint edited to another CPU. Both searches and their results run through the real CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from nas.cli import main
from nas.latency import LatencyTable
from nas.latency._check import here_fingerprint

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "latency_tables" / "x86-2core_onnxruntime_t1_ofa_mbv3_r28_w0.5.csv"
SPACE = {"name": "ofa_mbv3", "resolutions": [28], "num_classes": 10, "in_channels": 1, "width_mult": 0.5}


def _table(tmp_path: Path, other_cpu: bool) -> Path:
    table = LatencyTable.load(SHIPPED)
    fp = here_fingerprint(table)
    if other_cpu:
        fp["cpu"] = {**fp["cpu"], "vendor": "AuthenticAMD", "family": 25, "model": 1,
                     "model_name": "AMD EPYC 7B13"}
        fp["isa"] = [f for f in fp["isa"] or [] if not f.startswith(("avx512", "amx"))]
    table.metadata["fingerprint"] = fp
    out = tmp_path / ("other.csv" if other_cpu else "here.csv")
    table.save(out)
    return out


def _search(tmp_path: Path, table: Path, capsys) -> tuple[str, str]:  # noqa: ANN001
    raw = {"name": "m", "run_dir": str(tmp_path / "run"), "seed": 0, "space": SPACE,
           "latency": {"tables": [{"path": str(table), "name": "cpu-ort"}]}, "evaluator": {"name": "synthetic"},
           "strategy": {"name": "random"}, "search": {"n_trials": 3, "progress": False}}
    (tmp_path / "exp.yaml").write_text(yaml.safe_dump(raw))
    assert main(["search", "--config", str(tmp_path / "exp.yaml")]) == 0
    search_err = capsys.readouterr().err
    assert main(["results", str(tmp_path / "run")]) == 0
    return search_err, capsys.readouterr().err


@pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")
def test_a_table_from_another_cpu_is_named_in_search_and_results(tmp_path, capsys) -> None:
    search_err, results_err = _search(tmp_path, _table(tmp_path, other_cpu=True), capsys)
    for err in (search_err, results_err):
        assert err.count("was measured on another machine") == 1, err
        assert "cpu.vendor (AuthenticAMD in the table, " in err and "cpu.model (1 in the table" in err, err
        assert "nas latency check --table" in err and "other.csv" in err, err
    meta = json.loads((tmp_path / "run" / "meta.json").read_text())
    assert meta["machine"]["cpu"]["logical_cpus"] > 0  # the run records the machine it ran on


@pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")
def test_a_table_of_this_machine_gives_no_warning(tmp_path, capsys) -> None:
    search_err, results_err = _search(tmp_path, _table(tmp_path, other_cpu=False), capsys)
    assert "another machine" not in search_err + results_err, search_err + results_err
