"""The shipped experiment configs parse (every key known) and name real strategies/evaluators."""

from __future__ import annotations

from pathlib import Path

import pytest

from nas.experiment import load_config
from nas.proxyless import ProxylessConfig
from nas.strategies import make_config

ROOT = Path(__file__).resolve().parents[2] / "experiments"


@pytest.mark.parametrize("name", ["quickstart.yaml", "compare_strategies.yaml", "proxyless_fmnist.yaml"])
def test_shipped_config_parses(name) -> None:
    config = load_config(ROOT / name)
    for s in config.strategies:  # unknown strategy options would raise here
        if s.name == "proxyless":
            ProxylessConfig.from_dict(s.options, target_ms=config.latency.target_ms or 1.0)
        else:
            make_config(s.name, s.options)
    assert config.evaluator.name in ("synthetic", "predictor", "supernet", "train")


def test_compare_runs_with_synthetic_evaluator(tmp_path) -> None:
    from nas.experiment import report, run_search

    config = load_config(ROOT / "compare_strategies.yaml", [
        f"run_dir={tmp_path / 'run'}", "evaluator.name=synthetic", "evaluator.options={}",
        "latency.tables=[{path: macs-proxy}]", "latency.target_ms=5.0", "search.n_trials=6",
        "search.progress=false"])
    ask_tell = [s.key for s in config.strategies if s.name != "proxyless"]  # proxyless needs a table and data
    run_search(config, strategies=ask_tell)
    rep = report(config.run_dir)
    assert set(rep.hypervolume.strategy) == set(ask_tell) and len(ask_tell) == len(config.strategies) - 1


@pytest.mark.parametrize("name", ["quickstart.yaml", "compare_strategies.yaml", "proxyless_fmnist.yaml"])
def test_shipped_config_passes_every_check_up_to_the_supernet_checkpoint(tmp_path, monkeypatch, name) -> None:
    """Space, table files and coverage, budget, strategies, storage: all pass; the one missing input on a
    fresh clone is the supernet checkpoint (trained by the quickstart), and the error names it."""
    from nas.experiment import ConfigError, prepare_search

    monkeypatch.chdir(ROOT.parent)  # the configs' table paths are relative to the repository root
    config = load_config(ROOT / name)
    overrides = [f"run_dir={tmp_path / 'run'}", f"evaluator.options.checkpoint={tmp_path / 'none.pt'}"]
    if name in ("quickstart.yaml", "compare_strategies.yaml"):  # their table is measured here by quickstart.sh;
        # a shipped one stands in
        overrides.append("latency.tables=[{path: latency_tables/x86-2core_onnxruntime_t1_ofa_mbv3_r28_w0.5.csv, "
                         "name: cpu-ort}]")
    overrides += [f"strategies.{i}.options.dataset=fashion_mnist_tiny"  # the full dataset may not be installed
                  for i, s in enumerate(config.strategies) if s.name == "proxyless"]
    config = load_config(ROOT / name, overrides)
    with pytest.raises(ConfigError, match=r"evaluator\.options\.checkpoint: file .*none\.pt' does not exist"):
        prepare_search(config)
    assert not (tmp_path / "run").exists()


def test_one_config_error_and_one_format(tmp_path) -> None:
    """Experiment, supernet, strategy and ProxylessNAS configs load through `nas._config.load`: the
    same `ConfigError` class and one line naming the key's path (as ``--set`` spells it)."""
    import nas.experiment
    import nas.supernet
    from nas.experiment import config_from_dict
    from nas.supernet import TrainConfig

    assert nas.experiment.ConfigError is nas.supernet.ConfigError
    base = {"latency": {"tables": [{"path": "macs-proxy"}]}, "evaluator": {"name": "synthetic"}}
    cases = [
        (lambda: config_from_dict({**base, "search": {"n_trails": 3}}),
         r"^search\.n_trails: unknown key; allowed: \['max_tries', 'n_trials', 'progress', 'seeds', 'storage'\]$"),
        (lambda: config_from_dict({**base, "seed": True}), r"^seed: expected int, got True$"),
        (lambda: config_from_dict({**base, "strategy": {"name": "rl", "options": {"lr": "fast"}}}),
         r"^strategy\.options\.lr: expected float, got 'fast'$"),
        (lambda: config_from_dict({**base, "strategies": [{"name": "proxyless", "options": {"stpes": 5}}]}),
         r"^strategies\.0\.options\.stpes: unknown key; allowed: \["),
        (lambda: make_config("evolution", {"mode": "aging"}), r"^mode: unknown key; allowed: \['mutate_prob', "),
        (lambda: ProxylessConfig.from_dict({"target_ms": 1.0, "steps": 2.5}), r"^steps: expected int, got 2\.5$"),
        (lambda: TrainConfig.from_dict({"output_dir": "x", "space": {"name": "ofa_mbv3"}, "data": {"dataset": "d"},
                                        "phases": [{"name": "a", "lr": 0.1}]}), r"^config: phases\.0\.steps: missing key$"),
    ]
    for build, words in cases:
        with pytest.raises(nas.experiment.ConfigError, match=words):
            build()


def test_valid_inputs_keep_their_meaning() -> None:
    """One item for a list, an empty section for its defaults, an int for a float: as before."""
    from nas.experiment import config_from_dict

    config = config_from_dict({"latency": {"tables": {"path": "macs-proxy"}, "budget_ms": 1}, "search": None,
                               "evaluator": {"name": "synthetic"}, "results": {"budgets_ms": 2}, "strategy": {"name": "aging"}},
                              ["space.resolutions=28", "strategy.options.population=4"])
    assert config.latency.tables[0].path == "macs-proxy" and config.latency.budget_ms == 1.0
    assert isinstance(config.latency.budget_ms, float) and config.results.budgets_ms == [2.0]
    assert config.search.n_trials == 100 and config.space.resolutions == [28]
    assert config.strategies[0].options == {"population": 4}
