"""Deriving an arch from the final α: the argmax, or the argmax moved onto the latency target.

E[LAT] meets the target during the search, but the argmax of distributions that are still undecided
does not have to: a near-tie rounded the wrong way moves the arch's latency far from T. The
target-aware derive starts from the argmax and, while its predicted latency is outside
``T·(1 ± tolerance)``, flips the one choice that gives up the least log-probability per ms it moves
the latency toward T (a flip back toward a choice's argmax costs nothing); flips that do not bring
the arch closer to T, and flips to an option less likely than 1/e^max_flip_nats of the current one
(a choice the search has decided), are never taken. It stops inside the tolerance or when no flip helps.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

from nas._arch import Arch
from nas._codec import Codec

DERIVES = ("target", "argmax")


@dataclass(frozen=True)
class Derived:
    """A derived arch and what it cost against the plain argmax."""

    arch: Arch
    predicted_ms: float
    argmax: Arch
    argmax_ms: float
    logp_given_up: float
    """log P(argmax) − log P(arch) under the final α (nats, ≥ 0): the probability mass given up."""
    flips: int

    def to_dict(self) -> dict[str, Any]:
        return {"predicted_ms": self.predicted_ms, "argmax_ms": self.argmax_ms,
                "logp_given_up": self.logp_given_up, "flips": self.flips, "argmax": self.argmax.short()}


def derive_to_target(net: Any, table: Any, target_ms: float | None, tolerance: float = 0.1,
                     calibrated: bool = True, method: str = "target", max_flip_nats: float = 4.6) -> Derived:
    """The arch `method` derives from `net`'s α (a `ProxylessNetwork`) on latency table `table`.

    "argmax": the most probable arch. "target": the argmax, moved greedily into
    ``target_ms·(1 ± tolerance)`` (see the module docstring); with no target it is the argmax.
    """
    space = net.space
    codec = Codec.of(space)
    logp = {d: np.log(np.clip(p.detach().double().numpy(), 1e-300, None)) for d, p in net.probs().items()}
    cols = {d: codec.names.index(d) for d in net.arch_dims}
    start = net.row_of(net.argmax_path())
    row = start.copy()

    def predict(rows: np.ndarray) -> np.ndarray:
        return np.asarray(table.predict_rows(rows, space, calibrated=calibrated), dtype=float)

    argmax_ms = current_ms = float(predict(row[None])[0])
    flips = 0
    if method == "target" and target_ms is not None:
        flips, current_ms = _flip_toward(row, current_ms, float(target_ms), tolerance, logp, cols, predict,
                                         max_flip_nats)
    arch = codec.decode(row)
    space.validate(arch)
    given_up = sum(float(logp[d][start[c]] - logp[d][row[c]]) for d, c in cols.items())
    return Derived(arch, current_ms, codec.decode(start), argmax_ms, given_up, flips)


def _flip_toward(row: np.ndarray, current_ms: float, target_ms: float, tolerance: float,
                 logp: Mapping[str, np.ndarray], cols: Mapping[str, int], predict: Any,
                 max_flip_nats: float) -> tuple[int, float]:
    """Flip choices of `row` in place until its latency is within tolerance of the target; the flip
    count and the final latency."""
    moves = [(c, o, d) for d, c in cols.items() for o in range(len(logp[d]))]
    flips = 0
    for _ in range(4 * len(cols)):  # each flip strictly shrinks the distance; this only bounds the loop
        if abs(current_ms / target_ms - 1) <= tolerance:
            break
        options = [(c, o, d) for c, o, d in moves if row[c] != o]
        candidates = np.repeat(row[None], len(options), axis=0)
        for k, (c, o, _) in enumerate(options):
            candidates[k, c] = o
        ms = predict(candidates)
        gain = abs(current_ms - target_ms) - np.abs(ms - target_ms)
        cost = np.array([logp[d][row[c]] - logp[d][o] for c, o, d in options])
        useful = (gain > 1e-9 * target_ms) & (cost <= max_flip_nats)
        if not useful.any():
            break
        score = np.where(useful, cost / np.where(useful, gain, 1.0), np.inf)
        k = int(np.argmin(score))
        c, o, _ = options[k]
        row[c] = o
        current_ms = float(ms[k])
        flips += 1
    return flips, current_ms
