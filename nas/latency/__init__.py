"""Latency tables: measure every layer of a space on the target device, predict whole networks.

``build_table`` times each `BlockKey` of a space with one backend (onnxruntime, tflite, torch) in
≥3 independent passes; `LatencyTable` loads/saves the CSV + JSON, looks entries up, predicts one
arch (`predict`), many (`predict_many`, vectorized), or the expectation under choice probabilities
(`expected`, differentiable, for ProxylessNAS-style search); a calibration fitted on whole networks
measured end to end corrects the sum, and validation reports the predictor's own error.
"""

from nas._device import PassStats, Protocol, ProtocolError
from nas.latency._backends import BACKENDS, BackendError, backend_unavailable_reason
from nas.latency._adapt import adapt
from nas.latency._build import NoisyMachineError, build_table
from nas.latency._check import (CheckResult, canary_archs, check_table, format_check, machine_diffs, machine_warning,
                                measure_canaries, noise_floor, rescale, warn_if_foreign)
from nas.latency._extend import time_keys
from nas.latency._bundle import import_measured, validate_measured, write_bundle
from nas.latency._predict import CompiledPredictor, PredictError
from nas.latency._table import Calibration, LatencyTable, MissingKeyError, TableError
from nas.latency._validate import (ErrorReport, calibrate, format_report, measure_archs, refit, space_of, validate,
                                   write_validation)

__all__ = ["BACKENDS", "BackendError", "Calibration", "CheckResult", "CompiledPredictor", "ErrorReport",
           "LatencyTable", "MissingKeyError", "NoisyMachineError", "PassStats", "PredictError", "Protocol",
           "ProtocolError", "TableError", "adapt", "backend_unavailable_reason", "build_table", "calibrate", "canary_archs",
           "check_table", "format_check", "format_report", "import_measured", "machine_diffs", "machine_warning", "measure_archs",
           "measure_canaries", "noise_floor", "refit", "rescale", "space_of", "time_keys", "validate", "validate_measured",
           "warn_if_foreign", "write_bundle", "write_validation"]
