"""Offline text encoders and numbers in English (generic: imports nothing from the application packages).

``get_encoder(name).encode(texts) -> Tensor [n, d]`` with ``name`` in ``ENCODERS`` (``hashing-512``,
``hashing-2048``, ``minilm-static``, ``minilm``); ``find_numbers`` / ``number_words``. See docs/text.md.
"""

from fewshot.text.encoders import ENCODERS, CachedEncoder, Encoder, TextError, get_encoder
from fewshot.text.numbers import Number, find_numbers, number_words

__all__ = [
    "ENCODERS", "CachedEncoder", "Encoder", "Number", "TextError", "find_numbers", "get_encoder", "number_words",
]  # fmt: skip
