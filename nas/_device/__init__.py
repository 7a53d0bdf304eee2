"""Torch-free latency measurement core, shared by the host build and ``python -m nas.device_runner``.

Needs only the standard library, numpy and an inference runtime (onnxruntime or a TFLite runtime).
"""

from nas._device._fingerprint import FieldDiff, describe, fingerprint, fingerprint_diff

__all__ = ["FieldDiff", "describe", "fingerprint", "fingerprint_diff"]
