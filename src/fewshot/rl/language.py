"""Descriptions of tasks in English, generated from task parameters, with held-out splits.

Each family (``pointnav``: goal (x, y) in [-0.5, 0.5]^2, x to the right and y up; ``cheetah-vel``: target
velocity in [0, 2] m/s; ``cheetah-dir``: +1 forward, -1 backward) has two disjoint sets of templates,
``train`` and ``heldout``: no template (and no template's wording) is shared, which a test checks. The
templates mix digits and number words (``number_words``), units (m, cm, km/h, m/s, "metres per second",
"meters a second"), direction words (right/left, east/west, up/down, north/south, forward/backward) and
qualitative words (corners, "run fast", "go slowly").

Parameter values: ``train`` draws from a lattice (pointnav goals on multiples of 0.1, velocities on
multiples of 0.25: values that are easy to say), ``heldout`` from values off it (goals on odd multiples of
0.05, velocities with two decimals that are not multiples of 0.25), so held-out values are unseen.
Qualitative templates (a corner, "fast") give the value they name in both splits. The parameters recorded
with a description are the ones its text states (after rounding to what the text says).

``opposite_pairs`` gives pairs of held-out descriptions that differ only in one direction or speed word
(left/right, up/down, forward/backward, fast/slow) and whose parameters differ in sign (or in speed).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field

from fewshot.rl.errors import RLError
from fewshot.text.numbers import number_words

FAMILIES = ("pointnav", "cheetah-vel", "cheetah-dir")
SPLITS = ("train", "heldout")
GOAL_RANGE, MAX_VELOCITY = 0.5, 2.0
# qualitative speeds (m/s) and how each split says them
SPEED_LEVELS = {"still": 0.0, "slow": 0.5, "moderate": 1.0, "fast": 1.75, "max": 2.0}


@dataclass(frozen=True)
class Description:
    """A sentence, the family and parameters it describes, the template that made it, and (for an opposite
    pair) the pair's id."""

    text: str
    family: str
    params: dict[str, float] = field(default_factory=dict)
    template: str = ""
    pair: str | None = None


Params = dict[str, float]
Template = Callable[[Params, random.Random], tuple[str, Params]]


# --- formatting helpers ----------------------------------------------------------------------------------
def _num(value: float, rng: random.Random, words: bool | None = None, decimals: int = 2) -> str:
    """``value`` as digits or words (``words=None``: either, at random)."""
    words = rng.random() < 0.5 if words is None else words
    if words:
        return number_words(value, decimals)
    text = f"{value:.{decimals}f}".rstrip("0").rstrip(".")
    return text if text not in ("-0", "") else "0"


def _side(value: float, positive: str, negative: str) -> str:
    return positive if value >= 0 else negative


# --- point navigation --------------------------------------------------------------------------------------
def _pn_coords_parens(p: Params, rng: random.Random) -> tuple[str, Params]:
    verb = rng.choice(["go to", "move to", "navigate to"])
    return f"{verb} ({_num(p['goal_x'], rng, False)}, {_num(p['goal_y'], rng, False)})", p


def _pn_coords_named(p: Params, rng: random.Random) -> tuple[str, Params]:
    verb = rng.choice(["move to", "go to", "reach"])
    return f"{verb} x = {_num(p['goal_x'], rng, False)}, y = {_num(p['goal_y'], rng, False)}", p


def _pn_relative_m(p: Params, rng: random.Random) -> tuple[str, Params]:
    x, y = p["goal_x"], p["goal_y"]
    unit = rng.choice(["m", "metres", "meters"])
    verb = rng.choice(["walk", "go", "move"])
    return (
        f"{verb} {_num(abs(x), rng)} {unit} to the {_side(x, 'right', 'left')} "
        f"and {_num(abs(y), rng)} {unit} {_side(y, 'up', 'down')}"
    ), p


