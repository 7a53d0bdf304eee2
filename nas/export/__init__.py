"""Export any ``nn.Module`` (a block, a whole network, an extracted subnet) to ONNX or TFLite.

``fold_bn`` merges batch norm into the convs, as deployed inference graphs have it.
"""

from nas.export._fold import fold_bn
from nas.export._onnx import DEFAULT_OPSET, ExportError, export_onnx
from nas.export._tflite import MissingExtraError, export_tflite, tflite_converter_available

__all__ = ["DEFAULT_OPSET", "ExportError", "MissingExtraError", "export_onnx", "export_tflite", "fold_bn",
           "tflite_converter_available"]
