"""The part every exporter shares: eval mode, a temporary file beside the target, rename on success."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any, Iterator

from nas._atomic import atomic_path
from nas._errors import HwnasError


class ExportError(HwnasError):
    """A model could not be exported (the message names the model file and the cause)."""


@contextlib.contextmanager
def atomic_export(module: Any, path: Path, what: str) -> Iterator[str]:
    """Yield a temporary file name to write `module` to; on success it replaces `path` (`atomic_path`).

    `module` is in eval mode inside and gets its training flag back afterwards; a failure raises
    `ExportError` naming the `what` format, the module and `path`, and leaves no temporary file.
    """
    was_training = module.training
    module.eval()
    try:
        with atomic_path(path) as tmp:
            yield str(tmp)
    except ExportError:
        raise
    except Exception as err:  # noqa: BLE001 - re-raised with the file named
        raise ExportError(f"{what} export of {type(module).__name__} to {str(path)!r} failed: {err}") from err
    finally:
        module.train(was_training)
