"""From a sentence to task parameters: an explicit reading of numbers, units and direction words, plus a
sentence embedding, mapped to the parameters by a ridge regression fitted on the training descriptions.

Why both: sentence encoders place "go left" and "go right" (or "run fast" and "run slowly") almost on top
of each other (cosine > 0.9 with all-MiniLM-L6-v2), so a regression on the embedding alone cannot get
opposite instructions apart. ``read`` turns the text into slots that separate them: for each axis a
signed value (a number with its unit, converted to metres or m/s, and the sign of the direction word next
to it), whether one was stated, and the sign of a bare direction word (a corner); a qualitative speed
level; a forward/backward sign. The adapter learns how slots and embedding map to the family's
parameters (scaled to [-1, 1] as the conditioned policy sees them), and a family classifier on the same
features tells a description of another family's task (or of no task) apart.

The lexicon of direction and speed words is fixed here (a prior of the method, not learned); the
held-out descriptions test the learned part on sentence shapes, number formats, units and word orders
that no training description has.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from fewshot.rl.errors import RLError
from fewshot.rl.language import FAMILIES, Description, descriptions
from fewshot.text.encoders import Encoder, normalize_text
from fewshot.text.numbers import find_numbers

MAX_CHARS = 500
AXIS_WORDS: dict[str, dict[str, int]] = {
    "x": {w: 1 for w in "right rightward rightwards east eastward eastwards".split()}
    | {w: -1 for w in "left leftward leftwards west westward westwards".split()},
    "y": {w: 1 for w in "up upward upwards north northward northwards top upper above".split()}
    | {w: -1 for w in "down downward downwards south southward southwards bottom lower below".split()},
    "forward": {w: 1 for w in "forward forwards ahead front frontward frontwards onward onwards".split()}
    | {w: -1 for w in "backward backwards back reverse rear behind retreat".split()},
}
LEVEL_WORDS: dict[str, tuple[str, ...]] = {
    "max": ("as fast as", "full speed", "top speed", "maximum speed", "max speed", "flat out"),
    "still": ("still", "stationary", "stop", "halt", "motionless", "budge"),
    "slow": ("slow", "slowly", "gently", "gentle", "leisurely", "amble", "stroll", "crawl", "unhurried"),
    "moderate": ("moderate", "medium", "average", "steady", "jog"),
    "fast": ("fast", "quickly", "quick", "rapidly", "swiftly", "hurry", "dash", "briskly"),
}
LEVELS = tuple(LEVEL_WORDS)
_SPEED_UNIT = re.compile(
    r"^\s*(?:(m/s|m\s*·?\s*s\s*[-−]\s*1|met(?:re|er)s?\s+(?:per|a|each)\s+second)"
    r"|(km/h|kmh|kph|kilomet(?:re|er)s?\s+(?:per|an|a)\s+hour)|(cm/s|centimet(?:re|er)s?\s+(?:per|a)\s+second))"
)
_LENGTH_UNIT = re.compile(r"^\s*(?:(cm|centimet(?:re|er)s?)|(mm|millimet(?:re|er)s?)|(m|met(?:re|er)s?))\b")
_LABEL = re.compile(r"\b([xy])\s*[=:]?\s*$")
_WORD = re.compile(r"[a-z]+")
SLOTS = (
    "x", "x_stated", "x_sign", "y", "y_stated", "y_sign", "speed", "speed_stated", *LEVELS, "forward_sign",
)  # fmt: skip
FAMILY_SLOTS = {
    "pointnav": ("x_stated", "x_sign", "y_stated", "y_sign"),
    "cheetah-vel": ("speed_stated", *LEVELS),
    "cheetah-dir": ("forward_sign",),
}
NONE_TEXTS = (
    "the weather is nice today", "hello there", "please make me a sandwich", "what time is it",
    "tell me a joke", "I like green apples", "translate this into French", "open the window",
    "the meeting is on Tuesday", "good morning", "turn on the lights", "play some music",
    "who won the match", "paint the fence blue", "how are you", "lorem ipsum dolor sit amet",
)  # fmt: skip


@dataclass
class Reading:
    """What ``read`` understood: the slot values and, for the messages, the phrases behind them."""

    slots: dict[str, float] = field(default_factory=lambda: dict.fromkeys(SLOTS, 0.0))
    understood: list[str] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)

    def vector(self) -> Tensor:
        return torch.tensor([self.slots[s] for s in SLOTS], dtype=torch.float32)

    def cues(self, family: str) -> bool:
        """Whether anything was read that ``family``'s parameters can take."""
        return any(self.slots[s] != 0 for s in FAMILY_SLOTS[family])


