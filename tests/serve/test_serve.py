"""The HTTP service against a real uvicorn on 127.0.0.1."""

import base64
import io
import json
import os
import socket
import struct
import subprocess
import sys
import time
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest
from cli_args import train_argv
from images import draw, make_tree

from fewshot.cli import main

API_KEY = "s3cret"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def png(shape: str, seed: int) -> bytes:
    buf = io.BytesIO()
    draw(shape, np.random.default_rng(seed)).save(buf, format="PNG")
    return buf.getvalue()


def png_claiming(width: int, height: int) -> bytes:
    """A small PNG whose header claims ``width x height``: Pillow reads the size, nothing big is made."""
    data = png("circle", 0)
    ihdr = struct.pack(">II", width, height) + data[24:29]
    return data[:16] + ihdr + struct.pack(">I", zlib.crc32(b"IHDR" + ihdr)) + data[33:]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    root = tmp_path_factory.mktemp("serve")
    data = make_tree(root / "shapes")
    out = root / "run"
    assert main(train_argv(data, out, steps=4, test_episodes=5, val_split="none")) == 0
    return out / "checkpoint"


@pytest.fixture(scope="module")
def server(checkpoint, tmp_path_factory):
    port = free_port()
    log = tmp_path_factory.mktemp("server") / "output.txt"
    argv = [sys.executable, "-m", "fewshot", "serve", str(checkpoint), "--port", str(port), "--api-key", API_KEY]
    with open(log, "wb") as output, subprocess.Popen(argv, stdout=output, stderr=subprocess.STDOUT) as proc:
        url, deadline = f"http://127.0.0.1:{port}", time.monotonic() + 120  # a loaded machine starts slowly
        while True:
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
            if proc.poll() is not None:
                pytest.fail(log.read_text())
            if time.monotonic() > deadline:
                proc.kill()
                pytest.fail(f"server did not start in 120 s: {log.read_text()}")
        yield url, port
        proc.terminate()
        proc.wait(10)


def task_json(shapes=("circle", "cross", "hline"), queries=(("circle", 9), ("hline", 8))):
    return {
        "support": [{"label": s, "image": base64.b64encode(png(s, i)).decode()} for i, s in enumerate(shapes)],
        "query": [{"name": f"{s}-{seed}", "image": base64.b64encode(png(s, seed)).decode()} for s, seed in queries],
    }


def post(url, **kwargs):
    headers = kwargs.pop("headers", {"X-API-Key": API_KEY})
    return httpx.post(f"{url}/predict", headers=headers, timeout=30, **kwargs)


def test_health_and_model(server):
    url, _ = server
    assert httpx.get(f"{url}/health").json() == {"status": "ok"}
    assert httpx.get(f"{url}/model").status_code == 401
    info = httpx.get(f"{url}/model", headers={"X-API-Key": API_KEY}).json()
    assert info["algorithm"] == "protonet" and info["preprocessing"]["image_size"] == 28


def test_predict_json_and_multipart_agree(server):
    url, _ = server
    a = post(url, json=task_json())
    assert a.status_code == 200, a.text
    body = a.json()
    assert body["classes"] == ["circle", "cross", "hline"] and len(body["predictions"]) == 2
    for p in body["predictions"]:
        assert abs(sum(p["probabilities"].values()) - 1) < 1e-5 and p["class"] in body["classes"]
    task = task_json()
    files = [
        ("support", (f"s{i}.png", base64.b64decode(s["image"]), "image/png")) for i, s in enumerate(task["support"])
    ]
    files += [("query", (q["name"], base64.b64decode(q["image"]), "image/png")) for q in task["query"]]
    b = post(url, files=files, data={"label": [s["label"] for s in task["support"]]})
    assert b.status_code == 200, b.text
    probs = lambda r: [p["probabilities"] for p in r.json()["predictions"]]  # noqa: E731
    assert np.allclose([list(p.values()) for p in probs(a)], [list(p.values()) for p in probs(b)], atol=1e-6)


@pytest.mark.parametrize(
    ("kwargs", "status", "message"),
    [
        ({"json": task_json(), "headers": {}}, 401, "API key"),
        ({"json": task_json(), "headers": {"X-API-Key": "wrong"}}, 401, "API key"),
        (
            {"content": b"{not json", "headers": {"X-API-Key": API_KEY, "Content-Type": "application/json"}},
            400,
            "malformed JSON",
        ),
        ({"content": b"hello", "headers": {"X-API-Key": API_KEY, "Content-Type": "text/plain"}}, 415, "multipart"),
        ({"json": {"support": [], "query": []}}, 422, "no support images"),
        ({"json": task_json(shapes=("circle",))}, 422, "at least 2 classes"),
        ({"json": {**task_json(), "query": ["%%%"]}}, 422, "not valid base64"),
        ({"json": {**task_json(), "query": [base64.b64encode(b"not an image").decode()]}}, 422, "not a readable image"),
        ({"json": {**task_json(), "support": [{"image": "AAAA"}]}}, 422, "label and image"),
        (
            {"content": b"x" * (33 * 2**20), "headers": {"X-API-Key": API_KEY, "Content-Type": "application/json"}},
            413,
            "over the limit",
        ),
    ],
)
def test_refusals_are_clear_4xx(server, kwargs, status, message):
    url, _ = server
    r = post(url, **kwargs)
    assert r.status_code == status and message in r.json()["detail"]


