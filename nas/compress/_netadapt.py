"""NetAdapt (Yang et al., ECCV 2018): prune a network one width at a time, each step chosen by measured
latency on the target device, until it meets a latency target.

Each iteration asks for a further ``step_pct`` % of the start's predicted latency off (halved, down to
an eighth, when no width can give that much without losing more than ``max_cut`` of its channels).
For every prunable width (`nas.compress.prunable`) it finds the largest width that gets the network
there by the table (`WidthPredictor`: widths the table lacks are timed on the fly with its backend and
protocol and added to it), keeps that many channels
(`prune`: L1 norm of the reading weights), fine-tunes ``short_steps`` steps and scores top-1 on the
validation split. The most accurate candidate goes on. After every iteration the network is measured
end to end (``passes`` passes): the run stops once it measures at or under the target, and the
next iteration never asks for less than the predicted latency that would measure at the target,
judged by the current network's own predicted/measured ratio (a table can be off for pruned widths).

Everything lands in the run folder: ``state.json`` (settings, start, each iteration's arch, width,
predicted latency and accuracy, each candidate's score, the end-to-end checks), ``iter<NNN>.pt``
(each iteration's network, `nas.load_extracted` format) and ``table.csv`` (the table with the widths
timed here). A killed run resumes where it stopped: finished iterations and candidates are read back.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

import torch

from nas._arch import Arch
from nas._atomic import atomic_write_json
from nas._errors import HwnasError
from nas._model import Network
from nas.compress._prune import prunable, prune
from nas.compress._widths import WidthPredictor
from nas.latency import LatencyTable, measure_archs
from nas.supernet import FinetuneConfig, accuracy, finetune, load_extracted, save_extracted

if TYPE_CHECKING:  # pragma: no cover
    from nas._space import SearchSpace

STATE = "state.json"
HALVINGS = (1.0, 0.5, 0.25, 0.125)
"""Fractions of the step an iteration tries, in turn, when no width can take the whole step off."""
FORMAT = "hwnas-netadapt-v1"


class CompressError(HwnasError):
    """A compression run cannot start or go on (bad settings, a run folder of another run)."""


@dataclass(frozen=True)
class NetAdaptConfig:
    """How `netadapt` prunes (stored in the run's state; a resumed run must match)."""

    ratio: float | None = 0.7
    """Target: this fraction of the start's measured latency (or give ``target_ms``)."""
    target_ms: float | None = None
    step_pct: float = 5.0
    """Latency asked off per iteration, in % of the start's predicted latency."""
    short_steps: int = 40
    """Fine-tuning steps of every candidate."""
    lr: float = 0.005
    """Peak learning rate of the short fine-tunes (cosine to 0)."""
    width_step: int = 8
    """Widths are multiples of this."""
    max_cut: float = 0.5
    """The largest share of a width's channels one iteration may remove. A bigger cut is a cliff the short
    fine-tune cannot repair, and latency is not linear in it (a network that drops under the cache
    can run far faster than its table says), so a run takes smaller steps rather than overshoot."""
    passes: int = 7
    """Passes of each end-to-end check."""
    seed: int = 0

    def __post_init__(self) -> None:
        if (self.ratio is None) == (self.target_ms is None):
            raise CompressError("compress: give exactly one of ratio and target_ms")
        if self.ratio is not None and not 0 < self.ratio < 1:
            raise CompressError(f"compress: ratio {self.ratio} must be in (0, 1)")
        if self.target_ms is not None and self.target_ms <= 0:
            raise CompressError(f"compress: target_ms {self.target_ms} must be positive")
        if not 0 < self.max_cut <= 1:
            raise CompressError(f"compress: max_cut {self.max_cut} must be in (0, 1]")
        if self.step_pct <= 0 or self.short_steps < 1 or self.width_step < 1 or self.passes < 1:
            raise CompressError(f"compress: step_pct > 0, short_steps, width_step, passes >= 1 needed: {self}")


@dataclass
class Env:
    """What an iteration needs besides the network: data, the table, where to write."""

    train: Any
    validation: Sequence[Any]
    table: LatencyTable
    space: "SearchSpace"
    """The space the table was built for (its num_classes and in_channels shape the networks measured)."""
    run_dir: Path
    progress: bool = True
    log: Callable[[str], None] = print


def _state_path(run_dir: Path) -> Path:
    return run_dir / STATE


def load_state(run_dir: str | Path) -> dict[str, Any] | None:
    path = _state_path(Path(run_dir))
    return json.loads(path.read_text()) if path.exists() else None


def _save_state(env: Env, state: dict[str, Any]) -> None:
    """Write the state, and the run's copy of the table when it has gained widths since it was written."""
    atomic_write_json(_state_path(env.run_dir), state)
    table = env.run_dir / "table.csv"
    if env.table.path != table or env.table.metadata.get("entries") != len(env.table):
        env.table.save(table)


def model_path(run_dir: Path, iteration: int) -> Path:
    return run_dir / f"iter{iteration:03d}.pt"


def _load(path: Path) -> Network:
    """A saved network in channels-last layout (the fast one for depthwise convs on CPU)."""
    return load_extracted(path).to(memory_format=torch.channels_last)


def short_finetune(net: Network, env: Env, config: NetAdaptConfig, steps: int, seed: int) -> float:
    """Fine-tune `net` in place for `steps` steps and return its validation top-1."""
    finetune(net, env.train, FinetuneConfig(steps=steps, lr=config.lr, seed=seed), resolution=net.arch.resolution)
    return accuracy(net, env.validation, net.arch.resolution)


def netadapt(start: Network, config: NetAdaptConfig, env: Env) -> tuple[Network, dict[str, Any]]:
    """Run (or resume) NetAdapt from `start`; returns the final network and the run's state."""
    from tqdm import tqdm

    env.run_dir.mkdir(parents=True, exist_ok=True)
    predictor = WidthPredictor(env.table, start.num_classes, start.in_channels, env.run_dir / "work")
    state = load_state(env.run_dir)
    if state is None:
        predicted, measured = predictor.predict(start.arch), _measure(start.arch, config, env)
        target = config.target_ms if config.target_ms is not None else config.ratio * measured
        state = {"format": FORMAT, "config": asdict(config), "start": {
            "arch": start.arch.to_dict(), "predicted_ms": predicted, "measured_ms": measured,
            "val_top1": accuracy(start, env.validation, start.arch.resolution)},
            "target_ms": target, "iterations": [], "pending": None, "done": measured <= target,
            "checks": [{"iteration": 0, "predicted_ms": predicted, "measured_ms": measured}]}
        save_extracted(start, model_path(env.run_dir, 0))
        _save_state(env, state)
    elif state.get("format") != FORMAT or state.get("config") != asdict(config):
        raise CompressError(f"{env.run_dir} holds a compression run with other settings ({state.get('config')}); "
                            "use another folder or the same settings")
    iters = state["iterations"]
    net = _load(model_path(env.run_dir, len(iters))) if iters else start
    step_ms = config.step_pct / 100 * state["start"]["predicted_ms"]
    bar = tqdm(desc="netadapt", unit="iter", disable=not env.progress, dynamic_ncols=True, initial=len(iters))
    try:
        while not state["done"]:
            check = state["checks"][-1]
            if check["iteration"] < len(iters):  # killed between an iteration and its measurement
                check = {"iteration": len(iters), "predicted_ms": predictor.predict(net.arch),
                         "measured_ms": _measure(net.arch, config, env)}
                state["checks"].append(check)
                state["done"] = check["measured_ms"] <= state["target_ms"]
                _save_state(env, state)
                bar.set_postfix(measured_ms=f"{check['measured_ms']:.4f}", top1=f"{iters[-1]['val_top1']:.4f}",
                                refresh=True)
                continue
            # the predicted latency that would measure at the target, given this network's own bias
            goal_ms = check["predicted_ms"] * state["target_ms"] / check["measured_ms"]
            net = _iteration(net, check["predicted_ms"], step_ms, goal_ms, config, env, state, predictor)
            bar.update()
    finally:
        bar.close()
    return net, state


def _measure(arch: Arch, config: NetAdaptConfig, env: Env) -> float:
    """End-to-end latency (ms) with the table's backend and protocol, ``config.passes`` passes."""
    return float(measure_archs([arch], env.space, env.table, env.run_dir / "work", False,
                               passes=config.passes)[0])


def _iteration(net: Network, current_ms: float, step_ms: float, goal_ms: float, config: NetAdaptConfig, env: Env,
               state: dict[str, Any], predictor: WidthPredictor) -> Network:
    """One NetAdapt iteration: every width's candidate, short-tuned and scored; the best is kept.

    When no single width can take a whole step off (late in a run, every layer is narrow), the step
    is halved, down to an eighth, before the target is declared out of reach."""
    from tqdm import tqdm

    index = len(state["iterations"]) + 1
    started = time.perf_counter()
    pending = state.get("pending")
    if not pending or pending["iteration"] != index:
        for fraction in HALVINGS:
            limit_ms = max(goal_ms, current_ms - step_ms * fraction)
            widths = predictor.largest_widths(net.arch, limit_ms, config.width_step, max_cut=config.max_cut)
            if widths:
                break
        else:
            raise CompressError(f"compress: no width of {net.arch.short()} can take {step_ms * HALVINGS[-1]:.4f} ms "
                                f"off its predicted {current_ms:.4f} ms; the target is out of reach by pruning "
                                "these widths")
        pending = {"iteration": index, "limit_ms": limit_ms, "widths": widths, "results": {}}
        state["pending"] = pending
        _save_state(env, state)
    best_file = env.run_dir / "pending.pt"
    seed = config.seed * 100_003 + index  # every candidate of an iteration sees the same batches
    todo = [n for n in pending["widths"] if n not in pending["results"]]
    for name in tqdm(todo, desc=f"iteration {index}", unit="cand", leave=False, disable=not env.progress):
        candidate = prune(net, name, pending["widths"][name])
        result = {"width": pending["widths"][name], "val_top1": short_finetune(candidate, env, config,
                                                                              config.short_steps, seed),
                  "predicted_ms": predictor.predict(candidate.arch)}
        results = pending["results"]
        if not results or _rank(result) > max(_rank(r) for r in results.values()):
            save_extracted(candidate, best_file)
        results[name] = result
        _save_state(env, state)
    results = pending["results"]
    name = max(results, key=lambda n: _rank(results[n]))
    best = _load(best_file)
    save_extracted(best, model_path(env.run_dir, index))
    state["iterations"].append({
        "iteration": index, "layer": name, "width": results[name]["width"],
        "from_width": prunable(net.arch)[name], "arch": best.arch.to_dict(),
        "predicted_ms": results[name]["predicted_ms"], "val_top1": results[name]["val_top1"],
        "limit_ms": pending["limit_ms"], "candidates": results,
        "seconds": round(time.perf_counter() - started, 1)})
    state["pending"] = None
    _save_state(env, state)
    best_file.unlink(missing_ok=True)
    return best


def _rank(result: dict[str, Any]) -> tuple[float, float]:
    """Candidates are ranked by validation top-1, then by lower predicted latency."""
    return result["val_top1"], -result["predicted_ms"]


def trajectory(state: dict[str, Any]) -> list[tuple[int, Arch, float | None]]:
    """(iteration, arch, val top-1) of the start and every iteration."""
    out: list[tuple[int, Arch, float | None]] = [(0, Arch.from_dict(state["start"]["arch"]),
                                                   state["start"].get("val_top1"))]
    out += [(it["iteration"], Arch.from_dict(it["arch"]), it["val_top1"]) for it in state["iterations"]]
    return out


__all__ = ["CompressError", "Env", "NetAdaptConfig", "load_state", "model_path", "netadapt", "short_finetune",
           "trajectory"]