def _pn_compass_words(p: Params, rng: random.Random) -> tuple[str, Params]:
    x, y = p["goal_x"], p["goal_y"]
    return (
        f"head {_num(abs(x), rng, True)} metres {_side(x, 'east', 'west')} "
        f"and {_num(abs(y), rng, True)} metres {_side(y, 'north', 'south')}"
    ), p


def _pn_y_first(p: Params, rng: random.Random) -> tuple[str, Params]:
    x, y = p["goal_x"], p["goal_y"]
    return (
        f"the goal is {_num(abs(y), rng, False)} m {_side(y, 'up', 'down')}, "
        f"{_num(abs(x), rng, False)} m {_side(x, 'right', 'left')}"
    ), p


def _pn_centimetres(p: Params, rng: random.Random) -> tuple[str, Params]:
    x, y = p["goal_x"], p["goal_y"]
    cx, cy = round(abs(x) * 100), round(abs(y) * 100)
    return (
        f"go {_num(cx, rng, False)} centimetres {_side(x, 'right', 'left')} "
        f"and {_num(cy, rng, False)} centimetres {_side(y, 'up', 'down')}"
    ), p


_CORNERS = {(-1, 1): "top-left", (1, 1): "top-right", (-1, -1): "bottom-left", (1, -1): "bottom-right"}
_CORNERS_HELDOUT = {(-1, 1): "upper left", (1, 1): "upper right", (-1, -1): "lower left", (1, -1): "lower right"}


def _corner(p: Params) -> tuple[int, int]:
    return (1 if p["goal_x"] >= 0 else -1, 1 if p["goal_y"] >= 0 else -1)


def _corner_params(sx: int, sy: int) -> Params:
    return {"goal_x": sx * GOAL_RANGE, "goal_y": sy * GOAL_RANGE}


def _pn_corner(p: Params, rng: random.Random) -> tuple[str, Params]:
    sx, sy = _corner(p)
    verb = rng.choice(["go to", "move to"])
    return f"{verb} the {_CORNERS[(sx, sy)]} corner", _corner_params(sx, sy)


# held-out point navigation: other sentence shapes, other words, other unit spellings
def _pn_h_brackets(p: Params, rng: random.Random) -> tuple[str, Params]:
    return f"please reach coordinates [{_num(p['goal_x'], rng, False)}; {_num(p['goal_y'], rng, False)}]", p


def _pn_h_compass_y_first(p: Params, rng: random.Random) -> tuple[str, Params]:
    x, y = p["goal_x"], p["goal_y"]
    return (
        f"I need you {_num(abs(y), rng, True)} meters {_side(y, 'northward', 'southward')}, "
        f"then {_num(abs(x), rng, True)} meters {_side(x, 'eastward', 'westward')}"
    ), p


def _pn_h_cm_wards(p: Params, rng: random.Random) -> tuple[str, Params]:
    x, y = p["goal_x"], p["goal_y"]
    cx, cy = round(abs(x) * 100), round(abs(y) * 100)
    return (f"target: {cx} cm {_side(x, 'rightwards', 'leftwards')}, {cy} cm {_side(y, 'upwards', 'downwards')}"), p


def _pn_h_offset(p: Params, rng: random.Random) -> tuple[str, Params]:
    x, y = p["goal_x"], p["goal_y"]
    return (
        f"travel {_num(abs(x), rng, False)}m {_side(x, 'right', 'left')} plus {_num(abs(y), rng, False)}m "
        f"{_side(y, 'up', 'down')} from where you start"
    ), p


def _pn_h_corner(p: Params, rng: random.Random) -> tuple[str, Params]:
    sx, sy = _corner(p)
    return f"make your way into the {_CORNERS_HELDOUT[(sx, sy)]} corner", _corner_params(sx, sy)


# --- HalfCheetah velocity ----------------------------------------------------------------------------------
def _v_ms(p: Params, rng: random.Random) -> tuple[str, Params]:
    verb = rng.choice(["run at", "move at", "go at"])
    return f"{verb} {_num(p['velocity'], rng, False)} m/s", p


