"""``nas list [GROUP] [--json]``: what a config or a flag can name, read from the registries the code uses.

Strategies (`nas.strategies.STRATEGIES` and the experiment's `DERIVING_STRATEGIES`), evaluators
(`nas.experiment`'s `EVALUATORS`), rewards (`nas.strategies.REWARD_PRESETS` and the two that are not
presets), latency backends (`nas.latency` ``BACKENDS``), datasets (`nas.data.available_datasets`) and
spaces (`nas.list_spaces`), each with one line from its docstring (or, for a dataset, where it is here).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from typing import Any, Callable

Item = dict[str, Any]


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("list", help="strategies, evaluators, rewards, backends, datasets and spaces")
    p.add_argument("group", nargs="?", choices=tuple(GROUPS), default=None,
                   help="list only this group (default: every group)")
    p.add_argument("--json", action="store_true", help="print one JSON object only: {group: [{name, ...}]}")
    p.set_defaults(func=_list)


def first_sentence(doc: str | None, plain: bool = True) -> str:
    """The first sentence of a docstring's first paragraph as one line; quotes removed (`plain`) or
    RST's double backticks made markdown's single ones."""
    paragraph = " ".join((doc or "").strip().split("\n\n")[0].split())
    match = re.search(r"\.(?=\s+[A-Z]|$)", paragraph)  # not at "e.g. the"
    text = paragraph[:match.start() + 1] if match else paragraph
    return _plain(text) if plain else text.replace("``", "`")


def _plain(text: str) -> str:
    return " ".join(text.replace("``", "").replace("`", "").split())


def _module_doc(cls: type) -> str:
    return first_sentence(sys.modules[cls.__module__].__doc__)


def strategies() -> list[Item]:
    """Ask/tell strategies (name -> class, config, fixed options) and deriving ones (name -> class)."""
    from nas.experiment._config import DERIVING_STRATEGIES
    from nas.strategies import STRATEGIES

    items = []
    for name, (cls, _, fixed) in STRATEGIES.items():
        shown = ", ".join(f"{k}: {v}" for k, v in fixed.items())
        items.append({"name": name, "kind": "ask/tell",
                      "description": _module_doc(cls) + (f" ({shown})" if shown else "")})
    items += [{"name": name, "kind": "deriving", "description": _module_doc(cls)}
              for name, cls in DERIVING_STRATEGIES.items()]
    return items


def evaluators() -> list[Item]:
    """`EVALUATORS` (what `evaluator.name` accepts), each described by the module of its class."""
    from nas.evaluators import EvaluatorBase
    from nas.experiment._config import EVALUATORS, SYNTHETIC

    classes: dict[str, type] = {}
    todo = [EvaluatorBase]
    while todo:
        cls = todo.pop()
        todo += cls.__subclasses__()
        classes.setdefault(getattr(cls, "name", ""), cls)
    return [{"name": name, "stand_in": name == SYNTHETIC,
             "description": _module_doc(classes[name]) if name in classes else "(no evaluator class found)"}
            for name in EVALUATORS]


def rewards() -> list[Item]:
    """MnasNet's reward presets (alpha, beta) and the two rewards that are not presets."""
    from nas.strategies import REWARD_PRESETS

    form = "ACC x (LAT/T)^w, w = alpha at or under the target T, beta over it"
    return [*({"name": name, "alpha": a, "beta": b, "description": f"{form}; alpha={a:g}, beta={b:g}"}
              for name, (a, b) in REWARD_PRESETS.items()),
            {"name": "accuracy", "description": "accuracy alone (latency only as the hard budget)"},
            {"name": "custom", "description": f"{form}; alpha and beta from latency.alpha and latency.beta"}]


def backends() -> list[Item]:
    """``BACKENDS``, each described by its bullet in the backends module's docstring."""
    from nas.latency import _backends

    bullets = {m.group(1): _plain(m.group(2))
               for m in re.finditer(r"^- ``(\w+)``: (.*?)(?=^- |\Z)", _backends.__doc__ or "", re.M | re.S)}
    return [{"name": name, "description": bullets.get(name, "")} for name in _backends.BACKENDS]


def datasets() -> list[Item]:
    """`available_datasets()`, each with where it is on this machine (or why it is not found)."""
    from nas.data import DatasetError, available_datasets, find_dataset_root

    items = []
    for name in available_datasets():
        try:
            items.append({"name": name, "found": True, "description": f"here: {find_dataset_root(name)}"})
        except DatasetError as err:
            items.append({"name": name, "found": False, "description": str(err).split("; ")[0],
                          "hint": str(err)})
    return items


def spaces() -> list[Item]:
    """Built-in spaces with their YAML descriptions and presets."""
    from nas import list_spaces, load_space

    return [{"name": name, "description": (space := load_space(name)).description, "presets": space.preset_names}
            for name in list_spaces()]


GROUPS: dict[str, Callable[[], list[Item]]] = {"strategies": strategies, "evaluators": evaluators,
                                               "rewards": rewards, "backends": backends, "datasets": datasets,
                                               "spaces": spaces}


def _list(args: argparse.Namespace) -> int:
    groups = {name: fn() for name, fn in GROUPS.items() if args.group in (None, name)}
    if args.json:
        print(json.dumps(groups, indent=2))
        return 0
    for i, (group, items) in enumerate(groups.items()):
        if len(groups) > 1:
            print(("\n" if i else "") + f"{group}:")
        width = max(len(item["name"]) for item in items)
        for item in items:
            print(f"{'  ' if len(groups) > 1 else ''}{item['name']:{width}s}  {item['description']}")
    return 0


__all__ = ["GROUPS", "first_sentence", "register"]
