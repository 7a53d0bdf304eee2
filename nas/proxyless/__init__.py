"""ProxylessNAS: differentiable search with binarized paths and a latency loss from the table.

    from nas.proxyless import ProxylessConfig, run_proxyless
    config = ProxylessConfig(target_ms=1.0, steps=300)
    result = run_proxyless(space, table, "fashion_mnist", config, seed=0)
    result.derived[0]                        # the argmax arch, a point of `space`

`ProxylessNetwork` is the over-parameterized network (α per searched choice of the space,
`arch_parameters()` / `weight_parameters()`, one-, two- and all-path forwards, `derive()`);
`ProxylessSearch` the alternating weight / architecture steps. With ``share_weights`` the candidates
of one layer that run the same op share their convolutions (`SharedOp`, `SharedCandidate`).
"""

from nas.proxyless._derive import DERIVES, Derived, derive_to_target
from nas.proxyless._experiment import ProxylessStrategy
from nas.proxyless._memory import saved_activation_bytes
from nas.proxyless._mixed import MixedLayer, Unit
from nas.proxyless._network import OP_ATTRS, SEARCHABLE, ProxylessError, ProxylessNetwork, resolve_pins
from nas.proxyless._shared import SharedCandidate, SharedOp
from nas.proxyless._search import (LOSSES, ProxylessConfig, ProxylessResult, ProxylessSearch, build_network,
                                   latency_loss, run_proxyless)

__all__ = ["DERIVES", "LOSSES", "OP_ATTRS", "SEARCHABLE", "Derived", "MixedLayer", "ProxylessConfig", "ProxylessError",
           "ProxylessNetwork", "ProxylessResult", "ProxylessSearch", "ProxylessStrategy", "SharedCandidate",
           "SharedOp", "Unit", "build_network", "derive_to_target", "latency_loss", "resolve_pins", "run_proxyless",
           "saved_activation_bytes"]
