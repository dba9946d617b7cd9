"""The HTTP service against a real uvicorn on 127.0.0.1."""

import base64
import io
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import pytest
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


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    root = tmp_path_factory.mktemp("serve")
    data = make_tree(root / "shapes")
    out = root / "run"
    assert (
        main(
            [
                "train",
                "--dataset",
                "image-folder",
                "--data-root",
                str(data),
                "--ways",
                "3",
                "--shots",
                "1",
                "--queries",
                "2",
                "--steps",
                "4",
                "--out",
                str(out),
                "--quiet",
                "--test-episodes",
                "5",
                "--set",
                "dataset_options.image_size=28",
                "--set",
                "dataset_options.channels=1",
                "--set",
                "val_split=none",
                "--set",
                "tensorboard=false",
            ]
        )
        == 0
    )
    return out / "checkpoint"


@pytest.fixture(scope="module")
def server(checkpoint):
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "fewshot", "serve", str(checkpoint), "--port", str(port), "--api-key", API_KEY],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            time.sleep(0.1)
        if proc.poll() is not None:
            pytest.fail(proc.stdout.read().decode())
    else:
        proc.kill()
        pytest.fail("server did not start")
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
    assert r.status_code == 413 and "5000x5000 pixels" in r.json()["detail"]


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