def test_too_many_images_and_huge_image(server):
    url, _ = server
    many = task_json(queries=[("circle", i) for i in range(251)])
    r = post(url, json=many)
    assert r.status_code == 413 and "251 query images" in r.json()["detail"]
    from PIL import Image

    buf = io.BytesIO()
    Image.new("L", (5000, 5000), 255).save(buf, format="PNG")
    big = {**task_json(), "query": [base64.b64encode(buf.getvalue()).decode()]}
    r = post(url, json=big)
    assert r.status_code == 413 and r.json()["detail"] == "query[0]: 5000x5000 pixels, over the limit of 16777216"


def test_pixel_limit_is_413_even_past_pillows_own_guard(server):
    url, _ = server
    task = task_json()
    files = [("support", (f"s{i}.png", base64.b64decode(s["image"]))) for i, s in enumerate(task["support"])]
    files.append(("query", ("huge.png", png_claiming(20000, 20000))))
    r = post(url, files=files, data={"label": [s["label"] for s in task["support"]]})
    assert r.status_code == 413, r.text
    assert r.json()["detail"].startswith("query[0] (huge.png): more than ")
    assert r.json()["detail"].endswith("pixels, over the limit of 16777216")


def test_multipart_file_and_field_counts_are_413_naming_the_limit(server):
    url, _ = server
    tiny = png("dot", 0)
    r = post(url, files=[("query", (f"q{i}.png", tiny)) for i in range(501)])
    assert r.status_code == 413 and r.json()["detail"].startswith("more than 500 files"), r.text
    r = post(url, files=[("query", ("q.png", tiny))], data={"label": ["a"] * 251})
    assert r.status_code == 413 and r.json()["detail"].startswith("more than 250 label fields"), r.text


@pytest.mark.parametrize("label", [None, ["cat"], {"name": "cat"}, True, 1, ""])
def test_labels_must_be_non_empty_strings(server, label):
    url, _ = server
    task = task_json()
    task["support"][1]["label"] = label
    r = post(url, json=task)
    assert r.status_code == 422, r.text
    assert r.json()["detail"] == f"support[1]: the label must be a non-empty string, got {json.dumps(label)}"


def test_multipart_label_sent_as_a_file_or_empty_is_422(server):
    url, _ = server
    files = [("support", ("a.png", png("circle", 0))), ("support", ("b.png", png("cross", 1)))]
    files += [("query", ("q.png", png("circle", 2))), ("label", ("l.txt", b"cross"))]
    r = post(url, files=files, data={"label": ["circle"]})
    assert r.status_code == 422 and r.json()["detail"] == "label[1]: expected a non-empty text field", r.text
    r = post(url, files=files[:3], data={"label": ["circle", ""]})
    assert r.status_code == 422 and r.json()["detail"] == "label[1]: expected a non-empty text field", r.text


@pytest.mark.parametrize("keep", [0.5, -8])
def test_truncated_multipart_body_is_400(server, keep):
    url, _ = server
    files = [("support", (f"{s}.png", png(s, i))) for i, s in enumerate(("circle", "cross"))]
    files.append(("query", ("q.png", png("circle", 5))))
    request = httpx.Request("POST", f"{url}/predict", files=files, data={"label": ["circle", "cross"]})
    body = request.read()
    cut = body[: int(len(body) * keep)] if isinstance(keep, float) else body[:keep]
    headers = {"X-API-Key": API_KEY, "Content-Type": request.headers["Content-Type"]}
    assert post(url, content=body, headers=headers).status_code == 200
    r = post(url, content=cut, headers=headers)
    assert r.status_code == 400, r.text
    assert r.json()["detail"] == "malformed multipart body: it ends before its closing boundary (truncated?)"


def test_wrapped_base64_and_data_uris_are_accepted(server):
    url, _ = server
    plain = task_json()
    wrapped, uri = task_json(), task_json()
    for i, s in enumerate(plain["support"]):
        raw = base64.b64decode(s["image"])
        wrapped["support"][i]["image"] = base64.encodebytes(raw).decode()  # 76 columns, as `base64` writes
        uri["support"][i]["image"] = "data:image/png;base64," + s["image"]
    assert "\n" in wrapped["support"][0]["image"].rstrip("\n")
    answers = [post(url, json=t) for t in (plain, wrapped, uri)]
    assert [a.status_code for a in answers] == [200, 200, 200], answers[1].text + answers[2].text
    assert answers[0].json() == answers[1].json() == answers[2].json()
    r = post(url, json={**plain, "query": ["data:image/png,rawbytes"]})
    assert r.status_code == 422 and r.json()["detail"] == "query[0]: a data URI must read data:<type>;base64,<data>"


