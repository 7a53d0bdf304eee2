"""Fine-tuning an extracted subnet (`nas.supernet.finetune`, ``nas finetune``): seeded, distillation
from a teacher, and a killed run resumes to the same weights. Real training on the tiny
Fashion-MNIST subset shipped in the package."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import nas
from nas.data import load_dataset, make_loaders
from nas.supernet import FinetuneConfig, finetune


@pytest.fixture(scope="module")
def train():
    splits = load_dataset("fashion_mnist_tiny", val_fraction=0.1, seed=0)
    return make_loaders(splits, batch_size=16, resolution=28, augment=True, generator=0).train


def _net(seed: int = 0) -> nas.Network:
    space = nas.load_space("ofa_mbv3", resolutions=[28], num_classes=10, in_channels=1, width_mult=0.5)
    torch.manual_seed(seed)
    return nas.build_model(space.preset("ofa_min", resolution=28), 10, 1)


def _same(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


def test_seeded_runs_agree_and_the_loss_falls(train) -> None:
    losses: list[float] = []
    a = finetune(_net(), train, FinetuneConfig(steps=12, lr=0.05, seed=3), on_step=lambda s, l: losses.append(l))
    b = finetune(_net(), train, FinetuneConfig(steps=12, lr=0.05, seed=3))
    c = finetune(_net(), train, FinetuneConfig(steps=12, lr=0.05, seed=4))
    assert _same(a, b) and not _same(a, c) and not a.training
    assert len(losses) == 12 and np.mean(losses[-4:]) < np.mean(losses[:4])


def test_distillation_uses_the_teacher_and_leaves_it_alone(train) -> None:
    teacher = _net(seed=7).eval()
    before = {k: v.clone() for k, v in teacher.state_dict().items()}
    plain = finetune(_net(), train, FinetuneConfig(steps=6, seed=1))
    kd = finetune(_net(), train, FinetuneConfig(steps=6, seed=1, kd_weight=1.0, kd_temperature=2.0), teacher=teacher)
    assert not _same(plain, kd)  # same batches, another loss
    assert all(torch.equal(before[k], v) for k, v in teacher.state_dict().items())
    with pytest.raises(ValueError, match="needs a teacher"):
        finetune(_net(), train, FinetuneConfig(steps=2, kd_weight=1.0))
    with pytest.raises(ValueError, match="steps >= 1"):
        FinetuneConfig(steps=0)


def test_a_killed_run_resumes_to_the_weights_of_an_uninterrupted_one(train, tmp_path) -> None:
    config = FinetuneConfig(steps=10, lr=0.05, seed=2)
    whole = finetune(_net(), train, config)
    state = tmp_path / "run.resume.pt"

    def kill(step: int, loss: float) -> None:
        if step == 7:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        finetune(_net(), train, config, resume=state, checkpoint_every=3, on_step=kill)
    assert state.is_file()  # saved at step 6
    steps: list[int] = []
    resumed = finetune(_net(), train, config, resume=state, checkpoint_every=3, on_step=lambda s, l: steps.append(s))
    assert steps == [7, 8, 9, 10] and _same(whole, resumed) and not state.exists()
    with pytest.raises(KeyboardInterrupt):
        finetune(_net(), train, config, resume=state, checkpoint_every=3, on_step=kill)
    with pytest.raises(ValueError, match="other settings"):
        finetune(_net(), train, FinetuneConfig(steps=10, lr=0.01, seed=2), resume=state)


def test_cli_finetunes_distils_and_records_the_settings(tmp_path) -> None:
    from nas.cli import main
    from nas.supernet import TrainConfig, load_extracted, train_supernet

    config = {"seed": 0, "output_dir": str(tmp_path / "ckpt"), "space": {"name": "ofa_mbv3", "resolutions": [28],
              "width_mult": 0.5}, "data": {"dataset": "fashion_mnist_tiny", "batch_size": 16, "limit": 96},
              "eval": {"bn_batches": 1, "limit": 32, "batch_size": 32}, "phases": [{"name": "full", "steps": 2, "lr": 0.05}]}
    train_supernet(TrainConfig.from_dict(config), progress=False, log=lambda s: None)
    space = nas.load_space("ofa_mbv3", resolutions=[28], num_classes=10, in_channels=1, width_mult=0.5)
    arch = space.preset("ofa_min", resolution=28)
    (tmp_path / "a.json").write_text(arch.to_json())
    out = tmp_path / "tuned.pt"
    assert main(["finetune", "--checkpoint", str(tmp_path / "ckpt" / "checkpoint.pt"), "--arch", str(tmp_path / "a.json"),
                 "--out", str(out), "--steps", "3", "--distill", "--recalibrate-bn", "1", "--evaluate", "val",
                 "--quiet"]) == 0
    record = json.loads((tmp_path / "tuned.pt.json").read_text())
    assert record["finetune"]["steps"] == 3 and record["finetune"]["kd_weight"] == 1.0
    assert record["teacher"].startswith("largest subnet") and 0 <= record["accuracy"]["after"] <= 1
    assert load_extracted(out).arch == arch and not (tmp_path / "tuned.pt.resume.pt").exists()