def _direction_after(window: str) -> tuple[str, int, str] | None:
    """The first direction word in ``window``: (axis, sign, word)."""
    for word in _WORD.findall(window):
        for axis in ("x", "y", "forward"):
            if word in AXIS_WORDS[axis]:
                return axis, AXIS_WORDS[axis][word], word
    return None


def read(text: str) -> Reading:
    """Slots of ``text`` (see the module's doc): numbers with units and directions, levels, signs."""
    text = normalize_text(text).lower()
    out = Reading()
    numbers = find_numbers(text)
    bare: list[float] = []
    ignored: list[str] = []
    used_words: set[int] = set()  # character offsets of direction words tied to a number
    for i, number in enumerate(numbers):
        end = numbers[i + 1].start if i + 1 < len(numbers) else len(text)
        window = text[number.end : end]
        phrase = text[number.start : number.end]
        speed = _SPEED_UNIT.match(window)
        if speed:
            scale = 1.0 if speed.group(1) else (1 / 3.6 if speed.group(2) else 0.01)
            out.slots["speed"], out.slots["speed_stated"] = number.value * scale, 1.0
            out.understood.append(f"speed {number.value * scale:.2f} m/s from {phrase + speed.group(0)!r}")
            continue
        length = _LENGTH_UNIT.match(window)
        scale = 0.01 if length and length.group(1) else (0.001 if length and length.group(2) else 1.0)
        label = _LABEL.search(text[: number.start])
        direction = _direction_after(window[: 40 if length is None else length.end() + 30])
        if label and not direction:
            axis = label.group(1)
            out.slots[axis], out.slots[f"{axis}_stated"] = number.value * scale, 1.0
            out.understood.append(f"{axis} = {number.value * scale:.2f} from {label.group(0) + phrase!r}")
        elif direction and direction[0] in ("x", "y"):
            axis, sign, word = direction
            out.slots[axis], out.slots[f"{axis}_stated"] = sign * abs(number.value) * scale, 1.0
            used_words.add(number.end + window.index(word))
            out.understood.append(f"{axis} {sign * abs(number.value) * scale:+.2f} m from {phrase!r} ... {word!r}")
        else:
            bare.append(number.value * scale)
            ignored.append(phrase)
    if len(bare) >= 2 and not (out.slots["x_stated"] or out.slots["y_stated"] or out.slots["speed_stated"]):
        out.slots["x"], out.slots["y"], out.slots["x_stated"], out.slots["y_stated"] = bare[0], bare[1], 1, 1
        out.understood.append(f"coordinates ({bare[0]:.2f}, {bare[1]:.2f})")  # "(0.3, -0.2)": in order
        ignored = []
    out.ignored += [f"the number {p!r} (not tied to a direction word or a speed unit)" for p in ignored]
    for m in _WORD.finditer(text):
        word = m.group(0)
        for axis in ("x", "y", "forward"):
            found = AXIS_WORDS[axis].get(word)
            if found is not None and m.start() not in used_words:
                key = f"{axis}_sign"
                if axis == "forward" or not out.slots[f"{axis}_stated"]:
                    out.slots[key] = float(found)
                    out.understood.append(f"direction {word!r}")
    level = next((lv for lv, words in LEVEL_WORDS.items() if any(_has(text, w) for w in words)), None)
    if level is not None:
        out.slots[level] = 1.0
        out.understood.append(f"speed level {level!r}")
    return out