def test_no_cdn_docs_pages_but_the_openapi_schema(server):
    url, _ = server
    assert httpx.get(f"{url}/docs").status_code == 404
    assert httpx.get(f"{url}/redoc").status_code == 404
    assert "/predict" in httpx.get(f"{url}/openapi.json").json()["paths"]


def test_image_errors_name_the_field_and_never_an_object_repr(server):
    url, _ = server
    task = task_json()
    files = [("support", (f"s{i}.png", base64.b64decode(s["image"]))) for i, s in enumerate(task["support"])]
    files.append(("query", ("notes.png", b"not an image")))
    r = post(url, files=files, data={"label": [s["label"] for s in task["support"]]})
    assert r.status_code == 422
    assert r.json()["detail"] == "query[0] (notes.png): not a readable image (not a format Pillow recognises)"
    task["support"][2]["image"] = base64.b64encode(png("hline", 0)[:60]).decode()
    r = post(url, json=task)
    assert r.status_code == 422 and r.json()["detail"].startswith("support[2]: not a readable image (")
    assert "object at 0x" not in r.json()["detail"]


def tree_with(root: Path, odd: str, data: bytes) -> tuple[Path, Path]:
    """A support folder (two classes, ``odd`` among the first class's images) and a query folder."""
    for i, shape in enumerate(("circle", "cross")):
        (root / "support" / shape).mkdir(parents=True)
        (root / "support" / shape / "0.png").write_bytes(png(shape, i))
    (root / "support" / "circle" / odd).write_bytes(data)
    (root / "query").mkdir()
    (root / "query" / "q.png").write_bytes(png("cross", 7))
    return root / "support", root / "query"


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (png_claiming(10000, 10000), "10000x10000 pixels, over the limit of 16777216"),
        (b"not an image", "not a readable image (not a format Pillow recognises)"),
    ],
)
def test_predict_refuses_a_huge_or_unreadable_support_image_in_one_line(
    checkpoint, tmp_path, capsys, recwarn, data, problem
):
    support, query = tree_with(tmp_path, "odd.png", data)
    assert main(["predict", str(checkpoint), "--support", str(support), "--query", str(query)]) == 2
    err = capsys.readouterr().err
    assert err == f"fewshot predict: error: {support / 'circle' / 'odd.png'}: {problem}\n"
    assert not [w for w in recwarn if "DecompressionBomb" in w.category.__name__]


def load_script(url: str, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "FEWSHOT_API_KEY"}
    script = Path(__file__).resolve().parents[2] / "benchmarks" / "serve_load.py"
    cmd = [sys.executable, str(script), "--url", url, "--requests", "2", "--concurrency", "1", *args]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)


def test_serve_load_without_the_servers_key_is_one_line(server):
    url, _ = server
    run = load_script(url)
    assert run.returncode == 2 and run.stdout == ""
    assert run.stderr == (
        f"serve_load.py: error: the server at {url} needs a key: pass --api-key or set $FEWSHOT_API_KEY\n"
    )
    run = load_script(url, "--api-key", API_KEY)
    assert run.returncode == 0 and "throughput:" in run.stdout, run.stderr


def test_bad_requests_do_not_change_later_answers_and_requests_do_not_leak(server):
    url, _ = server
    reference = post(url, json=task_json()).json()
    post(url, json={"support": [], "query": []})
    post(url, content=b"garbage", headers={"X-API-Key": API_KEY, "Content-Type": "multipart/form-data; boundary=x"})
    other = task_json(shapes=("square", "triangle", "vline", "dot"), queries=(("dot", 3),))
    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(lambda t: post(url, json=t).json(), [task_json(), other] * 4))
    assert all(a == reference for a in answers[::2])
    assert all(a == answers[1] for a in answers[1::2])
    assert post(url, json=task_json()).json() == reference


def test_port_in_use_is_one_clear_error(server, checkpoint, capsys):
    _, port = server
    assert main(["serve", str(checkpoint), "--port", str(port)]) == 2
    err = capsys.readouterr().err
    assert f"cannot listen on 127.0.0.1:{port}" in err and len(err.strip().splitlines()) == 1


def test_bad_port_is_a_usage_error(checkpoint, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["serve", str(checkpoint), "--port", "99999"])
    assert exit_info.value.code == 2 and "is not a TCP port" in capsys.readouterr().err


def test_decode_image_refuses_by_size_from_the_header_alone():
    from PIL import Image

    from fewshot.data.images import ImageTooLarge, decode_image

    with pytest.raises(ImageTooLarge, match=r"^big\.png: 11x10 pixels, over the limit of 100$"):
        decode_image(png_claiming(11, 10), "big.png", max_pixels=100)
    bomb = rf"^big\.png: more than {2 * Image.MAX_IMAGE_PIXELS} pixels, over Pillow's decompression-bomb limit$"
    with pytest.raises(ImageTooLarge, match=bomb):  # loaders pass no limit: Pillow's guard, named the same way
        decode_image(png_claiming(20000, 20000), "big.png")
