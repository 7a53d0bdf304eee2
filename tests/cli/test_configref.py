"""docs/config.md is generated from the config dataclasses (`python -m nas.cli._configref`): it must
match a fresh run, describe every key, and list every key the shipped configs use."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from nas.cli._configref import COMMAND, OUT, main, render, undocumented

ROOT = Path(__file__).resolve().parents[2]


def test_config_reference_is_up_to_date() -> None:
    assert OUT.is_file(), f"{OUT} is missing: run `{COMMAND}`"
    assert OUT.read_text() == render(), f"{OUT.relative_to(ROOT)} is out of date: run `{COMMAND}` and commit it"
    assert main(["--check"]) == 0


def test_every_key_has_a_description() -> None:
    missing = undocumented()
    assert not missing, f"config keys without a description (add an attribute docstring): {missing}"


def _keys(node: object, prefix: str = "") -> set[str]:
    if isinstance(node, dict):
        out = set()
        for k, v in node.items():
            key = f"{prefix}{k}"
            out.add(key)
            if k != "options":  # strategy and evaluator options: checked per name below
                out |= _keys(v, key + ".")
        return out
    if isinstance(node, list) and node and isinstance(node[0], dict):
        return set().union(*(_keys(v, prefix + "N.") for v in node))
    return set()


def test_shipped_configs_use_documented_keys() -> None:
    documented = set(re.findall(r"^\| `([^`]+)` \|", render(), re.M))
    configs = sorted((ROOT / "experiments").glob("*.yaml"))
    assert len(configs) >= 4
    for path in configs:
        raw = yaml.safe_load(path.read_text())
        if "strategy" in raw:
            raw["strategies"] = [raw.pop("strategy")]
        used = _keys(raw)
        options = {k for s in raw.get("strategies", []) for k in s.get("options", {})}
        options |= set(raw.get("evaluator", {}).get("options", {}))
        assert not (used | options) - documented, f"{path.name}: keys not in docs/config.md: {(used | options) - documented}"
