"""Fingerprints, canaries and `nas latency check`: MATCH / DRIFT / REBUILD on real measurements."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from nas._device._fingerprint import FieldDiff, fingerprint, fingerprint_diff
from nas.latency import LatencyTable, Protocol, build_table, check_table, machine_warning, refit, rescale
from nas.latency._check import judge
from nas.latency._validate import calibrate

TINY = str(Path(__file__).with_name("tiny_space.yaml"))


@pytest.fixture(scope="module")
def built(tmp_path_factory, tiny_space):
    """A tiny ORT table built here with the default protocol (stable enough to compare canaries)."""
    out = tmp_path_factory.mktemp("check") / "t.csv"
    build_table(tiny_space(), "onnxruntime", out, device_name="here", progress=False, log=lambda m: None)
    return out


def _copy(src: Path, dst: Path, edit=None) -> LatencyTable:  # noqa: ANN001
    table = LatencyTable.load(src)
    if edit:
        edit(table.metadata)
    table.save(dst)
    return LatencyTable.load(dst)


def test_build_records_fingerprint_noise_and_canaries(built):
    meta = LatencyTable.load(built).metadata
    here = fingerprint("onnxruntime", 1, meta["backend_version"])
    assert [d.field for d in fingerprint_diff(meta["fingerprint"], here) if d.major] == []
    assert meta["fingerprint"]["cpu"]["logical_cpus"] > 0 and meta["fingerprint"]["runtime"]["threads"] == 1
    canaries = meta["canaries"]
    assert [c["name"] for c in canaries["archs"]] == ["fixed-1", "fixed-2"]  # the tiny space has no presets
    assert all(c["latency_ms"] > 0 for c in canaries["archs"]) and canaries["passes"] == 5
    assert meta["build"]["noise_pct_at_start"] >= 0 and canaries["noise_pct"] >= 0


@pytest.mark.parametrize("ratios, diffs, verdict", [
    ([1.01, 0.99, 1.02], [], "MATCH"),
    ([1.06, 1.07, 1.065], [], "DRIFT"),                                     # 6.5% slower, uniformly
    ([0.96, 1.055, 1.0], [], "MATCH"),                                      # noise around 1
    ([1.5, 1.52, 1.49], [], "DRIFT"),                                       # one factor
    ([1.0, 1.01, 0.99], [FieldDiff("cpu.model", 1, 167, True)], "DRIFT"),  # same speed, another CPU: never MATCH
    ([1.0, 1.6, 1.3], [], "REBUILD"),                                       # mixed
    ([1.0, 1.6], [FieldDiff("isa", ["avx2"], ["avx2", "avx512f"], True)], "REBUILD"),
])
def test_judge(ratios, diffs, verdict):
    got, reason, factor = judge(ratios, diffs, 5.0, 6.0)
    assert got == verdict, reason
    assert factor == pytest.approx(float(np.exp(np.mean(np.log(ratios)))))


def test_inflated_canaries_drift_uniformly_and_rescale_folds_the_factor(built, tmp_path):
    def inflate(meta):
        for c in meta["canaries"]["archs"]:
            c["latency_ms"] *= 3.0
    table = _copy(built, tmp_path / "slow.csv", inflate)
    space = nas_space(table)
    result = check_table(table, space, progress=False)
    assert result.verdict == "DRIFT" and result.exit_code == 3, result.reason
    assert result.factor == pytest.approx(1 / 3, rel=0.15)
    rescale(table, result, tmp_path / "fixed.csv")
    again = LatencyTable.load(tmp_path / "fixed.csv")
    arch = space.sample(np.random.default_rng(0))
    assert again.predict(arch, space) == pytest.approx(table.predict(arch, space) * result.factor)
    assert again.metadata["rescaled"]["factor"] == result.factor
    assert again.metadata["rescaled"]["from"] == str(tmp_path / "slow.csv")
    assert again.metadata["fingerprint"] == result.here


def test_mixed_canaries_say_rebuild_with_the_build_command(built, tmp_path):
    def mix(meta):
        meta["canaries"]["archs"][0]["latency_ms"] *= 3.0
    table = _copy(built, tmp_path / "mixed.csv", mix)
    result = check_table(table, nas_space(table), progress=False)
    assert result.verdict == "REBUILD" and result.exit_code == 4, result.reason
    assert result.build_command.startswith("nas latency build --space ") and "--backend onnxruntime" in result.build_command
    with pytest.raises(Exception, match="REBUILD"):
        rescale(table, result, tmp_path / "no.csv")


def test_cli_check_exit_codes_and_json(built, tmp_path):
    def strip(meta):
        meta.pop("canaries")
    table = _copy(built, tmp_path / "bare.csv", strip)
    proc = subprocess.run([sys.executable, "-m", "nas", "latency", "check", "--table", str(table.path), "--quiet",
                           "--json-out", str(tmp_path / "c.json")], capture_output=True, text=True)
    assert proc.returncode == 4, proc.stderr
    assert "records no canaries" in proc.stdout and "nas latency build --space" in proc.stdout
    assert json.loads((tmp_path / "c.json").read_text())["verdict"] == "REBUILD"


def test_warning_names_the_fields_that_differ(built, tmp_path):
    assert machine_warning(LatencyTable.load(built)) is None

    def elsewhere(meta):
        meta["fingerprint"]["cpu"]["model"] = 1
        meta["fingerprint"]["cpu"]["vendor"] = "AuthenticAMD"
        meta["fingerprint"]["isa"] = ["avx2"]
    table = _copy(built, tmp_path / "other.csv", elsewhere)
    warning = machine_warning(table)
    assert "cpu.model (1 in the table" in warning and "cpu.vendor" in warning and "isa (+" in warning
    assert f"nas latency check --table {table.where}" in warning
    unknown = _copy(built, tmp_path / "unknown.csv", lambda m: m.pop("fingerprint"))
    assert "unknown in the table" in machine_warning(unknown)


def test_calibration_stores_latencies_and_refits_without_measuring(tmp_path, tiny_space):
    space = tiny_space()
    out = tmp_path / "c.csv"
    fast = Protocol(warmup=2, repeats=3, runs=3, min_repeat_ms=0.2, max_runs=20)
    table = build_table(space, "onnxruntime", out, protocol=fast, progress=False, canaries=False)
    cal, _, _ = calibrate(table, space, n=12, seed=1, progress=False, passes=3)
    assert len(cal.info["network_ms"]) == 12 and cal.info["fingerprint"]["cpu"]["logical_cpus"] > 0
    table.save(out)
    again = LatencyTable.load(out)
    new = refit(again, space)
    for k in ("scale", "per_layer_ms", "offset_ms", "per_mparam_ms", "cache_mparams"):
        assert getattr(new, k) == pytest.approx(getattr(cal, k))


def nas_space(table: LatencyTable):  # noqa: ANN201
    from nas.latency import space_of

    return space_of(table)


def test_adapt_recovers_a_family_that_moved_and_records_the_machine(tmp_path, tiny_space):
    """A table whose k5 blocks cost twice what they cost here: adapting from 12 networks finds it."""
    from nas.latency import adapt
    from nas.latency._adapt import adapt_family

    space = tiny_space()
    here = build_table(space, "onnxruntime", tmp_path / "here.csv", progress=False, canaries=False)
    skewed = {k: {**here.entry(k), "latency_ms": here.entry(k)["latency_ms"] * (2.0 if k.kernel == 5 else 1.0)}
              for k in here.keys()}
    foreign = LatencyTable(skewed, {**here.metadata, "fingerprint": None})
    foreign.save(tmp_path / "foreign.csv")
    adapted, report = adapt(LatencyTable.load(tmp_path / "foreign.csv"), space, tmp_path / "adapted.csv", n=12,
                            passes=5, progress=False)
    k5 = [f for f in report["factors"] if "_k5" in f]
    k3 = [f for f in report["factors"] if "_k3" in f]
    assert k5 and k3
    ratio = np.mean([report["factors"][f] for f in k5]) / np.mean([report["factors"][f] for f in k3])
    assert ratio == pytest.approx(0.5, rel=0.3), report["factors"]
    again = LatencyTable.load(tmp_path / "adapted.csv")
    assert again.metadata["adapted"]["n"] == 12 and again.metadata["adapted"]["from"].endswith("foreign.csv")
    assert machine_warning(again) is None and again.metadata["canaries"]["archs"]
    key = next(k for k in again.keys() if k.kind == "block")
    assert again.entry(key)["latency_ms"] == pytest.approx(
        skewed[key]["latency_ms"] * report["factors"][adapt_family(key)], rel=1e-4)
