"""`nas search` with ``strategy: proxyless``: run the differentiable search, record the derived archs.

The experiment runner calls `search` (see ``nas.experiment._runner.EXTERNAL_STRATEGIES``); each derived
arch is evaluated by the experiment's evaluator and stored as a completed trial like any other.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

from nas._arch import Arch
from nas._space import SearchSpace
from nas.proxyless._search import ProxylessConfig, ProxylessError, run_proxyless


def search(config: Any, strategy_config: Any, space: SearchSpace, sources: Sequence[Any], evaluator: Any,
           record: Callable[..., int]) -> list[Arch]:
    """Run ProxylessNAS with the experiment's first latency table as the target device.

    The latency target is ``strategy.options.target_ms``, else ``latency.target_ms``, else the
    hard budget ``latency.budget_ms``; ``n_derived`` defaults to ``search.n_trials``.
    """
    tables = [s.table for s in sources if hasattr(getattr(s, "table", None), "expected")]
    if not tables:
        raise ProxylessError("strategy 'proxyless' needs a latency table (latency.tables), not the MACs proxy")
    latency = config.latency
    target = latency.target_ms if latency.target_ms is not None else latency.budget_ms
    pc = ProxylessConfig.from_dict(strategy_config.options, target_ms=target, n_derived=config.search.n_trials)
    result = run_proxyless(space, tables, None, pc, seed=config.seed, progress=config.search.progress)
    for rank, (arch, predicted_ms) in enumerate(zip(result.derived, result.predicted_ms)):
        record(arch, evaluator.evaluate(arch), {"proxyless": {
            "rank": rank, "predicted_ms": float(predicted_ms), "expected_ms": float(result.expected_ms),
            "target_ms": pc.target_ms, "seconds": float(result.seconds)}})
    return result.derived
