"""Evaluators: turn archs into `Result`s (accuracy, latency per table, params, MACs).

`SyntheticEvaluator` (known optimum, for tests/benchmarks), `PredictorEvaluator` (an accuracy
predictor), `TrainEvaluator` (short training from scratch); latency from `TableLatency` (a
latency table per device) or `MacsProxy` (a named stand-in when no table exists).
"""

from nas.evaluators._common import EvaluatorBase, latency_fn
from nas.evaluators._latency import LatencyError, LatencySource, MacsProxy, TableLatency, arch_macs, arch_params
from nas.evaluators._predictor import PredictorEvaluator
from nas.evaluators._result import Evaluator, Result
from nas.evaluators._supernet import SupernetEvaluator, load_accuracy_predictor
from nas.evaluators._synthetic import SyntheticEvaluator
from nas.evaluators._train import TrainEvaluator

__all__ = ["Evaluator", "EvaluatorBase", "LatencyError", "LatencySource", "MacsProxy", "PredictorEvaluator",
           "Result", "SupernetEvaluator", "SyntheticEvaluator", "TableLatency", "TrainEvaluator", "arch_macs",
           "arch_params", "latency_fn", "load_accuracy_predictor"]
