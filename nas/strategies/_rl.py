"""MnasNet's RL controller: an LSTM emits the space's choices token by token; REINFORCE.

Each step t reads the embedding of the previous choice, and a per-choice linear head gives the
logits over the options of ``space.dims[t]``. The reward is the objective's score (MnasNet's
``ACC × (LAT/T)^w`` when a target is set). Updates use REINFORCE with an exponential
moving-average baseline, one Adam step per `batch` told results; log-probabilities are computed
at tell time, so archs found elsewhere (replay, other workers) train the controller too.
"""

from __future__ import annotations

from collections import deque
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Iterator

import numpy as np
import torch
from torch import nn

from nas._arch import Arch
from nas.strategies._base import Strategy
from nas.strategies._objective import ResultLike, SearchError


@dataclass(frozen=True)
class RLConfig:
    hidden: int = 64
    """LSTM hidden size of the controller."""
    lr: float = 0.005
    """Adam learning rate of the controller."""
    batch: int = 8
    """Archs sampled per controller step (and results per REINFORCE update)."""
    baseline_decay: float = 0.9
    """Decay of the exponential moving average of the reward that REINFORCE subtracts."""
    entropy_weight: float = 0.0
    """Weight of the choices' entropy bonus in the controller's loss (> 0 keeps exploring)."""
    temperature: float = 1.0
    """Softmax temperature of the controller's choices."""

    def __post_init__(self) -> None:
        if self.hidden < 1 or self.batch < 1 or not 0 <= self.baseline_decay < 1 or self.lr <= 0:
            raise SearchError("rl: hidden >= 1, batch >= 1, lr > 0, baseline_decay in [0, 1)")


class Controller(nn.Module):
    """LSTM policy over a sequence of categorical choices with the given option counts."""

    def __init__(self, sizes: list[int], hidden: int) -> None:
        super().__init__()
        self.sizes = list(sizes)
        self.start = nn.Parameter(torch.zeros(1, hidden))
        self.embed = nn.ModuleList(nn.Embedding(n, hidden) for n in self.sizes)
        self.cell = nn.LSTMCell(hidden, hidden)
        self.heads = nn.ModuleList(nn.Linear(hidden, n) for n in self.sizes)

    def run(self, n: int, rows: torch.Tensor | None = None, generator: torch.Generator | None = None,
            temperature: float = 1.0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Sample `n` sequences (rows None) or score the given rows: (rows, log-prob, entropy)."""
        hidden = self.start.shape[1]
        h = torch.zeros(n, hidden)
        c = torch.zeros(n, hidden)
        x = self.start.expand(n, hidden)
        picks, logp, entropy = [], torch.zeros(n), torch.zeros(n)
        for t, head in enumerate(self.heads):
            h, c = self.cell(x, (h, c))
            log_probs = torch.log_softmax(head(h) / temperature, dim=-1)
            if rows is None:
                choice = torch.multinomial(log_probs.exp(), 1, generator=generator).squeeze(1)
            else:
                choice = rows[:, t]
            logp = logp + log_probs.gather(1, choice[:, None]).squeeze(1)
            entropy = entropy - (log_probs.exp() * log_probs).sum(-1)
            picks.append(choice)
            x = self.embed[t](choice)
        return torch.stack(picks, 1), logp, entropy


@contextmanager
def _one_thread() -> Iterator[None]:
    """The controller is tiny: intra-op threads only add overhead (5x slower with 2 threads)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


class RLController(Strategy):
    name = "rl"

    def __init__(self, space: Any, config: RLConfig | None = None, **kwargs: Any) -> None:
        super().__init__(space, **kwargs)
        self.config = config or RLConfig()
        self.generator = torch.Generator().manual_seed(self.seed)
        with torch.random.fork_rng(devices=[]):  # initialize weights from our seed, not the global RNG
            torch.manual_seed(self.seed)
            self.controller = Controller([int(n) for n in self.codec.sizes], self.config.hidden)
        self.optimizer = torch.optim.Adam(self.controller.parameters(), lr=self.config.lr)
        self.baseline: float | None = None
        self._queue: deque[Arch] = deque()
        self._buffer: list[tuple[np.ndarray, float]] = []
        self.updates = 0

    def ask(self) -> Arch:
        if not self._queue:
            def propose(k: int) -> np.ndarray:
                with torch.no_grad(), _one_thread():
                    rows, _, _ = self.controller.run(k, generator=self.generator,
                                                     temperature=self.config.temperature)
                return rows.numpy()
            self._queue.extend(self.draw_feasible(propose, self.config.batch))
        return self._queue.popleft()

    def tell(self, arch: Arch, result: ResultLike) -> None:
        self._buffer.append((self.codec.encode(arch), self.objective.score(result)))
        if len(self._buffer) >= self.config.batch:
            with _one_thread():
                self._update()

    def _update(self) -> None:
        rows = torch.as_tensor(np.stack([r for r, _ in self._buffer]))
        rewards = torch.tensor([s for _, s in self._buffer], dtype=torch.float32)
        self._buffer = []
        if self.baseline is None:
            self.baseline = float(rewards.mean())
        _, logp, entropy = self.controller.run(len(rows), rows=rows, temperature=self.config.temperature)
        advantage = rewards - self.baseline
        loss = -(advantage * logp).mean() - self.config.entropy_weight * entropy.mean()
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        decay = self.config.baseline_decay
        for r in rewards.tolist():
            self.baseline = decay * self.baseline + (1 - decay) * r
        self.updates += 1

    def state_dict(self) -> dict[str, Any]:
        return {**self._base_state(),
                "controller": {k: v.detach().clone() for k, v in self.controller.state_dict().items()},
                "optimizer": self.optimizer.state_dict(),
                "generator": self.generator.get_state().clone(),
                "baseline": self.baseline, "updates": self.updates,
                "buffer": [(r.tolist(), s) for r, s in self._buffer],
                "queue": [a.to_dict() for a in self._queue]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._check_state(state)
        self.controller.load_state_dict(state["controller"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.generator.set_state(state["generator"])
        self.baseline = state["baseline"]
        self.updates = int(state["updates"])
        self._buffer = [(np.asarray(r, dtype=np.int64), float(s)) for r, s in state["buffer"]]
        self._queue = deque(Arch.from_dict(a) for a in state["queue"])
