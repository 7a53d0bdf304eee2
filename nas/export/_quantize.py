"""Post-training static int8 quantization of an ONNX model with ONNX Runtime's public API.

Torch-free (numpy + ``onnxruntime.quantization``): the same function quantizes one block of a
latency table (random calibration inputs: enough to time it) and an extracted subnet (real images).
The result is a QDQ model (QuantizeLinear/DequantizeLinear pairs around every quantizable op, which
ONNX Runtime fuses into integer kernels); input and output stay float32, so any runner that feeds a
float32 array runs it unchanged.
"""

from __future__ import annotations

import logging
import tempfile
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Sequence

import numpy as np

from nas._atomic import atomic_path
from nas.export._atomic import ExportError

DTYPES = ("float32", "int8")
"""The dtypes a latency table or an exported model can have."""


class QuantizeError(ExportError):
    """A model could not be quantized (bad settings, missing runtime, or the quantizer failed)."""


@dataclass(frozen=True)
class QuantSettings:
    """How `quantize_onnx` quantizes (recorded as a table's ``metadata["quantization"]``).

    activation_type: QUInt8 by default: ONNX Runtime's x86 integer kernels (MLAS) multiply
    unsigned 8-bit activations by signed 8-bit weights (VNNI ``vpdpbusd``, AVX2 ``vpmaddubsw``,
    AMX); signed activations (QInt8) are run through the same kernels after a shift, which cost
    more per conv on this machine (see `experiments/benchmarks/int8_ort_table.py`).
    """

    format: str = "QDQ"
    """QDQ (QuantizeLinear/DequantizeLinear around each op) or QOperator (QLinearConv ops)."""
    per_channel: bool = True
    """One scale per output channel of each weight (else one per tensor)."""
    activation_type: str = "QUInt8"
    """QUInt8 | QInt8: the activations' 8-bit type."""
    weight_type: str = "QInt8"
    """QInt8 | QUInt8: the weights' 8-bit type."""
    calibrate_method: str = "MinMax"
    """MinMax | Entropy | Percentile: how activation ranges are taken from the calibration data."""
    reduce_range: bool = False
    """7-bit weights (for CPUs without VNNI whose u8s8 products can saturate)."""

    def to_dict(self) -> dict[str, Any]:
        return {"tool": "onnxruntime.quantization.quantize_static", **asdict(self)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> "QuantSettings":
        names = {f.name for f in fields(cls)}
        unknown = set(data or {}) - names - {"tool"}
        if unknown:
            raise QuantizeError(f"unknown quantization setting(s) {sorted(unknown)}; known: {sorted(names)}")
        return cls(**{k: v for k, v in (data or {}).items() if k in names})


INT8 = QuantSettings()
"""The default int8 settings (tables and ``nas extract --quantize int8``)."""


def check_dtype(dtype: str) -> str:
    """`dtype` if it is one of `DTYPES`, else `QuantizeError` naming the choices."""
    if dtype not in DTYPES:
        raise QuantizeError(f"unknown dtype {dtype!r}; use one of {list(DTYPES)}")
    return dtype


def random_calibration(input_shape: Sequence[int], batches: int = 4, seed: int = 0) -> list[np.ndarray]:
    """`batches` standard-normal float32 inputs of `input_shape` (ranges for timing, not accuracy)."""
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(tuple(input_shape)).astype(np.float32) for _ in range(batches)]


def _reader(input_name: str, inputs: Iterable[np.ndarray]) -> Any:
    from onnxruntime.quantization import CalibrationDataReader

    class _Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._it: Iterator[np.ndarray] = iter(inputs)

        def get_next(self) -> dict[str, np.ndarray] | None:
            x = next(self._it, None)
            return None if x is None else {input_name: np.ascontiguousarray(x, dtype=np.float32)}

    return _Reader()


