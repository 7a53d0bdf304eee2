"""Inference runtimes a device may have: ONNX Runtime and a TFLite interpreter (no torch here).

`open_model(backend, path, threads)` loads a model file and returns a zero-argument callable that
runs one inference on a fixed random input (batch 1, float32, the model's own input shape).
"""

from __future__ import annotations

import os
import platform
from typing import Any, Callable

import numpy as np

from nas._errors import HwnasError

FILE_BACKENDS = ("onnxruntime", "tflite")
"""Backends that run exported model files (and so can run on a device without torch)."""
SUFFIX = {"onnxruntime": ".onnx", "tflite": ".tflite"}


class RuntimeMissingError(HwnasError):
    """The inference runtime a backend needs is not installed."""


def _tflite_interpreter() -> tuple[Any, str]:
    try:
        from ai_edge_litert import interpreter as module
        import ai_edge_litert

        return module.Interpreter, f"ai-edge-litert {getattr(ai_edge_litert, '__version__', '?')}"
    except ImportError:
        pass
    try:
        from tflite_runtime import interpreter as module  # the pre-2024 standalone runtime
        import tflite_runtime

        return module.Interpreter, f"tflite-runtime {getattr(tflite_runtime, '__version__', '?')}"
    except ImportError:
        raise RuntimeMissingError("the tflite backend needs a TFLite runtime: pip install ai-edge-litert "
                                  "(or tflite-runtime on devices that only have it)") from None


def runtime_version(backend: str) -> str:
    """Name and version of the runtime behind `backend` (raises if it is not installed)."""
    if backend == "onnxruntime":
        try:
            import onnxruntime
        except ImportError:
            raise RuntimeMissingError("the onnxruntime backend needs: pip install onnxruntime") from None
        return f"onnxruntime {onnxruntime.__version__}"
    if backend == "tflite":
        return _tflite_interpreter()[1]
    if backend == "torch":
        import torch

        return f"torch {torch.__version__}"
    raise HwnasError(f"unknown backend {backend!r}; use one of onnxruntime, tflite, torch")


def open_model(backend: str, path: str, threads: int, seed: int = 0) -> Callable[[], Any]:
    """Load the model file at `path` for `backend` and return ``run()`` doing one inference."""
    rng = np.random.default_rng(seed)
    if backend == "onnxruntime":
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3
        session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        (inp,) = session.get_inputs()
        feed = {inp.name: rng.standard_normal(inp.shape).astype(np.float32)}
        names = [o.name for o in session.get_outputs()]
        return lambda: session.run(names, feed)
    if backend == "tflite":
        interpreter_cls, _ = _tflite_interpreter()
        interpreter = interpreter_cls(model_path=path, num_threads=threads)
        interpreter.allocate_tensors()
        (inp,) = interpreter.get_input_details()
        interpreter.set_tensor(inp["index"], rng.standard_normal(inp["shape"]).astype(np.float32))
        return interpreter.invoke
    raise HwnasError(f"backend {backend!r} does not run model files; use one of {list(FILE_BACKENDS)}")


def device_info() -> dict[str, Any]:
    """What this machine is: CPU model, core count, OS, Python (recorded in table metadata)."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {"cpu_model": cpu, "cpu_count": os.cpu_count(), "machine": platform.machine(),
            "os": f"{platform.system()} {platform.release()}", "python": platform.python_version(),
            "numpy": np.__version__}


def utc_now() -> str:
    """The current UTC time, ISO 8601 (table metadata dates)."""
    import datetime

    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
