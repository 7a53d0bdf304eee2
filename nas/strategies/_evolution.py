"""Evolutionary search: once-for-all's elitist population and regularized (aging) evolution.

``mode: ofa`` (Cai et al., 2020): the population is the best `population` archs told so far;
each generation keeps the top ``parent_ratio`` as parents and breeds children, a
``mutation_ratio`` share by mutating one parent and the rest by crossing two.
``mode: aging`` (Real et al., 2019): the population is the last `population` archs told; each
child mutates the winner of a tournament of `sample_size` random members, and the oldest dies.

Candidates that miss the latency budget are rejected by the predictor before evaluation. With a
`MultiObjective` of goal ``per_device`` the ofa parents are an elite per device (the best within
each device's budget, `parent_ratio` of the population shared among the devices) and an aging
tournament is won on a device drawn per child, so every device's front is bred.
Whole generations are bred as numpy index matrices (see `Codec`), so 100 children cost a few
vectorized operations plus their decoding.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any

import numpy as np

from nas._arch import Arch
from nas.strategies._base import Strategy, rng_state, set_rng_state
from nas.strategies._objective import ResultLike, SearchError


@dataclass(frozen=True)
class EvolutionConfig:
    mode: str = "ofa"
    """"ofa" (elitist population, mutation + crossover) or "aging" (regularized evolution)."""
    population: int = 100
    """Archs in the population (ofa: the best told so far; aging: the last told)."""
    parent_ratio: float = 0.25
    """ofa: share of the population kept as parents each generation."""
    mutation_ratio: float = 0.5
    """ofa: share of the children bred by mutating one parent (the rest cross two)."""
    mutate_prob: float = 0.1
    """Probability that a mutation resamples each choice."""
    sample_size: int = 25
    """Tournament size of aging evolution."""

    def __post_init__(self) -> None:
        if self.mode not in ("ofa", "aging"):
            raise SearchError(f"evolution mode {self.mode!r} is not one of ofa, aging")
        if self.population < 2:
            raise SearchError(f"evolution population must be >= 2, got {self.population}")
        if not 0 < self.parent_ratio < 1 or not 0 <= self.mutation_ratio <= 1 or not 0 < self.mutate_prob <= 1:
            raise SearchError("evolution: parent_ratio in (0, 1), mutation_ratio in [0, 1], mutate_prob in (0, 1]")
        if self.sample_size < 1:
            raise SearchError(f"evolution sample_size must be >= 1, got {self.sample_size}")


class Evolution(Strategy):
    name = "evolution"

    def __init__(self, space: Any, config: EvolutionConfig | None = None, **kwargs: Any) -> None:
        super().__init__(space, **kwargs)
        self.config = config or EvolutionConfig()
        self.rng = np.random.default_rng(self.seed)
        self._queue: deque[Arch] = deque()
        self._rows: list[np.ndarray] = []      # every told arch, in order (aging uses the tail)
        self._scores: list[float] = []
        self._device_scores: list[list[float]] = []  # per_device goal only: a score per device
        self._seen: set[Arch] = set()
        self.generation = 0

    # ------------------------------------------------------------------ ask / tell
    def ask(self) -> Arch:
        if not self._queue:
            self._breed()
        return self._queue.popleft()

    def ask_generation(self) -> list[Arch]:
        """Every arch of the next generation at once (the queued ones, else a new brood)."""
        if not self._queue:
            self._breed()
        out = list(self._queue)
        self._queue.clear()
        return out

    def tell(self, arch: Arch, result: ResultLike) -> None:
        self._rows.append(self.codec.encode(arch))
        self._scores.append(self.objective.score(result))
        if self._per_device:
            self._device_scores.append(self.objective.device_scores(result))  # type: ignore[union-attr]
        self._seen.add(arch)

    @property
    def _per_device(self) -> bool:
        return getattr(self.objective, "goal", None) == "per_device"

    def _breed(self) -> None:
        cfg = self.config
        if len(self._scores) < cfg.population:  # initial population: random feasible archs
            n = cfg.population - len(self._scores)
            self._queue.extend(self.draw_feasible(lambda k: self.codec.sample(self.rng, k), n))
            return
        rows, scores = np.stack(self._rows), np.asarray(self._scores)
        if cfg.mode == "ofa":
            n_parents = max(1, int(round(cfg.parent_ratio * cfg.population)))
            order = np.argsort(-scores, kind="stable")[:n_parents]
            if self._per_device:
                order = self._device_elite(n_parents)
            parents = rows[order]
            n = cfg.population - n_parents
            propose = lambda k: self._ofa_children(parents, k)  # noqa: E731
        else:
            tail = slice(len(scores) - cfg.population, None)
            pop_rows, pop_scores = rows[tail], scores[tail]
            n = max(1, cfg.population // 4)
            if self._per_device:  # a tournament on a device drawn per child
                dev = np.asarray(self._device_scores)[tail]
                propose = lambda k: self._aging_children(pop_rows, dev, k)  # noqa: E731
            else:
                propose = lambda k: self._aging_children(pop_rows, pop_scores, k)  # noqa: E731
        self._queue.extend(self.draw_feasible(self._fresh(propose), n))
        self.generation += 1

    def _ofa_children(self, parents: np.ndarray, n: int) -> np.ndarray:
        cfg = self.config
        n_mut = int(round(cfg.mutation_ratio * n))
        a = parents[self.rng.integers(len(parents), size=n)]
        b = parents[self.rng.integers(len(parents), size=n)]
        mutated = self.codec.mutate(a[:n_mut], self.rng, cfg.mutate_prob)
        crossed = self.codec.crossover(a[n_mut:], b[n_mut:], self.rng)
        return np.concatenate([mutated, crossed])

    def _aging_children(self, rows: np.ndarray, scores: np.ndarray, n: int) -> np.ndarray:
        k = min(self.config.sample_size, len(rows))
        picks = self.rng.integers(len(rows), size=(n, k))
        if scores.ndim == 2:  # per device: each child's tournament scores one device
            device = self.rng.integers(scores.shape[1], size=n)
            winners = picks[np.arange(n), np.argmax(scores[picks, device[:, None]], axis=1)]
            return self.codec.mutate(rows[winners], self.rng, self.config.mutate_prob)
        winners = picks[np.arange(n), np.argmax(scores[picks], axis=1)]
        return self.codec.mutate(rows[winners], self.rng, self.config.mutate_prob)

    def _device_elite(self, n_parents: int) -> np.ndarray:
        """Indices of the told archs that are the best within each device's budget, `n_parents` in all
        (shared among the devices, round robin); archs over every budget never become parents."""
        dev = np.asarray(self._device_scores)
        ranked = [[i for i in np.argsort(-dev[:, d], kind="stable") if np.isfinite(dev[i, d])]
                  for d in range(dev.shape[1])]
        out: list[int] = []
        for depth in range(len(dev)):
            for r in ranked:
                if depth < len(r) and r[depth] not in out and len(out) < n_parents:
                    out.append(int(r[depth]))
            if len(out) >= n_parents or all(depth >= len(r) for r in ranked):
                break
        return np.array(out or [int(np.argmax(self._scores))])

    def _fresh(self, propose: Any) -> Any:
        """Wrap a proposer so that children already evaluated are re-drawn (a few times)."""
        def fresh(k: int) -> np.ndarray:
            rows = propose(k)
            for _ in range(3):
                dup = np.array([a in self._seen for a in self.codec.decode_many(rows)])
                if not dup.any():
                    break
                rows[dup] = propose(int(dup.sum()))
            return rows
        return fresh

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict[str, Any]:
        return {**self._base_state(), "rng": rng_state(self.rng), "generation": self.generation,
                "rows": np.stack(self._rows).tolist() if self._rows else [], "scores": list(self._scores),
                "queue": [a.to_dict() for a in self._queue],
                **({"device_scores": [list(s) for s in self._device_scores]} if self._per_device else {})}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._check_state(state)
        set_rng_state(self.rng, state["rng"])
        self.generation = int(state["generation"])
        self._rows = [np.asarray(r, dtype=np.int64) for r in state["rows"]]
        self._scores = [float(s) for s in state["scores"]]
        self._device_scores = [[float(x) for x in s] for s in state.get("device_scores", [])]
        self._seen = set(self.codec.decode_many(np.asarray(state["rows"], dtype=np.int64))) if self._rows else set()
        self._queue = deque(Arch.from_dict(a) for a in state["queue"])

    def best(self) -> tuple[Arch, float] | None:
        if not self._scores:
            return None
        i = int(np.argmax(self._scores))
        return self.codec.decode(self._rows[i]), self._scores[i]