def _v_words(p: Params, rng: random.Random) -> tuple[str, Params]:
    return f"run forward at {_num(p['velocity'], rng, True)} metres per second", p


def _v_keep(p: Params, rng: random.Random) -> tuple[str, Params]:
    return f"keep a speed of {_num(p['velocity'], rng, False)} metres per second", p


def _v_kmh(p: Params, rng: random.Random) -> tuple[str, Params]:
    kmh = round(p["velocity"] * 3.6, 1)
    return f"run at {_num(kmh, rng, False, 1)} km/h", {"velocity": min(kmh / 3.6, MAX_VELOCITY)}


_SPEED_TRAIN = {
    "still": ["stand still", "stay still"],
    "slow": ["go slowly", "walk slowly", "move at a slow pace"],
    "moderate": ["run at a moderate speed", "go at a medium pace"],
    "fast": ["run fast", "go quickly", "move fast"],
    "max": ["run as fast as you can", "go at full speed"],
}
_SPEED_HELDOUT = {
    "still": ["do not budge, remain stationary"],
    "slow": ["amble along leisurely", "please proceed gently"],
    "moderate": ["jog at an average pace"],
    "fast": ["hurry, rapidly", "dash swiftly"],
    "max": ["sprint at top speed", "give it maximum speed"],
}


def _speed_template(table: dict[str, list[str]]) -> Template:
    def make(p: Params, rng: random.Random) -> tuple[str, Params]:
        level = min(SPEED_LEVELS, key=lambda k: abs(SPEED_LEVELS[k] - p["velocity"]))
        return rng.choice(table[level]), {"velocity": SPEED_LEVELS[level]}

    return make


def _v_h_meters_a_second(p: Params, rng: random.Random) -> tuple[str, Params]:
    return f"sprint at {_num(p['velocity'], rng, True)} meters a second", p


def _v_h_unicode(p: Params, rng: random.Random) -> tuple[str, Params]:
    return f"velocity → {_num(p['velocity'], rng, False)} m·s⁻¹", p


def _v_h_cms(p: Params, rng: random.Random) -> tuple[str, Params]:
    cms = round(p["velocity"] * 100)
    return f"your target pace is {cms} cm/s", {"velocity": cms / 100}


def _v_h_kph(p: Params, rng: random.Random) -> tuple[str, Params]:
    kmh = round(p["velocity"] * 3.6, 1)
    if abs(kmh / 0.9 - round(kmh / 0.9)) < 1e-6:  # a multiple of 0.25 m/s: a training value; keep it unseen
        kmh = round(kmh + (0.1 if kmh < 7.2 else -0.1), 1)
    return f"cruise along at {_num(kmh, rng, False, 1)} kilometres per hour", {"velocity": min(kmh / 3.6, MAX_VELOCITY)}


# --- HalfCheetah direction ---------------------------------------------------------------------------------
def _dir_template(forward: list[str], backward: list[str]) -> Template:
    def make(p: Params, rng: random.Random) -> tuple[str, Params]:
        return rng.choice(forward if p["direction"] > 0 else backward), p

    return make


_DIR_TRAIN = ("run forward", "go forwards", "move ahead"), ("run backward", "go backwards", "move in reverse")
_DIR_HELDOUT = ("sprint frontwards, please", "charge to the front"), ("back up, please", "retreat toward the rear")


