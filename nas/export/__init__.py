"""Export any ``nn.Module`` (a block, a whole network, an extracted subnet) to ONNX or TFLite, and
quantize an ONNX model to int8 (``quantize_onnx``, torch-free).

``fold_bn`` merges batch norm into the convs, as deployed inference graphs have it.
"""

from nas.export._fold import fold_bn
from nas.export._onnx import DEFAULT_OPSET, ExportError, export_onnx
from nas.export._quantize import (DTYPES, INT8, QuantSettings, QuantizeError, check_dtype, predict_onnx,
                                  quantize_onnx, random_calibration)
from nas.export._tflite import MissingExtraError, export_tflite, tflite_converter_available

__all__ = ["DEFAULT_OPSET", "DTYPES", "ExportError", "INT8", "MissingExtraError", "QuantSettings", "QuantizeError",
           "check_dtype", "export_onnx", "export_tflite", "fold_bn", "predict_onnx", "quantize_onnx",
           "random_calibration",
           "tflite_converter_available"]
