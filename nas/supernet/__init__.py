"""Once-for-all supernet: shared weights for every arch of an elastic MBConv space.

``Supernet(space)(x, arch)`` runs any arch on shared weights (the arch is an argument, never
module state); ``extract(supernet, arch)`` returns the equivalent static `nas.build_model` network.
"""

from nas.supernet._extract import extract
from nas.supernet._ops import ActiveWeights, BNParams, DynamicMBBlock, SupernetError
from nas.supernet._supernet import ELASTIC, Supernet, check_space, extreme_arch, largest_arch, smallest_arch

__all__ = ["ELASTIC", "ActiveWeights", "BNParams", "DynamicMBBlock", "Supernet", "SupernetError",
           "check_space", "extract", "extreme_arch", "largest_arch", "smallest_arch"]
