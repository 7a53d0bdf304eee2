"""`nas supernet train` checks its config, data and space before it writes anything.

Each bad config runs through the real CLI (`nas.cli.main`) on the shipped tiny Fashion-MNIST: exit
status 2, an error naming the bad key, and no output_dir afterwards (or, when one already held a
checkpoint, the folder byte for byte as it was).
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest
import yaml

from nas.cli import main


def good_config(output_dir: Path) -> dict:
    return {"seed": 0, "output_dir": str(output_dir),
            "space": {"name": "ofa_mbv3", "resolutions": [28], "width_mult": 0.5},
            "data": {"dataset": "fashion_mnist_tiny", "batch_size": 16, "limit": 64},
            "eval": {"bn_batches": 1, "limit": 32, "batch_size": 32},
            "checkpoint_every_steps": 1,
            "phases": [{"name": "full", "steps": 1, "lr": 0.05}]}


# (case id, top-level or section changes, what the error must name)
BAD = [
    ("unknown-key", {"lr_schedule": "cos"}, ["lr_schedule"]),
    ("unknown-dataset", {"data": {"dataset": "fashion_mnst"}}, ["data", "fashion_mnst"]),
    ("missing-data-root", {"data": {"dataset": "fashion_mnist", "root": "no/such/dir"}}, ["data", "no/such/dir"]),
    ("batch-larger-than-data", {"data": {"dataset": "fashion_mnist_tiny", "batch_size": 128, "limit": 64}},
     ["batch_size"]),
    ("zero-data-limit", {"data": {"dataset": "fashion_mnist_tiny", "limit": 0}}, ["data", "limit"]),
    ("zero-eval-limit", {"eval": {"limit": 0}}, ["eval", "limit"]),
    ("unknown-space", {"space": {"name": "ofa_mbv4"}}, ["ofa_mbv4"]),
    ("bad-space-option", {"space": {"name": "ofa_mbv3", "resolution": [28]}}, ["space", "resolution"]),
    ("space-classes-differ-from-data", {"space": {"name": "ofa_mbv3", "resolutions": [28], "num_classes": 100}},
     ["space", "num_classes"]),
    ("bad-elastic", {"phases": [{"name": "a", "steps": 1, "lr": 0.1, "elastic": ["width"]}]}, ["elastic", "width"]),
    ("bad-optimizer", {"optimizer": {"name": "lamb"}}, ["optimizer", "lamb"]),
]


def _write(tmp_path: Path, output_dir: Path, changes: dict) -> Path:
    raw = {**good_config(output_dir), **changes}
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def _snapshot(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
            for p in sorted(folder.rglob("*"))}


def _fails_naming(config: Path, names: list[str], capsys) -> None:
    rc = main(["supernet", "train", "--config", str(config), "--quiet", "--threads", "1"])
    err = capsys.readouterr().err
    assert rc == 2, err
    error = [line for line in err.splitlines() if line.startswith("nas: error:")]
    assert len(error) == 1, err
    for name in names:
        assert name in error[0], error[0]


@pytest.mark.parametrize("case,changes,names", BAD, ids=[b[0] for b in BAD])
def test_bad_config_writes_nothing(tmp_path, monkeypatch, capsys, case, changes, names) -> None:
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "runs" / "supernet"
    _fails_naming(_write(tmp_path, out, changes), names, capsys)
    assert not out.exists() and not (tmp_path / "runs").exists()


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """An output_dir after one training step of the good config (a checkpoint and history)."""
    base = tmp_path_factory.mktemp("trained")
    path = base / "good.yaml"
    path.write_text(yaml.safe_dump(good_config(base / "out")))
    assert main(["supernet", "train", "--config", str(path), "--quiet", "--threads", "1"]) == 0
    assert (base / "out" / "checkpoint.pt").is_file()
    return base / "out"


@pytest.mark.parametrize("case", ["unknown-dataset", "missing-data-root", "zero-eval-limit", "bad-space-option",
                                  "bad-elastic"])
def test_bad_config_leaves_an_existing_output_dir_unchanged(tmp_path, monkeypatch, capsys, trained, case) -> None:
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "out"
    shutil.copytree(trained, out)
    before = _snapshot(out)
    _, changes, names = next(b for b in BAD if b[0] == case)
    _fails_naming(_write(tmp_path, out, changes), names, capsys)
    assert _snapshot(out) == before


@pytest.mark.parametrize("flags, names", [
    (["--set", "data.dataset=fashion_mnst"], ["data", "fashion_mnst"]),
    (["--set", "lr_schedule=cos"], ["lr_schedule"]),
    (["--set", "phases.3.steps=1"], ["--set phases.3.steps", "'3' is not an index"]),
    (["--set", "phases"], ["--set 'phases'", "key=value"]),
    (["--data-root", "no/such/dir", "--set", "data.dataset=fashion_mnist"], ["data", "no/such/dir"]),
])
def test_set_and_data_root_are_checked_like_the_file(tmp_path, monkeypatch, capsys, flags, names) -> None:
    """`--set` (the implementation `nas search` uses) and `--data-root` change the config before it is
    checked: a bad value names its key, and nothing is written."""
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "runs" / "supernet"
    config = _write(tmp_path, out, {})
    rc = main(["supernet", "train", "--config", str(config), "--quiet", "--threads", "1", *flags])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("nas: error: ") and err.count("\n") == 1, err
    for name in names:
        assert name in err, err
    assert not out.exists()


def test_set_and_data_root_reach_the_config(tmp_path) -> None:
    from nas.cli._supernet import train_config

    config = _write(tmp_path, tmp_path / "out", {})
    cfg = train_config(str(config), ["phases.0.steps=7", "data.batch_size=8"], "some/root")
    assert cfg.phases[0].steps == 7 and cfg.data["batch_size"] == 8 and cfg.data["root"] == "some/root"
    assert train_config(str(config)).raw == yaml.safe_load(config.read_text())
