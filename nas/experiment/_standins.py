"""Stand-ins: a search whose latency is the MACs proxy or whose accuracy is synthetic says so.

`StandIns.of(config)` names them; the CLI prints `notice()` when a search starts and in
`nas results`, and the Pareto plot labels its axes with `latency_label` / `accuracy_label`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from nas.experiment._config import SYNTHETIC, ExperimentConfig


@dataclass(frozen=True)
class StandIns:
    """The stand-ins a config uses: MACs-proxy latency sources (name -> GMAC/s) and synthetic accuracy."""

    proxies: dict[str, float] = field(default_factory=dict)
    synthetic_accuracy: bool = False

    @classmethod
    def of(cls, config: ExperimentConfig) -> "StandIns":
        proxies = {t.source_name: t.gmacs_per_s for t in config.latency.tables or [] if t.is_proxy}
        return cls(proxies, config.evaluator.name == SYNTHETIC)

    def __bool__(self) -> bool:
        return bool(self.proxies) or self.synthetic_accuracy

    def notice(self) -> str:
        """One line naming every stand-in ("" when there is none)."""
        parts = [f"latency {name!r} is a MACs proxy (MACs / {g:g} GMAC/s), not a measured latency"
                 for name, g in self.proxies.items()]
        if self.synthetic_accuracy:
            parts.append("accuracy is synthetic (a seeded function of the arch), not a trained network's")
        return f"stand-ins: {'; '.join(parts)}" if parts else ""

    def latency_label(self, table: str) -> str:
        """The x-axis label of `table`'s panel."""
        if table in self.proxies:
            return f"MACs proxy (ms at {self.proxies[table]:g} GMAC/s, not measured) on {table}"
        return f"predicted latency (ms) on {table}"

    def accuracy_label(self) -> str:
        """The y-axis label."""
        return "synthetic accuracy (stand-in, no training)" if self.synthetic_accuracy else "accuracy"
