"""After the search: hardware-aware channel pruning (NetAdapt) of an extracted subnet.

`prune` cuts one width of a static `nas.Network` (channels kept by the L1 norm of the weights that
read them); `netadapt` prunes one width per iteration, each chosen by the latency table of the
target device (widths it lacks are timed on the fly and added), until the network measures under
a target; `uniform_baseline` and `write_trajectory` compare it with uniform width scaling.
``nas compress`` runs it all; ``nas finetune --model`` fine-tunes (and distils) the result.
"""

from nas.compress._netadapt import CompressError, Env, NetAdaptConfig, load_state, netadapt, short_finetune
from nas.compress._prune import copy_weights, importance, prunable, prune, uniform, with_widths
from nas.compress._report import measure_points, uniform_baseline, write_trajectory
from nas.compress._widths import WidthPredictor

__all__ = ["CompressError", "Env", "NetAdaptConfig", "WidthPredictor", "copy_weights", "importance", "load_state",
           "measure_points", "netadapt", "prunable", "prune", "short_finetune", "uniform", "uniform_baseline",
           "with_widths", "write_trajectory"]
