"""Torch-free latency measurement core, shared by the host build and ``python -m nas.device_runner``.

Needs only the standard library, numpy and an inference runtime (onnxruntime or a TFLite runtime).
"""

from nas._device._files import (COLUMNS, FORMAT_VERSION, HEADERS, STAT_COLUMNS, key_from_row, sha256_text, sidecar_path,
                                write_table)
from nas._device._fingerprint import FieldDiff, describe, fingerprint, fingerprint_diff
from nas._device._runner import MANIFEST, MANIFEST_FORMAT, NETWORKS, RunnerError, measure, read_manifest, work_lock
from nas._device._runtimes import FILE_BACKENDS, SUFFIX, RuntimeMissingError, device_info, runtime_version, utc_now
from nas._device._timing import PassStats, Protocol, ProtocolError

__all__ = ["COLUMNS", "FILE_BACKENDS", "FORMAT_VERSION", "HEADERS", "MANIFEST", "MANIFEST_FORMAT", "NETWORKS", "STAT_COLUMNS", "SUFFIX",
           "FieldDiff", "PassStats", "Protocol", "ProtocolError", "RunnerError", "RuntimeMissingError", "describe",
           "device_info", "fingerprint", "fingerprint_diff", "key_from_row", "measure", "read_manifest",
           "runtime_version", "sha256_text", "sidecar_path", "utc_now", "work_lock", "write_table"]