def quantize_onnx(model_in: str | Path, model_out: str | Path, calibration: Iterable[np.ndarray],
                  settings: QuantSettings | Mapping[str, Any] = INT8) -> Path:
    """Statically quantize the float32 ONNX model `model_in` to int8 at `model_out` (atomically).

    calibration: input arrays of the model's input shape, run once each to take activation ranges
    (e.g. `random_calibration` for timing, real images for accuracy). Weights are quantized per
    output channel when `settings.per_channel`. Returns `model_out`.
    """
    try:
        import onnx
        from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    except ImportError:
        raise QuantizeError("int8 quantization needs onnxruntime and onnx: pip install onnxruntime onnx") from None
    if not isinstance(settings, QuantSettings):
        settings = QuantSettings.from_dict(settings)
    model_in, model_out = Path(model_in), Path(model_out)
    try:
        fmt = getattr(QuantFormat, settings.format)
        act, weight = getattr(QuantType, settings.activation_type), getattr(QuantType, settings.weight_type)
        method = getattr(CalibrationMethod, settings.calibrate_method)
    except AttributeError as err:
        raise QuantizeError(f"bad quantization setting in {settings}: {err}") from None
    from onnxruntime.quantization.shape_inference import quant_pre_process

    root = logging.getLogger()  # the quantizer warns through the root logger (per bias, per model)
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        return _quantize(onnx, quant_pre_process, quantize_static, model_in, model_out, calibration,
                         dict(quant_format=fmt, per_channel=settings.per_channel, reduce_range=settings.reduce_range,
                              activation_type=act, weight_type=weight, calibrate_method=method))
    finally:
        root.setLevel(level)


def _quantize(onnx: Any, pre_process: Any, quantize_static: Any, model_in: Path, model_out: Path,
              calibration: Iterable[np.ndarray], options: Mapping[str, Any]) -> Path:
    model = onnx.load(str(model_in))
    # the recommended pre-processing: ONNX Runtime's graph optimizations (drop the Identity nodes the
    # exporter writes for shared biases, so every bias is an initializer and becomes int32) + shapes
    with tempfile.TemporaryDirectory(prefix="hwnas-quant-") as tmp:
        pre = Path(tmp) / "pre.onnx"
        try:
            pre_process(model, str(pre), skip_symbolic_shape=True)
        except Exception as err:  # noqa: BLE001 - re-raised with the file named
            raise QuantizeError(f"pre-processing {str(model_in)!r} for int8 failed: {err}") from err
        model = onnx.load(str(pre))
    initializers = {i.name for i in model.graph.initializer}
    (input_name,) = [i.name for i in model.graph.input if i.name not in initializers]
    with atomic_path(model_out) as out:  # the calibrator keeps its augmented model in its own temp folder
        try:
            quantize_static(model, str(out), _reader(input_name, calibration), **options)
        except Exception as err:  # noqa: BLE001 - re-raised with the files named
            raise QuantizeError(f"int8 quantization of {str(model_in)!r} to {str(model_out)!r} failed: {err}") from err
    return model_out


def predict_onnx(model: str | Path, images: Iterable[np.ndarray], threads: int = 1) -> np.ndarray:
    """The argmax class of every image, run with ONNX Runtime's CPU provider on `model`.

    images: arrays of the model's input shape without the batch axis, or batches of them (the
    model's static batch of 1 is fed one image at a time). Returns one int64 per image."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.log_severity_level = 3
    session = ort.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])
    (inp,) = session.get_inputs()
    rank = len(inp.shape)
    out: list[int] = []
    for x in images:
        x = np.asarray(x, dtype=np.float32)
        for one in (x[None] if x.ndim == rank - 1 else x):
            logits = session.run(None, {inp.name: np.ascontiguousarray(one[None])})[0]
            out.append(int(np.argmax(logits.reshape(-1))))
    return np.asarray(out, dtype=np.int64)


__all__ = ["DTYPES", "INT8", "QuantSettings", "QuantizeError", "check_dtype", "predict_onnx", "quantize_onnx",
           "random_calibration"]
