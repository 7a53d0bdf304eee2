"""Search experiments: YAML configs, the persisted/resumable multi-worker runner, results.

    from nas.experiment import load_config, run_search, report
    config = load_config("experiments/compare_strategies.yaml", ["search.n_trials=50"])
    run_search(config)                     # rerun to resume; start N processes to share the work
    report(config.run_dir, export_best="best.json")

A multi-device search (a budget on two or more of ``latency.tables``, ``latency.goal`` joint or
per_device) reports a winner per device (`device_winners`) and the cross-device matrix
(`measure_winners`, `check_matrix`, `matrix_figure`).

`prepare_search(config)` checks the whole config against its files without writing anything
(`run_search` calls it first). `StandIns.of(config)` names the stand-ins a config opts into
(``latency.tables: [{path: macs-proxy}]``, ``evaluator.name: synthetic``).
"""

from nas.experiment._config import (ConfigError, EvaluatorConfig, ExperimentConfig, LatencyConfig, ResultsConfig,
                                    SearchConfig, SpaceConfig, StrategyConfig, TableConfig, apply_overrides,
                                    config_from_dict, load_config)
from nas.experiment._build import SearchSetup, build_evaluator, build_latency, build_objective, build_space, prepare_search
from nas.experiment._rundir import RunFolder, load_run_config
from nas.experiment._pareto import hypervolume, pareto_mask
from nas.experiment._results import (RunReport, best_under_budgets, export_best_arch, hypervolume_summary,
                                     hypervolume_table, measure_best,
                                     pareto_figure, pareto_plot, report, run_machine_warnings, trials_table,
                                     verify_best)
from nas.experiment._results_multi import (check_matrix, device_winners, export_winners, matrix, matrix_figure,
                                           measurable_sources, measure_winners, verify_winners)
from nas.experiment._runner import WorkerReport, run_search
from nas.experiment._storage import fail_stale_trials, heartbeat, open_storage, storage_url
from nas.experiment._standins import StandIns

__all__ = ["check_matrix", "device_winners", "export_winners", "matrix", "matrix_figure", "measurable_sources",
           "measure_winners", "verify_winners", "ConfigError", "EvaluatorConfig", "ExperimentConfig", "LatencyConfig", "ResultsConfig", "RunFolder",
           "RunReport", "SearchConfig", "SearchSetup", "SpaceConfig", "StandIns", "StrategyConfig", "TableConfig",
           "WorkerReport", "apply_overrides", "best_under_budgets", "build_evaluator", "build_latency",
           "build_objective", "build_space", "config_from_dict", "export_best_arch", "fail_stale_trials",
           "heartbeat", "hypervolume", "hypervolume_summary", "hypervolume_table", "load_config", "load_run_config", "measure_best", "verify_best",
           "open_storage", "pareto_figure", "pareto_mask", "pareto_plot", "prepare_search", "report",
           "run_machine_warnings", "run_search", "storage_url", "trials_table"]
