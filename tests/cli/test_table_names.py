"""Default latency table file names carry everything that changes the layers."""

from nas.cli._latency import default_table_path


def test_default_table_names_carry_classes_channels_and_width():
    path = default_table_path("pi", "tflite", 4, "ofa_mbv3", [28, 32], 10, 1, 0.5)
    assert path.name == "pi_tflite_t4_ofa_mbv3_r28-32_10cls_1ch_w0.5.csv"
    assert default_table_path("pi", "onnxruntime", 1, "mnasnet", [224], 1000, 3, 1.0).name == \
        "pi_onnxruntime_t1_mnasnet_r224_1000cls_3ch_w1.csv"