def _has(text: str, phrase: str) -> bool:
    return re.search(rf"\b{re.escape(phrase)}\b", text) is not None


def _ridge(x: Tensor, y: Tensor, lam: Tensor) -> Tensor:
    """Ridge regression with a per-feature penalty ``lam`` [F] and an unpenalised bias: weights [F + 1, K]."""
    x1 = torch.cat([x, torch.ones(len(x), 1)], 1).double()  # [N, F + 1]
    penalty = torch.diag(torch.cat([lam, torch.zeros(1)]).double())
    return torch.linalg.solve(x1.T @ x1 + penalty, x1.T @ y.double()).float()


def _apply(x: Tensor, w: Tensor) -> Tensor:
    return torch.cat([x, torch.ones(len(x), 1)], 1) @ w


@dataclass
class Interpretation:
    """The parameters read from one description, and what was understood."""

    text: str
    family: str
    params: dict[str, float]
    features: list[float]  # scaled to [-1, 1]: what the conditioned policy sees
    understood: list[str]
    family_scores: dict[str, float]
    assumed: list[str] = field(default_factory=list)  # parameters the text did not state, and their value
    ignored: list[str] = field(default_factory=list)  # what was read but not used

    def to_dict(self) -> dict[str, Any]:
        return {
            "description": self.text,
            "family": self.family,
            "params": self.params,
            "understood": self.understood,
            "assumed": self.assumed,
            "ignored": self.ignored,
            "family_scores": self.family_scores,
        }


