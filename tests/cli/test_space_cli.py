"""`nas space ...` and `nas model summary` through the real entry point."""

import json
import subprocess
import sys

import pytest

from nas import Arch, load_space
from nas.cli import main


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_sample_gives_distinct_valid_archs(capsys):
    code, out, _ = run(capsys, "space", "sample", "mnasnet", "-n", "1000", "--seed", "0")
    assert code == 0
    lines = out.splitlines()
    assert len(lines) == 1000 and len(set(lines)) == 1000
    space = load_space("mnasnet")
    assert all(space.contains(Arch.from_json(line)) for line in lines[:200])
    code, again, _ = run(capsys, "space", "sample", "mnasnet", "-n", "5", "--seed", "0")
    assert again.splitlines() == lines[:5]


def test_list_show_preset_summary(capsys, tmp_path):
    code, out, _ = run(capsys, "space", "list")
    assert code == 0 and "mnasnet_b1" in out and "ofa_mbv3" in out
    code, out, _ = run(capsys, "space", "show", "ofa_mbv3", "--resolutions", "224")
    assert code == 0 and "21,758,655,492,572,485,851" in out
    code, out, _ = run(capsys, "space", "preset", "mnasnet_b1")
    assert code == 0
    path = tmp_path / "b1.json"
    path.write_text(out)
    code, out, _ = run(capsys, "model", "summary", str(path))
    assert code == 0 and "4,383,312 params (4.38 M)" in out
    code, out, _ = run(capsys, "space", "validate", "mnasnet", str(path))
    assert code == 0 and "in mnasnet" in out


@pytest.mark.parametrize("argv, message", [
    (["space", "show", "nope"], "unknown search space 'nope'"),
    (["space", "preset", "resnet50"], "unknown preset 'resnet50'"),
    (["space", "sample", "mnasnet", "-n", "0"], "-n must be at least 1"),
    (["model", "summary", "/does/not/exist.json"], "arch file '/does/not/exist.json' does not exist"),
])
def test_errors_are_one_line_with_exit_2(capsys, argv, message):
    code, out, err = run(capsys, *argv)
    assert code == 2
    assert err.count("\n") == 1 and message in err and err.startswith("nas: error: ")


def test_malformed_and_out_of_space_arch_files(capsys, tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"resolution": 224, "stem": ')
    code, _, err = run(capsys, "model", "summary", str(bad))
    assert code == 2 and f"{bad}: malformed JSON" in err
    ofa_max = load_space("ofa_mbv3").preset("ofa_max")
    bad.write_text(ofa_max.to_json())
    code, _, err = run(capsys, "space", "validate", "mnasnet", str(bad))
    assert code == 2 and "differs from the space's" in err
    code, _, err = run(capsys, "space", "validate", "ofa_mbv3", str(bad), "--resolutions", "128")
    assert code == 2 and "resolution 224 is not one of [128]" in err
    data = json.loads(ofa_max.to_json())
    data["stages"][1][0]["kernel"] = 4
    bad.write_text(json.dumps(data))
    code, _, err = run(capsys, "model", "summary", str(bad))
    assert code == 2 and "stage 1 layer 0: block kernel 4 must be an odd positive integer" in err


def test_console_script_is_installed():
    proc = subprocess.run([sys.executable, "-m", "nas", "space", "preset", "ofa_min"],
                          capture_output=True, text=True, check=True)
    assert Arch.from_json(proc.stdout).resolution == 128


def test_json_flags_print_json_only(capsys, tmp_path):
    """`model summary --json` and `latency show --json` (with --entries and --arch) parse with json.loads."""
    from pathlib import Path

    code, out, _ = run(capsys, "space", "preset", "ofa_min", "--resolutions", "32")
    assert code == 0
    path = tmp_path / "a.json"
    path.write_text(out)
    code, out, _ = run(capsys, "model", "summary", str(path), "--num-classes", "10", "--in-channels", "1", "--json")
    summary = json.loads(out)
    assert code == 0 and summary["params"] == sum(r["params"] for r in summary["layers"]) and summary["macs"] > 0
    table = Path(__file__).resolve().parents[2] / "latency_tables" / "x86-2core_onnxruntime_t1_ofa_mbv3_r32.csv"
    code, out, _ = run(capsys, "latency", "show", "--table", str(table), "--entries", "--arch", str(path), "--json")
    shown = json.loads(out)
    assert code == 0 and shown["backend"] == "onnxruntime" and len(shown["entries"]) > 10
    assert shown["prediction"]["predicted_ms"] > 0


def test_preset_takes_the_shape_flags(capsys, tmp_path):
    """`space preset` spells the space's shape as every subcommand does; one resolution: the preset at it."""
    code, out, _ = run(capsys, "space", "preset", "ofa_min", "--resolutions", "28", "--num-classes", "10",
                       "--in-channels", "1", "--width-mult", "0.5")
    assert code == 0
    arch = Arch.from_json(out)
    space = load_space("ofa_mbv3", resolutions=[28], num_classes=10, in_channels=1, width_mult=0.5)
    assert arch.resolution == 28 and arch == space.preset("ofa_min")
    code, out, _ = run(capsys, "space", "preset", "ofa_max", "--resolutions", "160", "192")
    assert code == 0 and Arch.from_json(out).resolution == 192  # ofa_max: the largest resolution


@pytest.mark.parametrize("argv, message", [
    (["space", "preset", "ofa_min", "--resolutions", "0"], "--resolutions: 0 is not a positive integer"),
    (["space", "show", "ofa_mbv3", "--resolutions", "32", "32"], "--resolutions: [32, 32] repeats a resolution"),
    (["space", "sample", "mnasnet", "--width-mult", "0"], "--width-mult: 0.0 is not positive"),
    (["latency", "build", "--space", "ofa_mbv3", "--resolutions", "-28"], "--resolutions: -28 is not a positive"),
])
def test_bad_shape_flags_name_the_value(capsys, argv, message):
    code, _, err = run(capsys, *argv)
    assert code == 2 and message in err and err.startswith("nas: error: ")


def test_count_flag_spellings(capsys):
    _, short, _ = run(capsys, "space", "sample", "mnasnet", "-n", "3")
    _, long, _ = run(capsys, "space", "sample", "mnasnet", "--n", "3")
    assert short == long and len(short.splitlines()) == 3
