"""The run folder: what a search writes beside its trials and what `nas results` reads back.

`prepare_run_dir` saves the resolved config (config.yaml) and meta.json: versions, storage, the
concrete budget (``budget_ms``, resolved once from ``budget_quantile``; a multi-device search adds
``goal`` and ``budgets``, one resolved budget per budgeted table), this machine's fingerprint
and each table's metadata; `save_presets` evaluates the space's presets once (presets.json).
`RunFolder.open` reads config and meta back, once, for `nas results`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import optuna
import yaml

import nas
from nas._atomic import atomic_write
from nas._device import fingerprint
from nas._space import SearchSpace
from nas.evaluators import EvaluatorBase, LatencySource
from nas.experiment._config import ConfigError, ExperimentConfig, config_from_dict
from nas.experiment._storage import storage_url

_RESUMABLE = ("search",)  # a rerun may change these (e.g. more trials, another storage)


def prepare_run_dir(config: ExperimentConfig, sources: Sequence[LatencySource], budget_ms: float | None = None,
                    budgets: Sequence[dict[str, Any]] = (), goal: str | None = None) -> Path:
    """Create the run folder; save the resolved config, versions and table metadata.

    A run folder holding a different config (other than the `search` section) is an error naming
    the keys that differ: resuming must not silently mix two experiments.
    """
    run = Path(config.run_dir)
    run.mkdir(parents=True, exist_ok=True)
    resolved = config.to_dict()
    saved_path = run / "config.yaml"
    if saved_path.is_file():
        saved = yaml.safe_load(saved_path.read_text()) or {}
        diff = _differences({k: v for k, v in saved.items() if k not in _RESUMABLE},
                            {k: v for k, v in resolved.items() if k not in _RESUMABLE})
        if diff:
            raise ConfigError(f"run folder {str(run)!r} holds a different experiment (keys {diff} differ); "
                              "use another run_dir or the same config")
    atomic_write(saved_path, yaml.safe_dump(resolved, sort_keys=False))
    meta = {"hwnas_version": nas.__version__, "optuna_version": optuna.__version__,
            "storage": storage_url(config), "budget_ms": budget_ms,
            **({"goal": goal, "budgets": [dict(b) for b in budgets]} if len(budgets) >= 2 else {}),
            "machine": fingerprint(),
            "tables": [_source_metadata(s) for s in sources]}
    atomic_write(run / "meta.json", json.dumps(meta, indent=2, default=str))
    return run


def _source_metadata(source: LatencySource) -> dict[str, Any]:
    meta = getattr(source, "metadata", None)
    return meta() if callable(meta) else {"name": source.name}


def _differences(a: Any, b: Any, prefix: str = "") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for k in sorted(set(a) | set(b), key=str):
            out += _differences(a.get(k), b.get(k), f"{prefix}.{k}" if prefix else str(k))
        return out
    return [] if a == b else [prefix]



def save_presets(config: ExperimentConfig, space: SearchSpace, evaluator: EvaluatorBase,
                  sources: Sequence[LatencySource], budget_ms: float | None) -> None:
    """Evaluate the space's presets once (reference points of the results plot), and each preset
    family's largest member within the budget on the first table (a hand-designed baseline scaled
    to the same latency, e.g. MobileNetV2-style)."""
    path = Path(config.run_dir) / "presets.json"
    if path.is_file():
        return
    wanted = config.results.presets
    resolution = space.resolutions[-1]
    out: dict[str, Any] = {}
    for name in space.preset_names if wanted is None else wanted:
        if name in space.preset_family_names:
            continue
        try:
            arch = space.preset(name, resolution=resolution)
            out[name] = {"arch": arch.to_dict(), "result": evaluator.evaluate(arch).to_dict()}
        except nas.HwnasError as err:
            out[name] = {"error": str(err)}
    for name in space.preset_family_names:
        if budget_ms is None or (wanted is not None and name not in wanted):
            continue
        members = space.preset_family(name, resolution=resolution)
        latency = sources[0].predict_many(members)
        fits = [i for i in np.argsort(latency) if latency[i] <= budget_ms]
        label = f"{name} (scaled)"
        if not fits:
            out[label] = {"error": f"no member of {name} within {budget_ms:.4g} ms on {sources[0].name} "
                                   f"(fastest {float(latency.min()):.4g} ms)"}
            continue
        arch = members[fits[-1]]
        out[label] = {"arch": arch.to_dict(), "result": evaluator.evaluate(arch).to_dict(), "family": name,
                      "scaled_to_ms": budget_ms, "description": space.preset_family_description(name)}
    atomic_write(path, json.dumps(out, indent=1))


@dataclass(frozen=True)
class RunFolder:
    """A run folder as the search left it: its resolved config and meta.json, read once."""

    path: Path
    config: ExperimentConfig
    meta: dict[str, Any]

    @classmethod
    def open(cls, run_dir: str | Path) -> "RunFolder":
        path = Path(run_dir)
        config_path, meta_path = path / "config.yaml", path / "meta.json"
        for file in (config_path, meta_path):
            if not file.is_file():
                raise ConfigError(f"{str(run_dir)!r} is not a run folder (no {file.name}); run `nas search` first")
        config = config_from_dict(yaml.safe_load(config_path.read_text()) or {})
        return cls(path, config, json.loads(meta_path.read_text()))

    @property
    def budget_ms(self) -> float | None:
        """The hard budget the search used (resolved from budget_quantile when given)."""
        return self.meta.get("budget_ms")

    @property
    def budgets(self) -> list[dict[str, Any]]:
        """A multi-device search's resolved budgets (table, budget_ms, budget_quantile, target_ms); [] else."""
        return list(self.meta.get("budgets") or [])

    @property
    def goal(self) -> str | None:
        """joint | per_device for a multi-device search, else None."""
        return self.meta.get("goal")


def load_run_config(run_dir: str | Path) -> ExperimentConfig:
    return RunFolder.open(run_dir).config
