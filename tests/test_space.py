"""Search spaces: sizes, encode/decode, sampling, mutation, restriction, presets, errors."""

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nas import ArchError, SpaceError, list_presets, list_spaces, load_preset, load_space

SPACES = ["mnasnet", "ofa_mbv3"]


def test_builtins_listed():
    assert list_spaces() == ["mnasnet", "ofa_mbv3"]
    assert set(list_presets()) == {"mobilenetv2_100", "mnasnet_b1", "mnasnet_a1", "mobilenetv3_large",
                                   "ofa_max", "ofa_min"}


def test_ofa_size_is_the_closed_form():
    # per layer 3 kernels x 3 expands = 9 choices; a stage of depth d has 9**d; depth 2/3/4; 5 stages
    space = load_space("ofa_mbv3", resolutions=[224])
    assert space.size() == ((3 * 3) ** 2 + (3 * 3) ** 3 + (3 * 3) ** 4) ** 5 == 21758655492572485851
    assert load_space("ofa_mbv3").size() == 4 * space.size()  # four resolutions


def _brute_force_size(space) -> int:
    return len({space.decode(dict(zip(space.dims, combo)))
                for combo in itertools.product(*space.dims.values())})


def test_size_counts_distinct_archs(tmp_path):
    # widths equal across stages make a stage's first layer skip-eligible only sometimes, and a
    # one-layer stage that can't use its skip choice must not be counted twice
    path = tmp_path / "factorized.yaml"
    path.write_text(
        "name: factorized\nresolutions: [16]\nstem: {out_channels: 8, kernel: 3, stride: 2}\n"
        "head: {channels: 16}\n"
        "defaults: {choices: {op: [ds, mb3], se: [0.0, 0.25], skip: [false, true], depth: [1, 2]}}\n"
        "stages:\n"
        "  - {stride: 1, kernel: 3, choices: {width: [8, 12]}}\n"
        "  - {stride: 1, kernel: 3, choices: {width: [8, 12]}}\n"
        "  - {stride: 2, kernel: 3, choices: {width: [12]}}\n")
    space = load_space(path)
    assert space.size() == _brute_force_size(space)
    assert space.size() < np.prod([len(v) for v in space.dims.values()])  # duplicates exist and are merged


def test_size_with_per_layer_choices_matches_brute_force(tmp_path):
    path = tmp_path / "elastic.yaml"
    path.write_text(
        "name: elastic\nresolutions: [16, 24]\nstem: {out_channels: 8, kernel: 3, stride: 2}\n"
        "head: {channels: 16}\ndefaults: {op: mb, expand: 3, choices: {kernel: [3, 5], depth: [1, 2]}, "
        "per_layer: [kernel]}\n"
        "stages:\n  - {width: 8, stride: 1, skip: true}\n  - {width: 16, stride: 2, skip: true}\n")
    space = load_space(path)
    # 2 resolutions x (2 + 2**2 kernel patterns) per stage, 2 stages; unused layers don't multiply
    assert space.size() == _brute_force_size(space) == 2 * (2 + 4) ** 2


@pytest.mark.parametrize("name", SPACES)
def test_sample_is_deterministic_and_valid(name):
    space = load_space(name)
    a = [space.sample(np.random.default_rng(7)) for _ in range(3)]
    assert a[0] == a[1] == a[2]
    rng = np.random.default_rng(0)
    archs = [space.sample(rng) for _ in range(300)]
    assert all(space.contains(x) for x in archs)
    assert len(set(archs)) == 300


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), name=st.sampled_from(SPACES), prob=st.floats(0, 1))
def test_round_trips_and_operators_stay_in_space(seed, name, prob):
    from nas import Arch

    space = load_space(name)
    rng = np.random.default_rng(seed)
    arch = space.sample(rng)
    assert Arch.from_json(arch.to_json()) == arch
    choices = space.encode(arch)
    assert list(choices) == list(space.dims)
    assert space.decode(choices) == arch
    child = space.mutate(arch, rng, prob)
    assert space.contains(child)
    mixed = space.crossover(arch, child, rng)
    assert space.contains(mixed)
    assert all(v in (space.encode(arch)[k], space.encode(child)[k]) for k, v in space.encode(mixed).items()
               if not k.startswith(tuple(f"s{i}.l" for i in range(10))))


def test_mutate_prob_zero_and_one():
    space = load_space("ofa_mbv3")
    rng = np.random.default_rng(1)
    arch = space.sample(rng)
    assert space.mutate(arch, rng, 0.0) == arch
    changed = [space.mutate(arch, rng, 1.0) != arch for _ in range(20)]
    assert sum(changed) >= 19


def test_validate_names_the_choice_out_of_range():
    from nas import Arch, BlockSpec

    space = load_space("ofa_mbv3")
    arch = space.preset("ofa_min")
    bad_stage = tuple(BlockSpec("mb", 9 if i == 0 else 3, 2 if i == 0 else 1, 24, 3, 0.0, i > 0, "relu")
                      for i in range(2))
    bad = Arch(arch.resolution, arch.stem, (arch.stages[0], bad_stage) + arch.stages[2:], arch.head)
    with pytest.raises(ArchError, match=r"stage 1 layer 0: kernel 9 is not one of \[3, 5, 7\]"):
        space.validate(bad)
    assert not space.contains(bad)
    with pytest.raises(ArchError, match=r"resolution 100 is not one of \[128, 160, 192, 224\]"):
        space.validate(Arch(100, arch.stem, arch.stages, arch.head))
    other = load_preset("mnasnet_b1")[1]
    with pytest.raises(ArchError, match="stem"):
        space.validate(other)


