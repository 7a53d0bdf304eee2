"""Supernet checkpoints: atomic save, validated load, and the weights-only form that ships.

A training checkpoint (``checkpoint.pt`` in a run's output directory) holds everything a resume
needs. `slim_checkpoint` keeps only what evaluation and extraction read (weights, space, config,
history): about half the size, since the optimizer's momentum is as large as the weights. Every
loader here (`load_checkpoint`, `supernet_from_checkpoint`, hence the search's ``supernet``
evaluator and ``nas extract``) takes either form; only resuming training needs the full one.

    python -m nas.supernet slim runs/supernet_fmnist/checkpoint.pt experiments/weights/supernet_fmnist.pt
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from nas._atomic import atomic_path
from nas._space import SearchSpace
from nas.supernet._ops import SupernetError
from nas.supernet._supernet import Supernet

FORMAT = "hwnas-supernet-v1"
WEIGHT_KEYS = frozenset({"format", "config", "space", "model", "step", "history"})
"""What evaluation and extraction read; a weights-only checkpoint holds these (and ``weights_only``)."""
RESUME_KEYS = frozenset({"optimizer", "sampler_rng", "epoch_start_rng", "batch_in_epoch", "torch_rng"})
"""What resuming training needs besides the weights."""


class CheckpointError(SupernetError):
    """A checkpoint is unreadable, incomplete or belongs to another config."""


def save_checkpoint(path: str | os.PathLike[str], payload: dict[str, Any]) -> None:
    """`torch.save` to a temporary file in the same directory, fsync, then rename over `path`."""
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def load_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a checkpoint (full or weights-only) with ``weights_only=True``; `CheckpointError`
    naming the file if it is missing, truncated, corrupt or not a supernet checkpoint."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {str(path)!r} does not exist")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises RuntimeError, UnpicklingError, EOFError, ... on bad files
        raise CheckpointError(f"checkpoint {str(path)!r} is unreadable ({type(err).__name__}: "
                              f"{str(err).splitlines()[0] if str(err) else 'no detail'}); delete it to start "
                              "over or restore a good copy") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"checkpoint {str(path)!r} is not an hwnas supernet checkpoint ({FORMAT})")
    required = WEIGHT_KEYS if payload.get("weights_only") else WEIGHT_KEYS | RESUME_KEYS
    missing = sorted(required - set(payload))
    if missing:
        raise CheckpointError(f"checkpoint {str(path)!r} lacks {missing}")
    return payload


def load_resumable(path: str | os.PathLike[str], comparable: dict[str, Any]) -> dict[str, Any]:
    """A full checkpoint written by the training config whose ``comparable()`` is `comparable`;
    `CheckpointError` for a weights-only one or one of another config."""
    payload = load_checkpoint(path)
    if payload.get("weights_only"):
        raise CheckpointError(f"checkpoint {str(path)!r} holds weights only (no optimizer or data "
                              "order), so training cannot resume from it; use another output_dir")
    if payload["config"] != comparable:
        changed = sorted(k for k in set(payload["config"]) | set(comparable)
                         if payload["config"].get(k) != comparable.get(k))
        raise CheckpointError(f"checkpoint {str(path)!r} was written by a different config "
                              f"(differs in {changed}); use another output_dir or delete the checkpoint")
    return payload


def supernet_from_checkpoint(path: str | os.PathLike[str], payload: dict[str, Any] | None = None) -> Supernet:
    """The trained supernet stored in a checkpoint (eval mode), its space rebuilt from the file
    (`payload`: the file as `load_checkpoint` read it, when it was)."""
    payload = load_checkpoint(path) if payload is None else payload
    space = SearchSpace(payload["space"], f"{path} (space)")
    supernet = Supernet(space, float(payload["config"].get("dropout", 0.0)))
    try:
        supernet.load_state_dict(payload["model"])
    except RuntimeError as err:
        raise CheckpointError(f"checkpoint {str(path)!r}: weights do not fit the stored space ({err})") from None
    return supernet.eval()


def slim_checkpoint(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> dict[str, Any]:
    """Write the weights-only form of checkpoint `src` to `dst` (tensors made contiguous, so the
    file holds no channels-last strides); returns the payload written."""
    payload = load_checkpoint(src)
    slim = {key: payload[key] for key in sorted(WEIGHT_KEYS)}
    slim["model"] = {name: t.contiguous() for name, t in payload["model"].items()}
    slim["weights_only"] = True
    slim["train_seconds"] = payload.get("train_seconds")
    save_checkpoint(dst, slim)
    return slim


__all__ = ["FORMAT", "RESUME_KEYS", "WEIGHT_KEYS", "CheckpointError", "load_checkpoint", "load_resumable",
           "save_checkpoint", "slim_checkpoint", "supernet_from_checkpoint"]
