"""Numbers in English text, both ways: ``number_words(1.5) == "one and a half"`` and
``find_numbers("run at one and a half metres per second")`` -> ``[Number(1.5, start, end)]``.

Handles digits (``1.5``, ``-0.3``, ``.5``, ``3/4``, ``0,3``, Unicode minus and full-width digits after NFKC), cardinal
words up to the hundreds, ``point`` decimals (``zero point three five``), halves and quarters (``one and
a half``, ``three quarters``, ``a quarter``), tenths (``three tenths``) and a leading ``minus``/``negative``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

UNITS = "zero one two three four five six seven eight nine".split()
TEENS = "ten eleven twelve thirteen fourteen fifteen sixteen seventeen eighteen nineteen".split()
TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()
SMALL = {w: i for i, w in enumerate(UNITS)} | {w: 10 + i for i, w in enumerate(TEENS)}
SMALL |= {w: 10 * i for i, w in enumerate(TENS) if w != "_"} | {"oh": 0, "nought": 0, "naught": 0}
FRACTIONS = {"half": 0.5, "halves": 0.5, "quarter": 0.25, "quarters": 0.25, "tenth": 0.1, "tenths": 0.1}

_TOKEN = re.compile(
    r"(?P<num>(?<![\w.\-−])[-−]?(?:\d,\d+(?![,\d])|\d+(?:\.\d+)?|\.\d+)(?:/\d+)?(?!\d|\.\d))|[a-z]+|\S", re.IGNORECASE
)  # a number (decimal point, or a comma after one digit: "0,3"), a word, or one other character


@dataclass(frozen=True)
class Number:
    """A number found in a text: its value and the character span it came from."""

    value: float
    start: int
    end: int
    words: bool  # spelled out in words (not digits)


def _digits(token: str) -> float | None:
    token = token.replace("−", "-").replace(",", ".")
    try:
        if "/" in token:
            num, den = token.split("/")
            return float(num) / float(den) if float(den) else None
        return float(token)
    except ValueError:
        return None


def _integer(words: list[str], i: int) -> tuple[float, int] | None:
    """A cardinal at ``words[i:]`` (``twenty five``, ``one hundred and five``): (value, next index)."""
    if i >= len(words) or words[i] not in SMALL:
        if i < len(words) and words[i] in ("a", "one") and i + 1 < len(words) and words[i + 1] == "hundred":
            pass
        else:
            return None
    value, j = 0.0, i
    if words[j] in ("a",):  # "a hundred"
        value, j = 1.0, j + 1
    else:
        value, j = float(SMALL[words[j]]), j + 1
        if 20 <= value < 100 and value % 10 == 0:
            k = j + 1 if j + 1 < len(words) and words[j] == "-" else j  # "twenty-five"
            if k < len(words) and words[k] in UNITS[1:]:
                value, j = value + SMALL[words[k]], k + 1
    if j < len(words) and words[j] == "hundred":
        value, j = value * 100, j + 1
        if j + 1 < len(words) and words[j] == "and" and words[j + 1] in SMALL:
            rest = _integer(words, j + 1)
            if rest is not None:
                value, j = value + rest[0], rest[1]
    return value, j


def _spelled(words: list[str], i: int) -> tuple[float, int] | None:
    """A spelled-out number at ``words[i:]``: (value, next index), or None."""
    sign, j = 1.0, i
    if j < len(words) and words[j] in ("minus", "negative"):
        sign, j = -1.0, j + 1
    # bare fractions: "half", "a half", "a quarter", "three quarters", "three tenths"
    if j < len(words) and words[j] == "a" and j + 1 < len(words) and words[j + 1] in ("half", "quarter", "tenth"):
        return sign * FRACTIONS[words[j + 1]], j + 2
    if j < len(words) and words[j] == "half":
        return sign * 0.5, j + 1
    found = _integer(words, j)
    if found is None:
        return None
    value, j = found
    if j < len(words) and words[j] in ("quarters", "tenths", "quarter", "tenth") and value < 10:
        return sign * value * FRACTIONS[words[j]], j + 1
    if j + 1 < len(words) and words[j] == "point" and words[j + 1] in UNITS + ["oh", "nought"]:
        digits, j = "", j + 1
        while j < len(words) and words[j] in UNITS + ["oh", "nought"]:
            digits, j = digits + str(SMALL[words[j]]), j + 1
        value += float("0." + digits)
    elif j + 2 < len(words) and words[j] == "and" and words[j + 1] == "a" and words[j + 2] in ("half", "quarter"):
        value, j = value + FRACTIONS[words[j + 2]], j + 3
    elif j + 2 < len(words) and words[j] == "and" and words[j + 1] in SMALL and words[j + 2] == "quarters":
        value, j = value + SMALL[words[j + 1]] * 0.25, j + 3
    return sign * value, j


def find_numbers(text: str) -> list[Number]:
    """Every number in ``text``, in order, with its character span (digits and words)."""
    matches = list(_TOKEN.finditer(text))
    tokens = [(m.group(0), m.start(), m.end()) for m in matches]
    words = [t.lower() for t, _, _ in tokens]
    out: list[Number] = []
    i = 0
    while i < len(tokens):
        token, start, end = tokens[i]
        value = _digits(token) if matches[i].group("num") else None
        if value is not None:
            if i > 0 and words[i - 1] in ("minus", "negative") and value > 0:
                value, start = -value, tokens[i - 1][1]
            out.append(Number(value, start, end, False))
            i += 1
            continue
        spelled = _spelled(words, i)
        if spelled is not None and spelled[1] > i:
            out.append(Number(spelled[0], start, tokens[spelled[1] - 1][2], True))
            i = spelled[1]
            continue
        i += 1
    return out


def _cardinal(n: int) -> str:
    if n < 20:
        return (UNITS + TEENS)[n]
    if n < 100:
        return TENS[n // 10] + ("" if n % 10 == 0 else " " + UNITS[n % 10])
    rest = n % 100
    return f"{UNITS[n // 100]} hundred" + ("" if rest == 0 else f" and {_cardinal(rest)}")


def number_words(value: float, decimals: int = 2) -> str:
    """``value`` in words: halves and quarters as fractions (``one and a half``, ``three quarters``), other
    decimals with ``point`` (``zero point three five``), rounded to ``decimals`` places; below 1000."""
    value = round(float(value), decimals)
    if abs(value) >= 1000:
        raise ValueError(f"number_words handles |value| < 1000, got {value}")
    sign = "minus " if value < 0 else ""
    value = abs(value)
    whole, frac = int(value), round(value - int(value), decimals)
    if frac == 0:
        return sign + _cardinal(whole)
    quarters = {0.25: "a quarter", 0.5: "a half", 0.75: "three quarters"}
    if frac in quarters:
        if whole == 0:
            return sign + quarters[frac]
        return sign + f"{_cardinal(whole)} and {quarters[frac]}"
    digits = f"{frac:.{decimals}f}"[2:].rstrip("0")
    return sign + f"{_cardinal(whole)} point " + " ".join(UNITS[int(d)] for d in digits)