def test_decode_errors():
    space = load_space("ofa_mbv3")
    choices = space.encode(space.preset("ofa_max"))
    with pytest.raises(ArchError, match=r"s1.l0.kernel=4 is not one of \[3, 5, 7\]"):
        space.decode({**choices, "s1.l0.kernel": 4})
    with pytest.raises(ArchError, match=r"unknown choice\(s\) \['bogus'\]"):
        space.decode({**choices, "bogus": 1})


def test_restrict_for_progressive_shrinking():
    space = load_space("ofa_mbv3", resolutions=[32])
    full = space.restrict(kernel=[7], expand=[6], depth=[4])
    assert full.size() == 1
    assert full.sample(np.random.default_rng(0)) == space.preset("ofa_max")
    kernel = space.restrict(expand=[6], depth=[4])
    assert kernel.size() == 3 ** (4 * 5)
    with pytest.raises(SpaceError, match="leaves stage 1 no option"):
        space.restrict(kernel=[9])
    with pytest.raises(SpaceError, match="unknown attribute 'colour'"):
        space.restrict(colour=["red"])
    assert space.restrict(kernel=[3]).contains(space.preset("ofa_min"))


def test_all_block_keys_cover_every_sample():
    for name, res in (("ofa_mbv3", [32, 64]), ("mnasnet", [32])):
        space = load_space(name, resolutions=res)
        keys = set(space.all_block_keys())
        rng = np.random.default_rng(0)
        for _ in range(300):
            assert set(space.block_keys(space.sample(rng))) <= keys
    ofa = load_space("ofa_mbv3", resolutions=[224])
    assert len(ofa.all_block_keys()) == 93  # stem + fixed block + 5 stages x (9 first + 9 later) + head


def test_presets_are_points_and_overrides_apply():
    for preset, space_name in list_presets().items():
        space, arch = load_preset(preset)
        assert space.name == space_name and space.contains(arch)
    space, arch = load_preset("ofa_min", resolutions=[28], num_classes=10, in_channels=1)
    assert arch.resolution == 28 and space.num_classes == 10 and space.in_channels == 1
    assert load_space("ofa_mbv3", width_mult=1.2).stem.out_channels == 24


def test_preset_family_members_follow_the_recipe():
    space = load_space("ofa_mbv3", resolutions=[32])
    members = space.preset_family("mobilenetv2_style")
    assert len(members) == 9 and len(set(members)) == 9  # expand {3,4,6} x depth {2,3,4}
    for arch in members:
        assert space.contains(arch) and arch.resolution == 32
        blocks = [b for stage in arch.stages[1:] for b in stage]
        assert {b.kernel for b in blocks} == {3} and len({b.expand for b in blocks}) == 1
        assert len(set(arch.depths[1:])) == 1
    with pytest.raises(SpaceError, match="no preset family 'nope'; families: \\['mobilenetv2_style'\\]"):
        space.preset_family("nope")
    cfg = space.to_dict()
    cfg["preset_families"] = {"bad": {"fixed": {"colour": 3}, "scale": ["depth"]}}
    with pytest.raises(SpaceError, match="preset_families.bad: 'fixed' and 'scale' must name choices"):
        type(space)(cfg)


def test_loading_errors(tmp_path):
    with pytest.raises(SpaceError, match="unknown search space 'nope'; built-in spaces: mnasnet, ofa_mbv3"):
        load_space("nope")
    with pytest.raises(SpaceError, match="does not exist"):
        load_space(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nstages: [\n")
    with pytest.raises(SpaceError, match="malformed YAML"):
        load_space(bad)
    bad.write_text("name: x\nstem: {out_channels: 8}\nhead: {channels: 8}\nstages: []\ncolour: red\n")
    with pytest.raises(SpaceError, match=r"unknown key\(s\) \['colour'\]"):
        load_space(bad)
    with pytest.raises(SpaceError, match="unknown space parameter"):
        load_space("mnasnet", depth=3)
    with pytest.raises(SpaceError, match="unknown preset 'resnet50'"):
        load_preset("resnet50")


def test_custom_space_from_path(tmp_path):
    path = tmp_path / "tiny.yaml"
    path.write_text(
        "name: tiny\nnum_classes: 10\nin_channels: 1\nresolutions: [16]\n"
        "stem: {out_channels: 8, kernel: 3, stride: 2, act: relu}\nhead: {channels: 32}\n"
        "stages:\n  - {op: mb, width: 8, stride: 1, skip: true, choices: {kernel: [3, 5], expand: [2, 4], depth: [1, 2]}}\n")
    space = load_space(path)
    # depth 1: first layer 8->8 stride 1 can skip; 2 kernels x 2 expands, per stage shared
    assert space.size() == 4 + 4
    arch = space.sample(np.random.default_rng(0))
    assert arch.blocks[0].skip
