"""Descriptions of tasks and the text adapter: coverage of the ranges, disjoint held-out templates, the
adapter recovering parameters, opposite pairs, and bad input."""

import re

import pytest
import torch

from fewshot.rl.errors import RLError
from fewshot.rl.interpret import TextAdapter, read
from fewshot.rl.language import (
    FAMILIES,
    QUALITATIVE,
    TEMPLATE_WORDING,
    TEMPLATES,
    descriptions,
    opposite_pairs,
)
from fewshot.text.encoders import get_encoder

pytest.importorskip("sklearn", reason="the hashing encoder needs scikit-learn")

RANGES = {
    "pointnav": {"goal_x": (-0.5, 0.5), "goal_y": (-0.5, 0.5)},
    "cheetah-vel": {"velocity": (0.0, 2.0)},
    "cheetah-dir": {"direction": (-1.0, 1.0)},
}


@pytest.fixture(scope="module")
def adapters():
    return {f: TextAdapter(f, RANGES[f], get_encoder("hashing-512")).fit() for f in FAMILIES}


@pytest.mark.parametrize("family", FAMILIES)
def test_descriptions_cover_every_parameter_range(family):
    for split in ("train", "heldout"):
        ds = descriptions(family, split, 400, seed=1)
        assert {d.template for d in ds} == set(TEMPLATES[family][split])
        for name, (lo, hi) in RANGES[family].items():
            values = [d.params[name] for d in ds]
            assert all(lo <= v <= hi for v in values)
            span = hi - lo
            assert min(values) <= lo + 0.1 * span and max(values) >= hi - 0.1 * span, (split, name)


def _words(text: str) -> set[str]:
    return set(re.findall(r"[a-z]+", text.lower()))


@pytest.mark.parametrize("family", FAMILIES)
def test_heldout_shares_no_template_with_training(family):
    train, held = TEMPLATES[family]["train"], TEMPLATES[family]["heldout"]
    assert not set(train) & set(held)
    # no held-out sentence is one a training template makes, and fixed wordings are disjoint
    train_texts = {d.text for d in descriptions(family, "train", 2000, seed=2)}
    assert not train_texts & {d.text for d in descriptions(family, "heldout", 500, seed=3)}
    for t in held:
        if t in TEMPLATE_WORDING:
            assert not set(TEMPLATE_WORDING[t]) & {s for u in train for s in TEMPLATE_WORDING.get(u, [])}
    # held-out values are unseen where the family has more than two
    if family != "cheetah-dir":
        seen = {tuple(d.params.values()) for d in descriptions(family, "train", 2000, seed=2)
                if d.template not in QUALITATIVE}  # fmt: skip
        unseen = [tuple(d.params.values()) for d in descriptions(family, "heldout", 300, seed=3)
                  if d.template not in QUALITATIVE]  # fmt: skip
        assert not seen & set(unseen)


@pytest.mark.parametrize("family", FAMILIES)
def test_adapter_recovers_parameters_on_training_and_heldout_descriptions(family, adapters):
    adapter = adapters[family]
    half = torch.tensor([(hi - lo) / 2 for lo, hi in RANGES[family].values()])
    for split in ("train", "heldout"):
        ds = descriptions(family, split, 150, seed=7)
        z = adapter.predict([d.text for d in ds])
        truth = torch.tensor([adapter.scale(d.params) for d in ds])
        assert ((z - truth).abs() * half).max() < 0.01, split


@pytest.mark.parametrize("family", FAMILIES)
def test_opposite_pairs_map_to_opposite_parameters(family, adapters):
    adapter = adapters[family]
    for a, b in opposite_pairs(family, 30, seed=4):
        za, zb = adapter.predict([a.text, b.text])
        ta, tb = torch.tensor(adapter.scale(a.params)), torch.tensor(adapter.scale(b.params))
        k = int((ta - tb).abs().argmax())
        assert torch.sign(za[k] - zb[k]) == torch.sign(ta[k] - tb[k]), (a.text, b.text)
        if family != "cheetah-vel":  # a mirrored direction: opposite signs
            assert torch.sign(za[k]) == -torch.sign(zb[k]) != 0


def test_sentence_embeddings_alone_put_opposites_close():
    """Why the explicit reading: the sentence encoder barely separates opposite instructions."""
    try:
        enc = get_encoder("minilm")
        x = enc.encode(["go 0.3 metres to the left", "go 0.3 metres to the right", "the weather is nice today"])
    except Exception as e:  # noqa: BLE001 - the weights are an optional extra
        pytest.skip(f"minilm unavailable: {e}")
    assert float(x[0] @ x[1]) > 0.9 > float(x[0] @ x[2])
    assert read("go 0.3 metres to the left").slots["x"] == pytest.approx(-0.3)
    assert read("go 0.3 metres to the right").slots["x"] == pytest.approx(0.3)


@pytest.mark.parametrize(
    "family, text, params",
    [
        ("pointnav", "go to the top-left corner", {"goal_x": -0.5, "goal_y": 0.5}),
        ("pointnav", "Bitte: 20 cm nach links — i.e. 20 cm left, 0,1 m up ✓", {"goal_x": -0.2, "goal_y": 0.1}),
        ("cheetah-vel", "run backwards at about one and a half metres per second", {"velocity": 1.5}),
        ("cheetah-vel", "velocity → 1.4 m·s⁻¹", {"velocity": 1.4}),
        ("cheetah-dir", "retreat!", {"direction": -1.0}),
    ],
)
def test_interpretations_of_free_text(family, text, params, adapters):
    reading = adapters[family].interpret(text)
    assert reading.params == pytest.approx(params, abs=0.01)
    assert reading.understood
    if "backwards" in text:
        assert any("backward direction" in s for s in reading.ignored)


@pytest.mark.parametrize(
    "family, text, message",
    [
        ("pointnav", "", "the description is empty; say what to do"),
        ("pointnav", "   ", "the description is empty"),
        ("pointnav", "go left " * 100, "characters; at most 500 are read"),
        ("pointnav", "run at 1.5 m/s", r"reads as a cheetah-vel task .* trained on pointnav.* understood: speed 1.50"),
        ("pointnav", "please make me a sandwich", "no pointnav instruction recognised .* nothing was understood"),
        ("cheetah-vel", "go to the top-left corner", "reads as a pointnav task"),
        ("cheetah-dir", "the weather is nice today", "no cheetah-dir instruction recognised"),
        ("pointnav", "日本語のテキスト", "no pointnav instruction recognised"),
    ],
)
def test_bad_descriptions_say_what_was_understood(family, text, message, adapters):
    with pytest.raises(RLError, match=message):
        adapters[family].interpret(text)
