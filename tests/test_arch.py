"""Arch as data: JSON round trips, hashing, clear errors."""

import json

import pytest

from nas import Arch, ArchError, BlockSpec, HeadSpec, load_preset


def _arch() -> Arch:
    return load_preset("mnasnet_b1")[1]


def test_json_round_trip_and_hash():
    arch = _arch()
    again = Arch.from_json(arch.to_json())
    assert again == arch
    assert hash(again) == hash(arch)
    assert len({arch, again}) == 1
    assert json.loads(arch.to_json())["resolution"] == 224


def test_short_string_is_timm_like():
    arch = _arch()
    assert arch.short().startswith("r224 cn_k3_s2_c32 | ds_k3_c16 | ir_k3_s2_e3_c24 ir_k3_e3_c24_skip")
    assert BlockSpec("mb", 5, 1, 40, 6, 0.25, False, "relu").short() == "ir_k5_e6_c40_se"
    assert BlockSpec("conv", 3, 2, 32).short() == "cn_k3_s2_c32"


def test_frozen():
    arch = _arch()
    with pytest.raises(AttributeError):
        arch.resolution = 32  # type: ignore[misc]


@pytest.mark.parametrize("kwargs, message", [
    (dict(op="sep", kernel=3, stride=1, out_channels=8), "op 'sep'"),
    (dict(op="mb", kernel=4, stride=1, out_channels=8), "kernel 4"),
    (dict(op="mb", kernel=3, stride=3, out_channels=8), "stride 3"),
    (dict(op="ds", kernel=3, stride=1, out_channels=8, expand=6), "takes no expand"),
    (dict(op="mb", kernel=3, stride=1, out_channels=8, act="gelu"), "act 'gelu'"),
    (dict(op="mb", kernel=3, stride=1, out_channels=0), "out_channels 0"),
])
def test_block_spec_errors_name_the_field(kwargs, message):
    with pytest.raises(ArchError, match=message):
        BlockSpec(**kwargs)


def test_skip_needs_matching_shapes():
    stem = BlockSpec("conv", 3, 2, 16)
    with pytest.raises(ArchError, match="stage 0 layer 0: skip needs stride 1"):
        Arch(32, stem, ((BlockSpec("mb", 3, 1, 24, 3, skip=True),),), HeadSpec(64))


def test_malformed_json_errors():
    with pytest.raises(ArchError, match="arch.json: malformed JSON"):
        Arch.from_json('{"resolution": 32,', source="arch.json")
    data = _arch().to_dict()
    data["stages"][1][0]["kernal"] = 3
    with pytest.raises(ArchError, match=r"stage 1 layer 0: unknown field\(s\) \['kernal'\]"):
        Arch.from_dict(data)
    data = _arch().to_dict()
    del data["head"]
    with pytest.raises(ArchError, match=r"missing field\(s\) \['head'\]"):
        Arch.from_dict(data)
    with pytest.raises(ArchError, match="must be a JSON object"):
        Arch.from_dict([1, 2])


def test_block_keys_follow_the_shapes():
    arch = _arch()
    keys = arch.block_keys(num_classes=10, in_channels=1)
    assert keys[0].kind == "stem" and keys[0].in_channels == 1 and keys[0].in_hw == 224
    assert keys[-1].kind == "head" and keys[-1].num_classes == 10 and keys[-1].in_hw == 7
    assert len(keys) == len(arch.blocks) + 2
    for prev, key in zip(keys[:-1], keys[1:]):
        assert key.in_hw == prev.out_hw and key.in_channels == prev.out_channels
