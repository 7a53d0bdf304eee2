"""`Result`: what evaluating one arch gives (accuracy, latency per table, size), and the protocol."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Protocol, Sequence, runtime_checkable

from nas._arch import Arch


@dataclass(frozen=True)
class Result:
    """Objectives of one arch.

    accuracy: validation top-1 in [0, 1] (shared-weight, predicted, trained or synthetic: the
    evaluator's name says which). latency_ms: predicted latency per latency table, by table name
    (one search gives a Pareto front per device). params, macs: of the full network.
    extra: evaluator-specific numbers (e.g. train loss, seconds spent).
    """

    accuracy: float
    latency_ms: Mapping[str, float] = field(default_factory=dict)
    params: int = 0
    macs: int = 0
    extra: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "accuracy", float(self.accuracy))
        object.__setattr__(self, "latency_ms", {str(k): float(v) for k, v in dict(self.latency_ms).items()})
        object.__setattr__(self, "params", int(self.params))
        object.__setattr__(self, "macs", int(self.macs))
        object.__setattr__(self, "extra", dict(self.extra))

    def latency(self, table: str | None = None) -> float:
        """Latency on `table` (default: the first table)."""
        if table is None:
            return next(iter(self.latency_ms.values())) if self.latency_ms else float("nan")
        return self.latency_ms[table]

    def to_dict(self) -> dict[str, Any]:
        return {"accuracy": self.accuracy, "latency_ms": dict(self.latency_ms), "params": self.params,
                "macs": self.macs, "extra": dict(self.extra)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Result":
        return cls(data["accuracy"], data.get("latency_ms", {}), data.get("params", 0), data.get("macs", 0),
                   data.get("extra", {}))


@runtime_checkable
class Evaluator(Protocol):
    """Anything that turns archs into `Result`s."""

    name: str

    def evaluate(self, arch: Arch) -> Result: ...

    def evaluate_many(self, archs: Sequence[Arch]) -> list[Result]: ...
