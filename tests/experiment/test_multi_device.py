"""A search for several devices: budgets per table entry resolved once and recorded, config errors
naming the entry, one evaluation per arch serving every device, results per device."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import nas
from nas.experiment import (ConfigError, RunFolder, check_matrix, config_from_dict, device_winners, measure_winners,
                            prepare_search, report, run_search, trials_table)

ROOT = Path(__file__).resolve().parents[2]
TABLE = str(ROOT / "latency_tables" / "x86-2core_{}_t1_ofa_mbv3_r28_w0.5.csv")
SPACE = {"name": "ofa_mbv3", "resolutions": [28], "num_classes": 10, "in_channels": 1, "width_mult": 0.5}


def _raw(tmp_path: Path, goal: str | None = "per_device", **over) -> dict:
    """Two real cost models of the quickstart space, a budget quantile on each, synthetic accuracy."""
    raw = {"name": "md", "run_dir": str(tmp_path / "run"), "seed": 0, "space": SPACE,
           "latency": {"tables": [{"path": TABLE.format("onnxruntime"), "name": "ort", "budget_quantile": 0.3},
                                  {"path": TABLE.format("tflite"), "name": "tfl", "budget_quantile": 0.3}],
                       "reward": "accuracy"},
           "evaluator": {"name": "synthetic"}, "strategy": {"name": "evolution", "options": {"population": 10}},
           "search": {"n_trials": 30, "progress": False, "storage": str(tmp_path / "s.journal")}}
    if goal:
        raw["latency"]["goal"] = goal
    raw.update(over)
    return raw


def test_per_device_budgets_are_resolved_once_and_recorded(tmp_path) -> None:
    setup = prepare_search(config_from_dict(_raw(tmp_path, goal=None)))
    assert setup.goal == "joint" and [b["table"] for b in setup.budgets] == ["ort", "tfl"]
    rng = np.random.default_rng([0, 0xB0D6E7])
    archs = [setup.space.sample(rng) for _ in range(1000)]
    for b, source in zip(setup.budgets, setup.sources):
        assert b["budget_ms"] == float(f"{np.quantile(source.predict_many(archs), 0.3):.4g}")
    assert setup.budget_ms == setup.budgets[0]["budget_ms"]
    run_search(config_from_dict(_raw(tmp_path, goal=None, search={"n_trials": 4, "progress": False})))
    meta = json.loads((tmp_path / "run" / "meta.json").read_text())
    assert meta["goal"] == "joint" and meta["budgets"] == setup.budgets
    assert RunFolder.open(tmp_path / "run").budgets == setup.budgets


def test_one_table_budget_in_its_entry_equals_the_latency_level_key(tmp_path) -> None:
    raw = _raw(tmp_path, goal=None)
    raw["latency"]["tables"] = raw["latency"]["tables"][:1]
    entry = prepare_search(config_from_dict(raw))
    raw["latency"]["tables"][0].pop("budget_quantile")
    raw["latency"]["budget_quantile"] = 0.3
    top = prepare_search(config_from_dict(raw))
    assert entry.budget_ms == top.budget_ms and entry.objective == top.objective and top.goal is None


@pytest.mark.parametrize("edit,match", [
    (lambda r: r["latency"]["tables"][1].update(budget_quantile=1.5), r"latency.tables.1 \(tfl\).budget_quantile"),
    (lambda r: r["latency"]["tables"][1].update(budget_ms=2.0), r"latency.tables.1 \(tfl\): give budget_ms or"),
    (lambda r: r["latency"]["tables"][0].update(target_ms=-1), r"latency.tables.0 \(ort\).target_ms must be"),
    (lambda r: r["latency"].update(budget_ms=3.0), r"latency.tables.0 \(ort\) carries its own budget"),
    (lambda r: r["latency"].update(goal="both"), r"latency.goal: 'both' is not one of joint, per_device"),
    (lambda r: r["latency"]["tables"][0].pop("budget_quantile"), r"latency.tables.1: the only table with a budget"),
    (lambda r: r.update(strategy={"name": "proxyless"}), r"strategies.0.name: proxyless takes one budgeted"),
])
def test_config_errors_name_the_table_entry(tmp_path, edit, match) -> None:
    raw = _raw(tmp_path)
    edit(raw)
    with pytest.raises(ConfigError, match=match):
        config_from_dict(raw)


def test_goal_needs_two_budgeted_tables(tmp_path) -> None:
    raw = _raw(tmp_path)
    raw["latency"]["tables"][1].pop("budget_quantile")
    with pytest.raises(ConfigError, match="latency.goal 'per_device' needs a budget"):
        config_from_dict(raw)


def test_one_evaluation_serves_every_device_and_results_pick_per_device(tmp_path) -> None:
    config = config_from_dict(_raw(tmp_path))
    run_search(config)
    df = trials_table(config)
    done = df[df.state == "COMPLETE"]
    assert len(done) == 30 and done[["latency_ms[ort]", "latency_ms[tfl]"]].notna().all().all()
    budgets = {b["table"]: b["budget_ms"] for b in RunFolder.open(config.run_dir).budgets}
    rep = report(config.run_dir, export_best=tmp_path / "best")
    assert list(rep.winners.device) == ["ort", "tfl"]
    for w in rep.winners.itertuples():  # the most accurate trial within that device's budget, of one history
        pool = done[done[f"latency_ms[{w.device}]"] <= budgets[w.device]]
        assert w.accuracy == pool.accuracy.max()
        assert nas.Arch.from_json((tmp_path / "best" / f"{w.device}.json").read_text()).to_json() == \
            nas.Arch.from_json(w.arch).to_json()
    assert (tmp_path / "run" / "winners.csv").is_file() and rep.plot_path.stat().st_size > 10_000
    assert sorted(rep.best.table) == ["ort", "tfl"] and set(rep.best.budget_ms) == set(budgets.values())


def test_joint_winner_meets_every_budget(tmp_path) -> None:
    config = config_from_dict(_raw(tmp_path, goal="joint", search={"n_trials": 20, "progress": False}))
    run_search(config)
    run = RunFolder.open(config.run_dir)
    winners = device_winners(trials_table(config), run.budgets, "joint")
    assert winners.trial.nunique() == 1 and (winners.meets == "ort,tfl").all()
    done = trials_table(config)
    for b in run.budgets:
        assert (done[f"latency_ms[{b['table']}]"] <= b["budget_ms"]).all()


def test_measure_winners_builds_the_matrix_and_checks_it(tmp_path, monkeypatch) -> None:
    import nas.latency

    config = config_from_dict(_raw(tmp_path, search={"n_trials": 12, "progress": False}))
    run_search(config)
    run = RunFolder.open(config.run_dir)
    winners = device_winners(trials_table(config), run.budgets, "per_device")
    # measured = 1.01 x predicted: no process is started, the bookkeeping is under test
    monkeypatch.setattr(nas.latency, "measure_archs",
                        lambda archs, space, table, work, **kw: 1.01 * np.asarray(table.predict_many(archs, space)))
    setup = prepare_search(config)
    measured, skipped = measure_winners(winners, setup.space, setup.sources, tmp_path / "w", run.budgets)
    assert not skipped and len(measured) == 4 and set(measured.measured_on) == {"ort", "tfl"}
    assert np.allclose(measured.measured_ms, 1.01 * measured.predicted_ms)
    bad = pd.DataFrame([
        {"winner_for": "a", "measured_on": "a", "accuracy": 0.8, "measured_ms": 1.1, "budget_ms": 1.0, "meets_budget": False},
        {"winner_for": "b", "measured_on": "a", "accuracy": 0.9, "measured_ms": 0.9, "budget_ms": 1.0, "meets_budget": True}])
    lines = check_matrix(bad)
    assert len(lines) == 2 and "over its budget" in lines[0] and "more accurate" in lines[1]


def test_verify_replaces_a_winner_that_measures_over_its_budget(tmp_path, monkeypatch) -> None:
    import nas.latency
    from nas.experiment import verify_winners

    config = config_from_dict(_raw(tmp_path, search={"n_trials": 12, "progress": False}))
    run_search(config)
    run, df = RunFolder.open(config.run_dir), trials_table(config)
    winners = device_winners(df, run.budgets, "per_device")
    slow = nas.Arch.from_json(winners.arch[0])  # ort's winner measures 2x its prediction, every other arch 1x
    monkeypatch.setattr(nas.latency, "measure_archs", lambda archs, space, table, work, **kw: np.array(
        [(2.0 if a == slow else 1.0) * float(table.predict_many([a], space)[0]) for a in archs]))
    setup = prepare_search(config)
    verified, notes = verify_winners(df, winners, run.budgets, setup.space, setup.sources, tmp_path / "v")
    ort = verified.iloc[0]
    assert ort.trial != winners.trial[0] and ort.verified_ms <= ort.budget_ms and "replaced by trial" in notes[0]
    assert ort.accuracy <= winners.accuracy[0]
    if nas.Arch.from_json(winners.arch[1]) != slow:
        assert verified.trial[1] == winners.trial[1]  # a winner within its budget stays


def test_verify_corrects_a_table_that_is_optimistic_on_the_candidates(tmp_path, monkeypatch) -> None:
    """Every arch measures 1.25x its prediction: a round whose candidates all miss the budget teaches
    the bias, and the next round takes the most accurate trial the corrected table fits."""
    import nas.latency
    from nas.experiment import verify_best

    config = config_from_dict(_raw(tmp_path, search={"n_trials": 30, "progress": False}))
    run_search(config)
    run, df = RunFolder.open(config.run_dir), trials_table(config)
    monkeypatch.setattr(nas.latency, "measure_archs", lambda archs, space, table, work, **kw: np.array(
        [1.25 * float(table.predict_many([a], space)[0]) for a in archs]))
    verified, notes = verify_best(run, df, device_winners(df, run.budgets, "per_device"), candidates=2)
    done = df[df.state == "COMPLETE"].drop_duplicates("arch")
    for w in verified.itertuples():
        col = f"latency_ms[{w.device}]"
        fits = done[1.25 * done[col] <= w.budget_ms].sort_values(["accuracy", col], ascending=[False, True])
        assert not fits.empty and w.trial == fits.trial.iloc[0] and w.verified_ms <= w.budget_ms
    assert all(len(notes) == 0 or "too fast" in n or "replaced" in n for n in notes)
    one, _ = verify_best(run, df, None, candidates=2)  # a one-budget view: the primary table's best arch
    assert len(one) == 1 and one.device[0] == run.budgets[0]["table"] and one.verified_ms[0] <= run.budget_ms
