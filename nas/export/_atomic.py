"""The part every exporter shares: eval mode, a temporary file beside the target, rename on success."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Any, Iterator

from nas._errors import HwnasError


class ExportError(HwnasError):
    """A model could not be exported (the message names the model file and the cause)."""


@contextlib.contextmanager
def atomic_export(module: Any, path: Path, what: str) -> Iterator[str]:
    """Yield a temporary file name to write `module` to; on success it replaces `path` (mode 644).

    `module` is in eval mode inside and gets its training flag back afterwards; a failure raises
    `ExportError` naming the `what` format, the module and `path`, and leaves no temporary file.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    was_training = module.training
    module.eval()
    fd, tmp = tempfile.mkstemp(suffix=f"{path.suffix}.tmp", dir=path.parent)
    os.close(fd)
    try:
        yield tmp
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except ExportError:
        raise
    except Exception as err:  # noqa: BLE001 - re-raised with the file named
        raise ExportError(f"{what} export of {type(module).__name__} to {str(path)!r} failed: {err}") from err
    finally:
        module.train(was_training)
        if os.path.exists(tmp):
            os.unlink(tmp)