TEMPLATES: dict[str, dict[str, dict[str, Template]]] = {
    "pointnav": {
        "train": {
            "pn-parens": _pn_coords_parens,
            "pn-xy": _pn_coords_named,
            "pn-relative": _pn_relative_m,
            "pn-compass": _pn_compass_words,
            "pn-y-first": _pn_y_first,
            "pn-cm": _pn_centimetres,
            "pn-corner": _pn_corner,
        },
        "heldout": {
            "pn-h-brackets": _pn_h_brackets,
            "pn-h-compass-y-first": _pn_h_compass_y_first,
            "pn-h-cm-wards": _pn_h_cm_wards,
            "pn-h-offset": _pn_h_offset,
            "pn-h-corner": _pn_h_corner,
        },
    },
    "cheetah-vel": {
        "train": {
            "vel-ms": _v_ms,
            "vel-words": _v_words,
            "vel-keep": _v_keep,
            "vel-kmh": _v_kmh,
            "vel-level": _speed_template(_SPEED_TRAIN),
        },
        "heldout": {
            "vel-h-meters-a-second": _v_h_meters_a_second,
            "vel-h-unicode": _v_h_unicode,
            "vel-h-cms": _v_h_cms,
            "vel-h-kph": _v_h_kph,
            "vel-h-level": _speed_template(_SPEED_HELDOUT),
        },
    },
    "cheetah-dir": {
        "train": {"dir": _dir_template(*map(list, _DIR_TRAIN))},
        "heldout": {"dir-h": _dir_template(*map(list, _DIR_HELDOUT))},
    },
}
QUALITATIVE = {"pn-corner", "pn-h-corner", "vel-level", "vel-h-level"}
TEMPLATE_WORDING: dict[str, list[str]] = {  # the fixed phrases of the templates whose wording is a list
    "vel-level": [s for v in _SPEED_TRAIN.values() for s in v],
    "vel-h-level": [s for v in _SPEED_HELDOUT.values() for s in v],
    "dir": [*_DIR_TRAIN[0], *_DIR_TRAIN[1]],
    "dir-h": [*_DIR_HELDOUT[0], *_DIR_HELDOUT[1]],
}


def _check(family: str, split: str) -> None:
    if family not in TEMPLATES:
        raise RLError(f"no descriptions for family {family!r}; valid: {', '.join(TEMPLATES)}")
    if split not in SPLITS:
        raise RLError(f"split must be one of {SPLITS}, got {split!r}")


def draw_params(family: str, split: str, rng: random.Random) -> Params:
    """Parameters of ``split``: on the easy-to-say lattice (train) or off it (heldout)."""
    _check(family, split)
    if family == "pointnav":
        if split == "train":
            return {k: rng.randint(-5, 5) / 10 for k in ("goal_x", "goal_y")}
        return {k: rng.choice([-1, 1]) * rng.choice([5, 15, 25, 35, 45]) / 100 for k in ("goal_x", "goal_y")}
    if family == "cheetah-vel":
        if split == "train":
            return {"velocity": rng.randint(0, 8) / 4}
        while True:
            v = rng.randint(1, 199) / 100
            if v % 0.25:
                return {"velocity": v}
    return {"direction": rng.choice([-1.0, 1.0])}


def describe(family: str, params: Params, template: str, rng: random.Random | None = None) -> Description:
    """One description of ``params`` by ``template`` (its parameters: those the text states)."""
    rng = rng or random.Random(0)
    for split in SPLITS:
        if template in TEMPLATES.get(family, {}).get(split, {}):
            text, stated = TEMPLATES[family][split][template](dict(params), rng)
            stated = {k: round(float(v), 6) for k, v in stated.items()}
            return Description(text, family, stated, template)
    raise RLError(f"no template {template!r} for family {family!r}")


def descriptions(family: str, split: str, n: int, seed: int = 0, qualitative: bool = True) -> list[Description]:
    """``n`` descriptions of ``split``: templates taken in turn, parameters drawn for the split."""
    _check(family, split)
    rng = random.Random(f"{family}/{split}/{seed}")
    names = [t for t in TEMPLATES[family][split] if qualitative or t not in QUALITATIVE]
    return [describe(family, draw_params(family, split, rng), names[i % len(names)], rng) for i in range(n)]


_FLIPS = {"pointnav": ("goal_x", "goal_y"), "cheetah-dir": ("direction",)}


