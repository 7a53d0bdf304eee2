"""``strategy: proxyless`` in an experiment: ProxylessNAS as a deriving strategy.

The experiment resolves its `Objective` once (the latency target T, from ``latency.target_ms`` or the
concrete budget, ``budget_quantile`` included) and builds `ProxylessStrategy` from it; `derive` runs
the differentiable search on the first latency table and returns the derived archs, which the
experiment evaluates and stores as completed trials like any other.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from nas._arch import Arch
from nas._space import SearchSpace
from nas.latency import LatencyTable
from nas.proxyless._network import ProxylessError
from nas.proxyless._search import ProxylessConfig, run_proxyless
from nas.strategies import Objective


@dataclass(frozen=True)
class ProxylessStrategy:
    """ProxylessNAS on `space` with `tables[0]` as the target device (implements `DerivingStrategy`)."""

    space: SearchSpace
    tables: Sequence[LatencyTable]
    config: ProxylessConfig
    seed: int

    name = "proxyless"

    @classmethod
    def build(cls, space: SearchSpace, tables: Sequence[Any], objective: Objective, options: Mapping[str, Any],
              *, seed: int, n_derived: int) -> "ProxylessStrategy":
        """From the experiment's objective: T is ``options.target_ms``, else the objective's target;
        `n_derived` (the trial count) unless the options give it."""
        latency_tables = [t for t in tables if isinstance(t, LatencyTable)]
        if not latency_tables:
            raise ProxylessError("strategy 'proxyless' needs a latency table (latency.tables), not the MACs proxy")
        config = ProxylessConfig.from_dict(options, target_ms=objective.target_ms, n_derived=n_derived)
        return cls(space, latency_tables, config, seed)

    @staticmethod
    def check_options(options: Mapping[str, Any], where: str = "") -> None:
        """The options alone (keys, types, values), as the config loader sees them; T comes from
        the objective, which `build` checks once the budget is resolved."""
        ProxylessConfig.from_dict(options, where, target_ms=1.0, n_derived=1)

    def derive(self, progress: bool = True) -> list[tuple[Arch, dict[str, Any]]]:
        """Run the search; each derived arch (the target-aware one first, then the argmax and sampled
        archs, see `ProxylessConfig.n_derived`) with what its trial records."""
        result = run_proxyless(self.space, list(self.tables), None, self.config, seed=self.seed, progress=progress)
        how = result.derivation.to_dict() if result.derivation else {}
        return [(arch, {"proxyless": {"rank": rank, "predicted_ms": float(ms), "expected_ms": float(result.expected_ms),
                                      "target_ms": self.config.target_ms, "seconds": float(result.seconds),
                                      "derive": self.config.derive if rank == 0 else "sampled",
                                      **({"derivation": how} if rank == 0 else {})}})
                for rank, (arch, ms) in enumerate(zip(result.derived, result.predicted_ms))]
