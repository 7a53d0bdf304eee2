"""`nas list`: every group read from the registry the code uses, one described line per item."""

from __future__ import annotations

import json

import pytest

from nas.cli import main


def _json(capsys, *group: str) -> dict:
    assert main(["list", *group, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_groups_are_the_registries(capsys) -> None:
    from nas.data import available_datasets
    from nas.experiment._config import DERIVING_STRATEGIES, EVALUATORS
    from nas.latency._backends import BACKENDS
    from nas.strategies import REWARD_PRESETS, STRATEGIES

    groups = _json(capsys)
    names = {g: [item["name"] for item in items] for g, items in groups.items()}
    assert names["strategies"] == [*STRATEGIES, *DERIVING_STRATEGIES]
    assert {"aging", "proxyless"} <= set(names["strategies"])
    assert names["evaluators"] == list(EVALUATORS)
    assert names["rewards"] == [*REWARD_PRESETS, "accuracy", "custom"]
    assert names["backends"] == list(BACKENDS)
    assert names["datasets"] == list(available_datasets())
    assert {"ofa_mbv3", "mnasnet"} <= set(names["spaces"])
    blank = [f"{g}/{item['name']}" for g, items in groups.items() for item in items
             if not item["description"].strip() or "\n" in item["description"]]
    assert not blank, f"items without a one-line description: {blank}"
    shipped = next(d for d in groups["datasets"] if d["name"] == "fashion_mnist_tiny")
    assert shipped["found"] is True


@pytest.mark.parametrize("group", ["strategies", "rewards"])
def test_one_group_as_text(capsys, group) -> None:
    assert main(["list", group]) == 0
    out = capsys.readouterr().out
    assert not out.startswith(f"{group}:") and len(out.splitlines()) == len(_json(capsys, group)[group])