def opposite_pairs(family: str, n: int, seed: int = 0) -> list[tuple[Description, Description]]:
    """``n`` pairs of held-out descriptions with the same template and magnitudes and opposite direction
    words in one parameter (pointnav: x or y; cheetah-dir: the direction) or, for cheetah-vel, fast against
    slow. Each pair's id names the words that differ."""
    _check(family, "heldout")
    rng = random.Random(f"{family}/pairs/{seed}")
    out: list[tuple[Description, Description]] = []
    numeric = [t for t in TEMPLATES[family]["heldout"] if t not in QUALITATIVE and t != "pn-h-brackets"]
    for i in range(n):
        if family == "cheetah-vel":
            template = "vel-h-level"
            a = describe(family, {"velocity": SPEED_LEVELS["fast"]}, template, rng)
            b = describe(family, {"velocity": SPEED_LEVELS["slow"]}, template, rng)
            pair = "fast/slow"
        else:
            template = numeric[i % len(numeric)]
            params = draw_params(family, "heldout", rng)
            key = _FLIPS[family][i % len(_FLIPS[family])]
            params[key] = abs(params[key])
            flipped = {**params, key: -params[key]}
            state = rng.getstate()
            a = describe(family, params, template, rng)
            rng.setstate(state)  # the same number formats for both
            b = describe(family, flipped, template, rng)
            pair = {"goal_x": "right/left", "goal_y": "up/down", "direction": "forward/backward"}[key]
        out.append((_with_pair(a, f"{pair}#{i}"), _with_pair(b, f"{pair}#{i}")))
    return out


def _with_pair(d: Description, pair: str) -> Description:
    return Description(d.text, d.family, d.params, d.template, pair)


# Free text: sentences written by hand, not by any template, with the parameters a person would mean. Some
# use words or constructions the reading does not know ("halfway", "middle", another language); they
# measure how the method meets text it was not built around (benchmarks/rl_zeroshot.py reports them apart).
FREE_TEXT: dict[str, list[tuple[str, Params]]] = {
    "pointnav": [
        ("could you head over to the upper-right area, right in the corner", {"goal_x": 0.5, "goal_y": 0.5}),
        ("The goal sits at x=0.2 and y=0.4.", {"goal_x": 0.2, "goal_y": 0.4}),
        ("navigate 45 centimeters south", {"goal_x": 0.0, "goal_y": -0.45}),
        ("walk to the bottom edge", {"goal_x": 0.0, "goal_y": -0.5}),
        ("go down and to the left, all the way into the corner", {"goal_x": -0.5, "goal_y": -0.5}),
        ("Move 10 cm east, then 30 cm north.", {"goal_x": 0.1, "goal_y": 0.3}),
        ("aim two tenths of a metre left of the start and one tenth above it", {"goal_x": -0.2, "goal_y": 0.1}),
        ("target (−0.25, 0.4) please", {"goal_x": -0.25, "goal_y": 0.4}),
        ("stay where you are, at the middle", {"goal_x": 0.0, "goal_y": 0.0}),
        ("go halfway to the right edge", {"goal_x": 0.25, "goal_y": 0.0}),
        ("ve 0,3 m a la derecha", {"goal_x": 0.3, "goal_y": 0.0}),
        ("head northeast, 0.3 m each way", {"goal_x": 0.3, "goal_y": 0.3}),
    ],
    "cheetah-vel": [
        ("run at roughly 1.2 metres per second", {"velocity": 1.2}),
        ("keep it to a slow jog", {"velocity": 0.5}),
        ("go flat out", {"velocity": 2.0}),
        ("trot along at 90 cm/s", {"velocity": 0.9}),
        ("speed: 6 km/h", {"velocity": 6 / 3.6}),
        ("don't move", {"velocity": 0.0}),
        ("run at half your top speed", {"velocity": 1.0}),
        ("corre a 1,5 m/s", {"velocity": 1.5}),
    ],
    "cheetah-dir": [
        ("go the other way, backwards", {"direction": -1.0}),
        ("head to the front", {"direction": 1.0}),
        ("move towards your tail", {"direction": -1.0}),
        ("run ahead as you normally would", {"direction": 1.0}),
    ],
}
