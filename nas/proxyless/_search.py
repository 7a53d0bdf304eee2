"""The ProxylessNAS search loop: binarized weight steps, two-path architecture steps, latency loss.

Each iteration (after `warmup_steps` weight-only steps):

1. Weight step on a training batch: one path sampled from softmax(α) (one combo per unit); only its
   candidates run, so only they hold activations and receive gradients.
2. Architecture step on a validation batch (every `arch_every` iterations): per unit two distinct
   combos are drawn from the multinomial and one of them made active by binary gates g (drawn from
   the two renormalized probabilities p̃); the forward computes g_A·path_A + g_B·path_B per layer, so
   the value is the active path's and ∂L/∂g_B is available. α's gradient is the paper's
   Σ_c ∂L/∂g_c · ∂p̃_c/∂α (p̃_c = p(c) / (p(A) + p(B)), p(c) the product of the unit's choice
   probabilities), plus the exact gradient of the latency term. After the optimizer step the α's
   of the two sampled options of each choice are shifted so their log-sum-exp is unchanged
   (the paper's rescaling: unsampled options keep their probability).

Loss: ``CE × (E[LAT]/T)^β`` ("mul"; β applies above the target, `beta_below` below it) or
``CE + λ·E[LAT]`` ("add"), E[LAT] = `LatencyTable.expected(softmax(α))`, plus ``γ·H`` with H the mean
entropy of the choice distributions and γ ramped from 0 to `entropy_weight` over the architecture
steps (not in the paper: it sharpens the distributions so the derived argmax arch's latency meets
E[LAT]; set 0 for the paper's loss).
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Iterator, Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from nas._arch import Arch
from nas._config import load
from nas._space import SearchSpace
from nas.proxyless._derive import DERIVES, Derived, derive_to_target
from nas.proxyless._network import ProxylessError, ProxylessNetwork
from nas.strategies import reward_exponent

LOSSES = ("mul", "add")


@dataclass
class ProxylessConfig:
    """Settings of one ProxylessNAS search (see the module docstring).

    The defaults are those of ``experiments/benchmarks/proxyless_targets.py`` (OFA space at 32×32 on
    Fashion-MNIST, CPU table), where two targets land within ±15%; longer searches train the
    weights better (more steps, larger warm-up). On the MnasNet space (a choice of op per stage) the
    benchmark's settings are share_weights=True, warmup_steps=300, steps=550, weight_lr=0.01,
    arch_beta1=0.9: with a block per candidate the weights stay at chance there."""

    target_ms: float | None = None
    """Latency target T (ms, on the primary table). Needed for loss "mul"."""
    loss: str = "mul"
    """"mul": CE × (E[LAT]/T)^β; "add": CE + lam_per_ms · E[LAT]."""
    beta: float = 2.0
    """Exponent of the "mul" loss while E[LAT] > T."""
    beta_below: float | None = -2.0
    """Exponent while E[LAT] ≤ T (None: beta, the paper's one-sided form). Negative pulls E[LAT] up to
    the target, so the search lands on it rather than anywhere below it."""
    lam_per_ms: float = 0.1
    """Weight of E[LAT] in the "add" loss (per ms)."""
    calibrated: bool = True
    """Use the table's calibration in E[LAT] (when it has one)."""
    steps: int = 250
    """Iterations (each one weight step, plus an architecture step after warm-up)."""
    warmup_steps: int = 50
    """Weight-only steps before the architecture starts to move."""
    arch_every: int = 1
    """One architecture step every this many iterations after warm-up."""
    batch_size: int = 32
    """Training images per step (weights and architecture)."""
    weight_lr: float = 0.05
    """SGD learning rate of the weights."""
    weight_momentum: float = 0.9
    """SGD momentum of the weights."""
    weight_decay: float = 4e-5
    """Weight decay of the weights."""
    weight_grad_clip: float | None = None
    """Clip the global gradient norm of each weight step to this (None: no clipping). The gradient norm
    of a sampled path varies by 100x between paths and spaces (at init: ~10 for ofa_mbv3 at 32x32,
    100-1000 for mnasnet, see the benchmarks README); use 5 with weight_lr 0.01 on mnasnet."""
    arch_lr: float = 0.05
    """Adam on α, betas (arch_beta1, 0.999); the paper's is (0, 0.999)."""
    arch_beta1: float = 0.0
    """Adam's first-moment decay on α: > 0 averages the two-path CE gradient over ~1/(1 - arch_beta1)
    steps, which matters where that gradient is mostly noise (see the benchmarks README, MnasNet)."""
    entropy_weight: float = 16.0
    """Weight of the mean entropy of the choice distributions in the architecture loss, ramped up
    linearly from 0 over the architecture steps. > 0 sharpens the distributions so the argmax arch's
    latency approaches E[LAT] (an addition to the paper: with the latency term alone E[LAT] meets the
    target while the argmax of flat distributions may not)."""
    rescale: bool = True
    """Shift the sampled options' α after each step so unsampled options keep their probability."""
    pins: dict[str, Any] = field(default_factory=dict)
    """Choices to hold fixed, e.g. {"s3.width": 64}; widths and resolution are always pinned (defaults
    in `resolve_pins`)."""
    pin_skip: bool = True
    """Hold every stage's identity residual on where the space chooses it (MnasNet), as ProxylessNAS's
    candidates always keep it; False searches it too. Paths without residuals barely train under path
    sampling (MnasNet at 32x32: train CE stays above chance for 600 steps; see the benchmarks README)."""
    share_weights: bool = False
    """Candidates of a layer that run the same op share their convolutions (a smaller kernel is the
    centre of the largest, a smaller expand ratio the first channels, SE an add-on; batch norms stay
    per candidate), as in Single-Path NAS; the paper keeps a separate block per candidate. Sharing
    is what lets the weights train when there are many candidates (MnasNet: 3 weight sets per layer
    instead of 16; see the benchmarks README)."""
    dataset: str = "fashion_mnist"
    """Dataset name used when `run_proxyless` gets no `data` (see `nas.data.load_dataset`)."""
    val_fraction: float = 0.1
    """Validation share when the data is a dataset name."""
    augment: bool = False
    """Random crop and flip of the training images when the data is a dataset name."""
    log_every: int = 25
    """Record the losses, E[LAT] and the argmax latency in the history every this many steps."""
    n_derived: int = 1
    """Archs returned: the derived arch, then the plain argmax (when it differs) and the most probable
    other archs found by sampling the final α."""
    derive: str = "target"
    """"target": the argmax moved greedily into T·(1 ± derive_tolerance) by the cheapest flips of
    near-tied choices (`nas.proxyless.derive_to_target`); "argmax": the most probable arch."""
    derive_tolerance: float = 0.1
    """Relative tolerance around T of the "target" derive."""
    derive_max_flip_nats: float = 4.6
    """The "target" derive never flips a choice to an option e^this times less likely than its current one."""

    def __post_init__(self) -> None:
        if self.loss not in LOSSES:
            raise ProxylessError(f"proxyless loss {self.loss!r} is not one of {list(LOSSES)}")
        if self.loss == "mul" and (self.target_ms is None or not self.target_ms > 0):
            raise ProxylessError(f"proxyless loss 'mul' needs a positive target_ms, got {self.target_ms!r}")
        for name in ("steps", "batch_size", "arch_every", "log_every", "n_derived"):
            if int(getattr(self, name)) < 1:
                raise ProxylessError(f"proxyless {name} must be >= 1, got {getattr(self, name)!r}")
        if self.weight_grad_clip is not None and not self.weight_grad_clip > 0:
            raise ProxylessError(f"proxyless weight_grad_clip must be positive or None, got {self.weight_grad_clip!r}")
        if not 0 <= self.arch_beta1 < 1:
            raise ProxylessError(f"proxyless arch_beta1 must be in [0, 1), got {self.arch_beta1!r}")
        if self.derive not in DERIVES:
            raise ProxylessError(f"proxyless derive {self.derive!r} is not one of {list(DERIVES)}")
        if not 0 < self.derive_tolerance < 1:
            raise ProxylessError(f"proxyless derive_tolerance must be in (0, 1), got {self.derive_tolerance!r}")
        if not 0 <= self.warmup_steps <= self.steps:
            raise ProxylessError(f"proxyless warmup_steps must be in [0, steps={self.steps}], got {self.warmup_steps}")

    @classmethod
    def from_dict(cls, options: Mapping[str, Any], where: str = "", **defaults: Any) -> "ProxylessConfig":
        """From strategy `options` (at key path `where`) over `defaults`, e.g. the experiment's target_ms."""
        return load(cls, {**{k: v for k, v in defaults.items() if v is not None}, **options}, where)


@dataclass
class ProxylessResult:
    """What a search returns: the derived arch(s), the trajectory and the final α."""

    derived: list[Arch]
    predicted_ms: list[float]
    """Predicted latency (primary table) of each derived arch."""
    expected_ms: float
    """E[LAT] under the final probabilities."""
    probabilities: dict[str, list[float]]
    """Final softmax(α) per searched choice, in the option order of `space.dims`."""
    history: list[dict[str, float]]
    seconds: float
    config: dict[str, Any]
    derivation: Derived | None = None
    """How the first arch was derived: the plain argmax, both latencies, the log-probability given up."""
    network: ProxylessNetwork | None = field(default=None, repr=False)
    """The searched over-parameterized network (weights and α), e.g. to score paths; not serialized."""

    def to_dict(self) -> dict[str, Any]:
        return {"derived": [a.to_dict() for a in self.derived], "predicted_ms": self.predicted_ms,
                "expected_ms": self.expected_ms, "probabilities": self.probabilities, "history": self.history,
                "seconds": self.seconds, "config": self.config,
                "derivation": self.derivation.to_dict() if self.derivation else None}


def _cycle(loader: Any) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    while True:
        yield from loader


def latency_loss(ce: torch.Tensor, expected_ms: torch.Tensor, config: ProxylessConfig) -> torch.Tensor:
    """Combine the cross-entropy with the expected latency as the config says."""
    if config.loss == "add":
        return ce + config.lam_per_ms * expected_ms
    ratio = expected_ms / float(config.target_ms)  # type: ignore[arg-type]
    below = config.beta if config.beta_below is None else config.beta_below
    return ce * ratio ** reward_exponent(ratio, below, config.beta)


class ProxylessSearch:
    """The alternating optimization on one network; `step()` runs one iteration."""

    def __init__(self, network: ProxylessNetwork, table: Any, config: ProxylessConfig, seed: int) -> None:
        self.net, self.table, self.config = network, table, config
        self.space: SearchSpace = network.space
        self.generator = torch.Generator().manual_seed(int(seed))
        self.weight_opt = torch.optim.SGD(network.weight_parameters(), lr=config.weight_lr,
                                          momentum=config.weight_momentum, nesterov=config.weight_momentum > 0,
                                          weight_decay=config.weight_decay)
        self.arch_opt = torch.optim.Adam(network.arch_parameters(), lr=config.arch_lr,
                                         betas=(config.arch_beta1, 0.999), eps=1e-8)

    def expected_ms(self) -> torch.Tensor:
        return self.table.expected(self.net.latency_probs(), self.space, calibrated=self.config.calibrated)

    def weight_step(self, x: torch.Tensor, y: torch.Tensor) -> float:
        """One binarized step: a single sampled path runs and is updated."""
        self.net.train()
        path = self.net.sample_path(self.generator)
        loss = F.cross_entropy(self.net(x, path), y)
        self.weight_opt.zero_grad(set_to_none=True)  # untouched candidates keep grad None: SGD skips them
        loss.backward()
        if self.config.weight_grad_clip is not None:
            torch.nn.utils.clip_grad_norm_([p for p in self.net.weight_parameters() if p.grad is not None],
                                           self.config.weight_grad_clip)
        self.weight_opt.step()
        return float(loss.detach())

    def arch_gradients(self, x: torch.Tensor, y: torch.Tensor,
                       entropy_weight: float = 16.0) -> tuple[dict[str, Any], dict[str, float]]:
        """Set α.grad from one validation batch (two-path estimate + latency term); weights untouched.

        Returns the sampled paths (for `rescale`) and the loss terms.
        """
        net = self.net
        a, b, active = net.sample_two(self.generator)
        gates = {u.name: F.one_hot(torch.tensor(active[u.name]), 2).float().requires_grad_() for u in net.units}
        ce = F.cross_entropy(net.forward_two(x, (a, b), gates), y)
        expected = self.expected_ms()
        loss = latency_loss(ce, expected, self.config)
        if entropy_weight:
            loss = loss + entropy_weight * mean_entropy(net)
        alphas = net.arch_parameters()
        gate_list = [gates[u.name] for u in net.units]
        grads = torch.autograd.grad(loss, gate_list + alphas, allow_unused=True)
        gate_grads, alpha_grads = grads[:len(gate_list)], grads[len(gate_list):]
        # binary-gate gradient -> α: Σ_c ∂L/∂g_c · ∂p̃_c/∂α with p̃ the two renormalized path probabilities
        probs = net.probs()
        surrogate = torch.zeros(())
        for unit, g in zip(net.units, gate_grads):
            if g is None:
                continue
            pa = torch.stack([probs[d][a[d]] for d in unit.dims]).prod()
            pb = torch.stack([probs[d][b[d]] for d in unit.dims]).prod()
            surrogate = surrogate + (g.detach() * torch.stack([pa, pb]) / (pa + pb)).sum()
        path_grads = torch.autograd.grad(surrogate, alphas, allow_unused=True) if surrogate.requires_grad else [None] * len(alphas)
        for p, g_lat, g_path in zip(alphas, alpha_grads, path_grads):
            total = torch.zeros_like(p)
            for g in (g_lat, g_path):
                if g is not None:
                    total = total + g
            p.grad = total
        return {"a": a, "b": b}, {"arch_loss": float(loss.detach()), "val_ce": float(ce.detach()),
                                   "expected_ms": float(expected.detach())}

    @torch.no_grad()
    def rescale(self, before: Sequence[torch.Tensor], paths: Mapping[str, Any]) -> None:
        """Keep the log-sum-exp of each choice's two sampled options as it was before the step."""
        a, b = paths["a"], paths["b"]
        for dim, old, new in zip(self.net.arch_dims, before, self.net.arch_parameters()):
            if a[dim] == b[dim]:
                continue
            idx = torch.tensor([a[dim], b[dim]])
            new[idx] -= torch.logsumexp(new[idx], 0) - torch.logsumexp(old[idx], 0)

    def arch_step(self, x: torch.Tensor, y: torch.Tensor, progress: float = 1.0) -> dict[str, float]:
        """One architecture update; `progress` in [0, 1] (share of the arch steps done) ramps the entropy term."""
        self.net.train()
        before = [p.detach().clone() for p in self.net.arch_parameters()]
        self.arch_opt.zero_grad(set_to_none=True)
        paths, terms = self.arch_gradients(x, y, self.config.entropy_weight * progress)
        self.arch_opt.step()
        if self.config.rescale:
            self.rescale(before, paths)
        return terms

    def predicted_ms(self, arch: Arch) -> float:
        return float(self.table.predict(arch, self.space, calibrated=self.config.calibrated))


def _loaders(data: Any, config: ProxylessConfig, resolution: int, seed: int) -> tuple[Any, Any]:
    from nas.data import BatchLoader, DataSplits, load_dataset

    if data is None:
        data = config.dataset
    if isinstance(data, str):
        data = load_dataset(data, val_fraction=config.val_fraction, seed=seed)
    if not isinstance(data, DataSplits):
        raise ProxylessError(f"proxyless data must be a dataset name or nas.data.DataSplits, got {type(data).__name__}")
    train = BatchLoader(data.train, config.batch_size, shuffle=True, augment=config.augment, resolution=resolution,
                        drop_last=True, generator=seed + 1)
    val = BatchLoader(data.val, config.batch_size, shuffle=True, resolution=resolution, drop_last=True,
                      generator=seed + 2)
    if len(train) == 0 or len(val) == 0:
        raise ProxylessError(f"proxyless batch_size {config.batch_size} exceeds the train ({data.train.images.shape[0]}) "
                             f"or validation ({data.val.images.shape[0]}) split")
    return train, val


def build_network(space: SearchSpace, config: ProxylessConfig, seed: int) -> ProxylessNetwork:
    """The over-parameterized network, its weights initialized from `seed` (global RNG left untouched)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        return ProxylessNetwork(space, config.pins, share_weights=config.share_weights, pin_skip=config.pin_skip)


def run_proxyless(space: SearchSpace, tables: Any, data: Any, config: ProxylessConfig, seed: int,
                  progress: bool = True) -> ProxylessResult:
    """Search `space` with ProxylessNAS; the first of `tables` (a `LatencyTable` or a list) is the target.

    data: a dataset name (``"fashion_mnist"``, ``"fashion_mnist_tiny"``), `nas.data.DataSplits`, or
    None for `config.dataset`; the weight steps use its train split, the architecture steps its
    validation split.
    """
    from tqdm import tqdm

    table_list = list(tables) if isinstance(tables, (list, tuple)) else [tables]
    if not table_list:
        raise ProxylessError("run_proxyless needs at least one latency table")
    table = table_list[0]
    if not hasattr(table, "expected"):
        raise ProxylessError(f"ProxylessNAS needs a latency table with expected() (a nas.latency.LatencyTable), "
                             f"got {type(table).__name__}; the MACs proxy cannot drive it")
    table.check_covers(space)
    if getattr(table, "metadata", None) is not None:  # a table measured on another machine: say so once
        from nas.latency import warn_if_foreign

        warn_if_foreign(table)
    t0 = time.perf_counter()
    net = build_network(space, config, seed)
    search = ProxylessSearch(net, table, config, seed)
    train, val = _loaders(data, config, net.resolution, seed)
    train_it, val_it = _cycle(train), _cycle(val)
    history: list[dict[str, float]] = []
    running: dict[str, list[float]] = {}
    bar = tqdm(range(config.steps), desc="proxyless", disable=not progress, unit="step", dynamic_ncols=True)
    for step in bar:
        x, y = next(train_it)
        running.setdefault("train_ce", []).append(search.weight_step(x, y))
        if step >= config.warmup_steps and (step - config.warmup_steps) % config.arch_every == 0:
            xv, yv = next(val_it)
            done = (step - config.warmup_steps) / max(1, config.steps - config.warmup_steps)
            for k, v in search.arch_step(xv, yv, done).items():
                running.setdefault(k, []).append(v)
        if (step + 1) % config.log_every == 0 or step + 1 == config.steps:
            with torch.no_grad():
                expected = float(search.expected_ms())
                argmax_ms = search.predicted_ms(net.derive())
            row = {"step": step + 1, **{k: float(np.mean(v)) for k, v in running.items()},
                   "expected_ms": expected, "argmax_ms": argmax_ms, "entropy": _entropy(net)}
            history.append(row)
            running = {}
            bar.set_postfix(ce=f"{row['train_ce']:.3f}", exp_ms=f"{expected:.3f}", argmax_ms=f"{argmax_ms:.3f}")
    bar.close()
    derivation = derive_to_target(net, table, config.target_ms if config.loss == "mul" else None,
                                  config.derive_tolerance, config.calibrated, config.derive, config.derive_max_flip_nats)
    derived = _derive(net, derivation, config.n_derived, search.generator)
    with torch.no_grad():
        probs = {d: [float(v) for v in p] for d, p in net.probs().items()}
        expected = float(search.expected_ms())
    return ProxylessResult(derived, [search.predicted_ms(a) for a in derived], expected, probs, history,
                           time.perf_counter() - t0, asdict(config), derivation, net)


def mean_entropy(net: ProxylessNetwork) -> torch.Tensor:
    """Mean entropy (nats) of the searched choices' distributions (differentiable)."""
    values = [-(p * torch.log_softmax(a, 0)).sum() for p, a in zip(net.probs().values(), net.arch_parameters())]
    return torch.stack(values).mean() if values else torch.zeros(())


def _entropy(net: ProxylessNetwork) -> float:
    with torch.no_grad():
        return float(mean_entropy(net))


def _derive(net: ProxylessNetwork, derivation: Derived, n: int, generator: torch.Generator) -> list[Arch]:
    """The derived arch, the argmax (if it differs), then other distinct archs in order of probability
    among samples: n in all."""
    out = list(dict.fromkeys([derivation.arch, derivation.argmax]))[:n]
    if len(out) == n:
        return out
    probs = {d: p.detach() for d, p in net.probs().items()}
    seen = set(out)
    scored: list[tuple[float, int, Arch]] = []
    for k in range(50 * n):
        path = net.sample_path(generator)
        arch = net.arch_of(path)
        if arch in seen:
            continue
        seen.add(arch)
        logp = sum(math.log(float(probs[d][i])) for d, i in path.items())
        scored.append((-logp, k, arch))
    out += [a for _, _, a in sorted(scored)[: n - len(out)]]
    for arch in out:
        net.space.validate(arch)
    return out
