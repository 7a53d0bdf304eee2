"""The shipped quickstart supernet (experiments/weights/): its config, its accuracy bars, and the
search's supernet evaluator reading the file directly."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

import nas
from nas.supernet import TrainConfig, largest_arch, load_checkpoint, smallest_arch, supernet_from_checkpoint

ROOT = Path(__file__).resolve().parents[2]
WEIGHTS = ROOT / "experiments/weights/supernet_fmnist.pt"
CONFIG = ROOT / "experiments/supernet_fmnist.yaml"


def _final(history: list[dict], which: str) -> float:
    return [row["val_acc"] for row in history if row["arch"] == which][-1]


def _quickstart_space() -> nas.SearchSpace:
    space = dict(yaml.safe_load((ROOT / "experiments/quickstart.yaml").read_text())["space"])
    return nas.load_space(space.pop("name"), **space)


def test_shipped_weights_are_small_complete_and_from_the_documented_config():
    assert WEIGHTS.stat().st_size < 8e6
    payload = load_checkpoint(WEIGHTS)
    assert payload["weights_only"] and "optimizer" not in payload
    assert payload["config"] == TrainConfig.from_file(CONFIG).comparable(), \
        "experiments/supernet_fmnist.yaml changed since the weights were trained: retrain and re-export them"
    assert payload["step"] == TrainConfig.from_file(CONFIG).total_steps
    assert _final(payload["history"], "max") >= 0.88 and _final(payload["history"], "min") >= 0.82
    supernet = supernet_from_checkpoint(WEIGHTS)
    ours, theirs = _quickstart_space().to_dict(), supernet.space.to_dict()
    assert {k: v for k, v in ours.items() if k != "description"} == \
        {k: v for k, v in theirs.items() if k != "description"}


def test_supernet_evaluator_reads_the_shipped_weights_and_reproduces_their_accuracy():
    from nas.data import DatasetError, find_dataset_root
    from nas.evaluators._supernet import SupernetEvaluator

    try:
        find_dataset_root("fashion_mnist")
    except DatasetError:
        pytest.skip("Fashion-MNIST is not installed (apt-get install dataset-fashion-mnist)")
    space = _quickstart_space()
    evaluator = SupernetEvaluator.from_checkpoint(space, checkpoint=str(WEIGHTS))
    history = load_checkpoint(WEIGHTS)["history"]
    for which, arch in (("max", largest_arch(space)), ("min", smallest_arch(space))):
        accuracy = float(evaluator.accuracies([arch])[0][0])
        # the training run's own evaluation, on the same 6,000 validation images (at most 12 may
        # flip with another thread count's rounding)
        assert accuracy == pytest.approx(_final(history, which), abs=0.002), which
