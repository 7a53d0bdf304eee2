"""hwnas: hardware-aware neural architecture search.

Architectures are data (`Arch`), search spaces are declared in YAML (`load_space`), and one
builder turns any arch into a plain PyTorch network (`build_model`).

Names are imported on first use, so ``python -m nas.device_runner`` runs on a device that has
only the standard library, numpy and an inference runtime (no torch, no yaml).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "nas._errors": ["HwnasError"],
    "nas._config": ["ConfigError"],
    "nas._arch": ["Arch", "ArchError", "BlockKey", "BlockSpec", "HeadSpec", "make_divisible"],
    "nas._codec": ["Codec"],
    "nas._space": ["SearchSpace", "SpaceError", "list_presets", "list_spaces", "load_preset", "load_space"],
    "nas._model": ["build_block", "build_model", "count_macs", "count_params", "layer_table"],
}
_WHERE = {name: module for module, names in _EXPORTS.items() for name in names}
__all__ = sorted(_WHERE) + ["__version__"]

if TYPE_CHECKING:  # pragma: no cover
    from nas._config import ConfigError
    from nas._errors import HwnasError
    from nas._arch import Arch, ArchError, BlockKey, BlockSpec, HeadSpec, make_divisible
    from nas._codec import Codec
    from nas._model import build_block, build_model, count_macs, count_params, layer_table
    from nas._space import SearchSpace, SpaceError, list_presets, list_spaces, load_preset, load_space


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        value = getattr(importlib.import_module(_WHERE[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'nas' has no attribute {name!r}")


def __dir__() -> list[str]:
    return __all__
