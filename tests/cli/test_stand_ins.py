"""No silent stand-ins: leaving out latency or evaluator is an error; opting into the MACs proxy or
the synthetic evaluator is said at the start of `nas search`, in `nas results` and on the plot's axes.

Every search runs through the real CLI on real files: a shipped latency table, and a real accuracy
predictor (fitted here on a few archs: what it predicts does not matter, only that it is not a stand-in).
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pytest
import yaml

import nas
from nas.cli import main
from nas.experiment import StandIns, load_run_config, pareto_figure, trials_table

ROOT = Path(__file__).resolve().parents[2]
TABLE = ROOT / "latency_tables" / "x86-2core_onnxruntime_t1_ofa_mbv3_r28_w0.5.csv"
SPACE = {"name": "ofa_mbv3", "resolutions": [28], "num_classes": 10, "in_channels": 1, "width_mult": 0.5}
LATENCY = {"table": {"tables": [{"path": str(TABLE), "name": "cpu-ort"}]},
           "proxy": {"tables": [{"path": "macs-proxy"}]}}


@pytest.fixture(scope="module")
def predictor(tmp_path_factory) -> Path:
    from nas.supernet import AccuracyPredictor

    space = nas.load_space(**{k: v for k, v in SPACE.items() if k != "name"}, name_or_path=SPACE["name"])
    rng = np.random.default_rng(0)
    archs = [space.sample(rng) for _ in range(12)]
    model = AccuracyPredictor(space, hidden=(8,), seed=0)
    model.fit(archs, list(rng.uniform(0.6, 0.9, len(archs))), heldout_fraction=0.25, epochs=5)
    path = tmp_path_factory.mktemp("predictor") / "predictor.pt"
    model.save(path)
    return path


def _config(tmp_path: Path, latency: str | None, evaluator: dict | None) -> Path:
    raw = {"name": "s", "run_dir": str(tmp_path / "run"), "seed": 0, "space": SPACE,
           "strategy": {"name": "random"}, "search": {"n_trials": 4, "progress": False}}
    if latency is not None:
        raw["latency"] = LATENCY[latency]
    if evaluator is not None:
        raw["evaluator"] = evaluator
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_missing_latency_is_an_error_naming_the_key_and_choices(tmp_path, capsys) -> None:
    assert main(["search", "--config", str(_config(tmp_path, None, {"name": "synthetic"}))]) == 2
    err = capsys.readouterr().err
    assert "latency.tables is missing" in err and "latency_tables/" in err and "{path: macs-proxy}" in err, err
    assert not (tmp_path / "run").exists()


def test_missing_evaluator_is_an_error_naming_the_key_and_choices(tmp_path, capsys) -> None:
    assert main(["search", "--config", str(_config(tmp_path, "proxy", None))]) == 2
    err = capsys.readouterr().err
    assert "evaluator.name is missing" in err and "predictor, supernet, train" in err, err
    assert "{name: synthetic}" in err, err
    assert not (tmp_path / "run").exists()
    # latency given but with no tables is the same error as no latency section
    raw = yaml.safe_load(_config(tmp_path, "proxy", {"name": "synthetic"}).read_text())
    raw["latency"] = {"budget_ms": 5.0}
    (tmp_path / "exp.yaml").write_text(yaml.safe_dump(raw))
    assert main(["search", "--config", str(tmp_path / "exp.yaml")]) == 2
    assert "latency.tables is missing" in capsys.readouterr().err


@pytest.mark.parametrize("latency,evaluator", [("proxy", "synthetic"), ("table", "synthetic"),
                                               ("proxy", "predictor"), ("table", "predictor")])
def test_stand_ins_are_said_at_start_in_results_and_on_the_plot(tmp_path, capsys, predictor, latency,
                                                                evaluator) -> None:
    spec = {"name": "synthetic"} if evaluator == "synthetic" else {"name": "predictor",
                                                                    "options": {"path": str(predictor)}}
    config = _config(tmp_path, latency, spec)
    proxy, synthetic = latency == "proxy", evaluator == "synthetic"

    assert main(["search", "--config", str(config), "--quiet"]) == 0
    out, err = capsys.readouterr()
    warnings = [line for line in err.splitlines()  # the shipped table's machine warning is another matter
                if line.startswith("nas: warning:") and "another machine" not in line]
    if proxy or synthetic:  # one line, the first thing on stderr
        assert len(warnings) == 1 and err.splitlines()[0] == warnings[0], err
        assert ("'macs-proxy' is a MACs proxy" in warnings[0]) == proxy, warnings
        assert ("accuracy is synthetic" in warnings[0]) == synthetic, warnings
    else:
        assert warnings == [] and "stand-in" not in err + out, err

    assert main(["results", str(tmp_path / "run")]) == 0
    out = capsys.readouterr().out
    notes = [line for line in out.splitlines() if line.startswith("note: stand-ins:")]
    assert len(notes) == (1 if proxy or synthetic else 0), out
    if notes:
        assert ("MACs proxy" in notes[0]) == proxy and ("synthetic" in notes[0]) == synthetic, notes

    run_config = load_run_config(tmp_path / "run")
    fig = pareto_figure(trials_table(run_config), {}, {}, StandIns.of(run_config))
    try:
        (ax,) = fig.axes
        xlabel, ylabel = ax.get_xlabel(), ax.get_ylabel()
    finally:
        plt.close(fig)
    if proxy:
        assert xlabel.startswith("MACs proxy") and "macs-proxy" in xlabel, xlabel
    else:
        assert xlabel == "predicted latency (ms) on cpu-ort"
    assert ylabel == ("synthetic accuracy (stand-in, no training)" if synthetic else "accuracy")
