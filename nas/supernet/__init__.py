"""Once-for-all supernet: shared weights for every arch of an elastic MBConv space.

``Supernet(space)(x, arch)`` runs any arch on shared weights (the arch is an argument, never
module state); ``extract(supernet, arch)`` returns the equivalent static `nas.build_model` network;
``train_supernet(config)`` trains with progressive shrinking, the sandwich rule and in-place
distillation; ``SharedWeightEvaluator`` measures archs with recalibrated batch norm (and, with ``int8``, under
simulated int8: ``fake_quantized``).
"""

from nas.supernet._bn import recalibrate_bn, recalibrated, resize
from nas.supernet._checkpoint import slim_checkpoint
from nas.supernet._evaluate import SharedWeightEvaluator, accuracy
from nas.supernet._extract import extract, load_extracted, save_extracted
from nas.supernet._predictor import AccuracyPredictor, PredictorReport, kendall_tau, load_accuracy_predictor, one_hot
from nas.supernet._finetune import FinetuneConfig, finetune
from nas.supernet._quant import fake_quantized
from nas.supernet._ops import SE_NAMES, ActiveWeights, BNParams, DynamicMBBlock, SupernetError, center_crop, slice_se
from nas.supernet._supernet import ELASTIC, Supernet, check_space, extreme_arch, largest_arch, smallest_arch
from nas.supernet._threads import note_default_threads
from nas.supernet._train import (CheckpointError, ConfigError, Phase, TrainConfig, TrainResult, checkpoint_config,
                                 checkpoint_evaluator, config_loaders, load_checkpoint, make_evaluator, phase_space,
                                 sandwich, save_checkpoint, supernet_from_checkpoint, train_supernet)

__all__ = ["ELASTIC", "SE_NAMES", "AccuracyPredictor", "ActiveWeights", "BNParams", "CheckpointError",
           "ConfigError", "DynamicMBBlock", "Phase", "SharedWeightEvaluator", "Supernet", "SupernetError",
           "TrainConfig", "TrainResult", "accuracy", "center_crop", "check_space", "checkpoint_config",
           "checkpoint_evaluator", "config_loaders", "extract", "extreme_arch", "fake_quantized", "FinetuneConfig", "finetune", "largest_arch",
           "load_accuracy_predictor", "load_checkpoint", "make_evaluator", "kendall_tau", "load_extracted",
           "one_hot", "phase_space", "PredictorReport", "recalibrate_bn", "recalibrated", "resize", "sandwich",
           "save_checkpoint", "slice_se", "save_extracted", "slim_checkpoint", "smallest_arch",
           "supernet_from_checkpoint", "train_supernet"]

note_default_threads()  # torch's default, before `nas supernet train --threads` changes it