class TextAdapter:
    """Maps a description to a family's task parameters (``fit`` on the training descriptions; then
    ``interpret``). ``ranges``: each parameter's (low, high) in the family's order."""

    def __init__(
        self, family: str, ranges: dict[str, tuple[float, float]], encoder: Encoder, embed_penalty: float = 1.0
    ) -> None:
        if family not in FAMILIES:
            raise RLError(f"no descriptions for family {family!r}; zero-shot from text covers {', '.join(FAMILIES)}")
        self.family, self.ranges, self.encoder = family, dict(ranges), encoder
        self.embed_penalty = embed_penalty
        self.weights: Tensor | None = None  # [F + 1, P]
        self.classifier: Tensor | None = None  # [F + 1, C]
        self.classes = (*FAMILIES, "none")

    # --- features ---------------------------------------------------------------------------------------
    def features(self, texts: list[str]) -> tuple[Tensor, list[Reading]]:
        readings = [read(t) for t in texts]
        slots = torch.stack([r.vector() for r in readings])  # [N, S]
        return torch.cat([slots, self.encoder.encode(texts)], 1), readings  # [N, S + d]

    def _penalty(self, slots: float) -> Tensor:
        return torch.cat([torch.full((len(SLOTS),), slots), torch.full((self.encoder.dim,), self.embed_penalty)])

    def scale(self, params: dict[str, float]) -> list[float]:
        return [(params[k] - (lo + hi) / 2) / ((hi - lo) / 2 or 1.0) for k, (lo, hi) in self.ranges.items()]

    def unscale(self, z: list[float]) -> dict[str, float]:
        return {k: (lo + hi) / 2 + v * (hi - lo) / 2 for v, (k, (lo, hi)) in zip(z, self.ranges.items())}

    # --- fitting ----------------------------------------------------------------------------------------
    def fit(self, train: list[Description] | None = None, seed: int = 0) -> TextAdapter:
        """Fit the parameter regression on ``train`` (default: 600 training descriptions of the family) and
        the family classifier on training descriptions of every family plus sentences about nothing."""
        train = train or descriptions(self.family, "train", 600, seed)
        x, _ = self.features([d.text for d in train])
        y = torch.tensor([self.scale(d.params) for d in train])  # [N, P]
        self.weights = _ridge(x, y, self._penalty(1e-3))
        pool = [d.text for f in FAMILIES for d in descriptions(f, "train", 60, seed)] + list(NONE_TEXTS) * 4
        labels = [self.classes.index(f) for f in FAMILIES for _ in range(60)] + [len(FAMILIES)] * len(NONE_TEXTS) * 4
        xc, _ = self.features(pool)
        targets = torch.nn.functional.one_hot(torch.tensor(labels), len(self.classes)).float()
        self.classifier = _ridge(xc, targets, self._penalty(1e-2))
        return self

    def predict(self, texts: list[str]) -> Tensor:
        """Scaled parameters [N, P] in [-1, 1] (directions snapped to their sign)."""
        if self.weights is None:
            raise RLError("the text adapter is not fitted")
        x, _ = self.features(texts)
        z = _apply(x, self.weights).clamp(-1, 1)
        if self.family == "cheetah-dir":
            z = torch.where(z >= 0, 1.0, -1.0)
        return z

    # --- interpreting one description, with the checks -------------------------------------------------
    def interpret(self, text: str) -> Interpretation:
        """The task a description asks for, or one ``RLError`` saying what was understood (or that nothing
        was): an empty or too long text, another family's task, no instruction this family can take."""
        if not isinstance(text, str) or not normalize_text(text):
            raise RLError("the description is empty; say what to do, e.g. " + _EXAMPLES[self.family])
        if len(text) > MAX_CHARS:
            raise RLError(f"the description has {len(text)} characters; at most {MAX_CHARS} are read")
        if self.weights is None or self.classifier is None:
            raise RLError("the text adapter is not fitted")
        x, (reading,) = self.features([text])
        scores = _apply(x, self.classifier)[0]
        family_scores = {c: round(float(s), 3) for c, s in zip(self.classes, scores)}
        best = self.classes[int(scores.argmax())]
        said = "; understood: " + ", ".join(reading.understood) if reading.understood else ""
        if not reading.cues(self.family):
            others = [f for f in FAMILIES if f != self.family and reading.cues(f)]
            if others:
                raise RLError(
                    f"this reads as a {others[0]} task ({_WHAT[others[0]]}), but the policy was trained on "
                    f"{self.family} ({_WHAT[self.family]}){said}"
                )
            near = f" (the sentence is closest to {best} descriptions)" if best not in (self.family, "none") else ""
            raise RLError(
                f"no {self.family} instruction recognised in {text!r} ({_WHAT[self.family]} expected, e.g. "
                f"{_EXAMPLES[self.family]}){said or '; nothing was understood'}{near}"
            )
        z = self.predict([text])[0].tolist()
        params = {k: round(v, 4) for k, v in self.unscale(z).items()}
        assumed = []
        if self.family == "pointnav":
            for axis, name in (("x", "goal_x"), ("y", "goal_y")):
                if not (reading.slots[f"{axis}_stated"] or reading.slots[f"{axis}_sign"]):
                    assumed.append(f"{name} not stated; taken as {params[name]:.2f}")
        ignored = list(reading.ignored)
        if self.family == "cheetah-vel" and reading.slots["forward_sign"] < 0:
            ignored.append("the backward direction (cheetah-vel tasks are forward speeds in [0, 2] m/s)")
        return Interpretation(text, self.family, params, z, reading.understood, family_scores, assumed, ignored)

    # --- saving -----------------------------------------------------------------------------------------
    def state(self) -> tuple[dict[str, Tensor], dict[str, Any]]:
        if self.weights is None or self.classifier is None:
            raise RLError("the text adapter is not fitted")
        meta = {"family": self.family, "ranges": self.ranges, "encoder": self.encoder.name, "slots": list(SLOTS)}
        return {"weights": self.weights, "classifier": self.classifier}, meta


_WHAT = {
    "pointnav": "a goal (x, y) in metres",
    "cheetah-vel": "a forward speed in m/s",
    "cheetah-dir": "a direction, forward or backward",
}
_EXAMPLES = {
    "pointnav": "'go 0.3 m to the right and 0.2 m up' or 'go to the top-left corner'",
    "cheetah-vel": "'run at 1.5 m/s' or 'run fast'",
    "cheetah-dir": "'run forward' or 'run backward'",
}
