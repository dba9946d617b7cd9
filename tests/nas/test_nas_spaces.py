"""Search spaces: categorical (with conditions), both string formats, tables restricting moves."""

import numpy as np
import pytest
import yaml

from fewshot.nas import NASError
from fewshot.nas.spaces import cell_space, load_space_file, space_from_dict
from fewshot.nas.spaces.codecs import parse_cell_string
from fewshot.nas.spaces.tabular import infer_space

CONDITIONAL = {
    "name": "tiny",
    "positions": {
        "depth": [2, 3, 4],
        "op1": ["conv", "pool"],
        "op4": {"choices": ["conv", "pool", "skip"], "when": {"depth": [4]}},
    },
}


def test_categorical_space_from_yaml_with_conditions(tmp_path):
    path = tmp_path / "space.yaml"
    path.write_text(yaml.safe_dump(CONDITIONAL))
    space = load_space_file(path)
    assert space.size == 2 * 2 + 2 * 3 == len(space.all_architectures())  # depth 2/3: op4 inactive
    rng = np.random.default_rng(0)
    for _ in range(200):
        arch = space.sample(rng)
        child = space.mutate(arch, rng)
        assert space.contains(arch) and space.contains(child) and child != arch
        assert space.parse(space.to_string(child)) == child
    assert space.to_string(space.parse("depth=2,op1=pool")) == "depth=2,op1=pool"
    with pytest.raises(NASError, match="conditions"):
        space.parse("depth=2,op1=pool,op4=conv")  # op4 is inactive at depth 2
    with pytest.raises(NASError, match="not a choice"):
        space.parse("depth=5,op1=pool")


def test_bad_space_specs_are_named():
    with pytest.raises(NASError, match="earlier position"):
        space_from_dict({"positions": {"a": {"choices": [1], "when": {"b": [1]}}, "b": [1, 2]}})
    with pytest.raises(NASError, match="non-empty list"):
        space_from_dict({"positions": {"a": []}})


def test_choice_string_mutation_changes_exactly_one_position():
    space = infer_space(["0120", "2201", "1112"], "t")  # choices per position: {0,1,2}, {1,2}, {0,1,2}, {0,1,2}
    rng = np.random.default_rng(1)
    for _ in range(300):
        a = space.sample(rng)
        s, t = space.to_string(a), space.to_string(space.mutate(a, rng))
        assert len(t) == 4 and sum(x != y for x, y in zip(s, t)) == 1
        assert all(t[i] in space.positions[i].choices for i in range(4))
    assert len(space.neighbours(space.parse("0120"))) == 2 + 1 + 2 + 2


def test_cell_string_mutation_gives_valid_cell_strings():
    space = cell_space(["none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3"], nodes=3)
    assert space.size == 5**6
    rng = np.random.default_rng(2)
    for _ in range(300):
        a = space.sample(rng)
        s, t = space.to_string(a), space.to_string(space.mutate(a, rng))
        before, after = parse_cell_string(s), parse_cell_string(t)  # both parse as cell strings
        assert sum(x != y for x, y in zip(before, after)) == 1
        assert t.startswith("|") and t.endswith("|") and t.count("+") == 2
    text = "|nor_conv_3x3~0|+|none~0|skip_connect~1|+|avg_pool_3x3~0|nor_conv_1x1~1|nor_conv_3x3~2|"
    assert space.to_string(space.parse(text)) == text
    assert space.encode(space.parse(text)).sum() == 6 and space.encode(space.parse(text)).shape == (30,)


@pytest.mark.parametrize(
    "bad, why",
    [
        ("|nor_conv_3x3~0|+|none~0|skip_connect~2|+|a~0|b~1|c~2|", "should be op~1"),
        ("|nor_conv_3x3~0|+|none~0|+|a~0|b~1|c~2|", "2 incoming edges"),
        ("nor_conv_3x3~0|+|none~0|skip_connect~1|", "must look like"),
        ("|conv_7x7~0|+|none~0|none~1|+|none~0|none~1|none~2|", "not a choice"),
    ],
)
def test_bad_cell_strings_are_named(bad, why):
    space = cell_space(["none", "nor_conv_3x3"], nodes=3)
    with pytest.raises(NASError, match=why):
        space.parse(bad)


def test_crossover_stays_in_space():
    space = space_from_dict(CONDITIONAL)
    rng = np.random.default_rng(3)
    for _ in range(200):
        child = space.crossover(space.sample(rng), space.sample(rng), rng)
        assert space.contains(child)
