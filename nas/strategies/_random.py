"""Random search: every choice uniform and independent (the baseline every strategy must beat)."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any

import numpy as np

from nas._arch import Arch
from nas.strategies._base import Strategy, rng_state, set_rng_state
from nas.strategies._objective import ResultLike


@dataclass(frozen=True)
class RandomConfig:
    batch: int = 16
    """Archs drawn (and checked against the budget) at once."""


class RandomSearch(Strategy):
    name = "random"

    def __init__(self, space: Any, config: RandomConfig | None = None, **kwargs: Any) -> None:
        super().__init__(space, **kwargs)
        self.config = config or RandomConfig()
        self.rng = np.random.default_rng(self.seed)
        self._queue: deque[Arch] = deque()

    def ask(self) -> Arch:
        if not self._queue:
            self._queue.extend(self.draw_feasible(lambda k: self.codec.sample(self.rng, k), self.config.batch))
        return self._queue.popleft()

    def tell(self, arch: Arch, result: ResultLike) -> None:
        self.codec.encode(arch)  # validates: results of archs outside the space are an error

    def state_dict(self) -> dict[str, Any]:
        return {**self._base_state(), "rng": rng_state(self.rng), "queue": [a.to_dict() for a in self._queue]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._check_state(state)
        set_rng_state(self.rng, state["rng"])
        self._queue = deque(Arch.from_dict(a) for a in state["queue"])
