"""The FastAPI app behind ``fewshot serve``.

    GET  /health   liveness, no key needed
    GET  /model    what is served: algorithm, backbone, preprocessing, metrics
    POST /predict  a support set (labelled images) and query images -> class probabilities

``/predict`` takes multipart form data (repeated ``support`` files with a ``label``
field each, in the same order, and repeated ``query`` files) or JSON
(``{"support": [{"label": "a", "image": "<base64>"}], "query": ["<base64>", ...]}``).
Each request adapts from the meta-learned parameters, which never change, so
requests cannot leak into each other. Every refusal is a 4xx with a clear message.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
from dataclasses import asdict, dataclass

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException

from fewshot.deploy import DeployError, Deployment


@dataclass(frozen=True)
class Limits:
    max_request_bytes: int = 32 * 2**20
    max_image_bytes: int = 4 * 2**20
    max_image_pixels: int = 4096 * 4096
    max_support: int = 250
    max_query: int = 250
    max_ways: int = 50


class Refusal(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


class LimitBody:
    """ASGI middleware: refuse bodies over ``limit`` bytes, declared or streamed."""

    def __init__(self, app, limit: int):
        self.app, self.limit = app, limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope.get("headers", [])).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            response = JSONResponse({"detail": self._message()}, status_code=413)
            return await response(scope, receive, send)
        received = 0

        async def limited():
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.limit:
                raise Refusal(413, self._message())
            return message

        return await self.app(scope, limited, send)

    def _message(self) -> str:
        return f"request body over the limit of {self.limit} bytes"


def create_app(checkpoint, *, api_key: str | None = None, limits: Limits = Limits(), device: str = "cpu") -> FastAPI:
    deployment = Deployment.load(checkpoint, device=device)
    app = FastAPI(title="fewshot", description="Few-shot classification: adapt on a support set, predict queries.")
    app.add_middleware(LimitBody, limit=limits.max_request_bytes)

    @app.exception_handler(Refusal)
    async def refused(request: Request, exc: Refusal):
        return JSONResponse({"detail": str(exc)}, status_code=exc.status)

    @app.exception_handler(DeployError)
    async def bad_task(request: Request, exc: DeployError):
        return JSONResponse({"detail": str(exc)}, status_code=422)

    def check_key(request: Request) -> None:
        if api_key is not None and not hmac.compare_digest(request.headers.get("x-api-key", ""), api_key):
            raise Refusal(401, "missing or wrong API key (send it in the X-API-Key header)")

    @app.get("/health")
    def health():
        return {"status": "ok"}

    @app.get("/model")
    def model(request: Request):
        check_key(request)
        meta = deployment.metadata
        spec = meta["learner"]
        return {
            "algorithm": spec["algorithm"],
            "algorithm_options": spec.get("algorithm_options", {}),
            "backbone": spec["backbone"],
            "ways": spec["ways"],
            "any_ways": spec["algorithm"] not in _fixed_way_algorithms(),
            "preprocessing": deployment.preprocessing,
            "metrics": meta.get("metrics", {}),
            "fewshot_version": meta.get("fewshot_version"),
            "limits": asdict(limits),
        }

    @app.post("/predict")
    async def predict(request: Request):
        check_key(request)
        support, labels, queries, names = await _read_task(request, limits)
        decode = deployment.decode
        support_x = [_decode(decode, data, name, limits) for data, name in support]
        query_x = [_decode(decode, data, name, limits) for data, name in zip(queries, names)]
        if len(set(labels)) > limits.max_ways:
            raise Refusal(413, f"{len(set(labels))} classes in the support set; the limit is {limits.max_ways}")
        prediction = await _in_thread(deployment.predict, support_x, labels, query_x)
        rows = []
        for name, probs in zip(names, prediction.probabilities.tolist()):
            best = max(range(len(probs)), key=probs.__getitem__)
            rows.append(
                {
                    "name": name,
                    "class": prediction.classes[best],
                    "probability": probs[best],
                    "probabilities": dict(zip(prediction.classes, probs)),
                }
            )
        return {"classes": prediction.classes, "predictions": rows}

    return app


def _fixed_way_algorithms():
    from fewshot.registry import GRADIENT

    return GRADIENT


async def _in_thread(fn, *args):
    from starlette.concurrency import run_in_threadpool

    return await run_in_threadpool(fn, *args)


def _decode(decode, data: bytes, name: str, limits: Limits):
    if len(data) > limits.max_image_bytes:
        raise Refusal(413, f"{name}: {len(data)} bytes, over the per-image limit of {limits.max_image_bytes}")
    _check_pixels(data, name, limits)
    return decode(data, name)


def _check_pixels(data: bytes, name: str, limits: Limits) -> None:
    import io

    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as img:
            width, height = img.size
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError):
        raise Refusal(422, f"{name}: not a readable image") from None
    if width * height > limits.max_image_pixels:
        raise Refusal(413, f"{name}: {width}x{height} pixels, over the limit of {limits.max_image_pixels}")


async def _read_task(request: Request, limits: Limits):
    """(support [(bytes, name)], labels, query bytes, query names) from multipart or JSON."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind == "multipart/form-data":
        support, labels, queries, names = await _read_multipart(request, limits)
    elif kind == "application/json":
        support, labels, queries, names = await _read_json(request)
    else:
        raise Refusal(415, "send multipart/form-data (support, label, query fields) or application/json")
    if not support:
        raise Refusal(422, "no support images")
    if not queries:
        raise Refusal(422, "no query images")
    if len(support) > limits.max_support:
        raise Refusal(413, f"{len(support)} support images; the limit is {limits.max_support}")
    if len(queries) > limits.max_query:
        raise Refusal(413, f"{len(queries)} query images; the limit is {limits.max_query}")
    return support, labels, queries, names


async def _read_multipart(request: Request, limits: Limits):
    try:
        form = await request.form(
            max_files=limits.max_support + limits.max_query + 1,
            max_fields=limits.max_support + 10,
            max_part_size=limits.max_image_bytes,
        )
    except (HTTPException, MultiPartException) as e:
        raise Refusal(400, f"malformed multipart body: {getattr(e, 'detail', None) or e}") from None
    files, labels = form.getlist("support"), form.getlist("label")
    queries = form.getlist("query")
    if any(isinstance(f, str) for f in files + queries):
        raise Refusal(422, "support and query fields must be files")
    if len(labels) != len(files):
        raise Refusal(422, f"{len(files)} support files but {len(labels)} label fields; send one label per file")
    support = [(await f.read(), f.filename or f"support[{i}]") for i, f in enumerate(files)]
    query_data = [await f.read() for f in queries]
    names = [f.filename or f"query[{i}]" for i, f in enumerate(queries)]
    return support, [str(label) for label in labels], query_data, names


async def _read_json(request: Request):
    try:
        body = json.loads(await request.body())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise Refusal(400, f"malformed JSON: {e}") from None
    if (
        not isinstance(body, dict)
        or not isinstance(body.get("support"), list)
        or not isinstance(body.get("query"), list)
    ):
        raise Refusal(422, 'expected {"support": [{"label": ..., "image": base64}, ...], "query": [base64, ...]}')
    support, labels = [], []
    for i, item in enumerate(body["support"]):
        if not isinstance(item, dict) or "label" not in item or "image" not in item:
            raise Refusal(422, f"support[{i}]: expected an object with label and image")
        support.append((_b64(item["image"], f"support[{i}]"), str(item.get("name", f"support[{i}]"))))
        labels.append(str(item["label"]))
    queries, names = [], []
    for i, item in enumerate(body["query"]):
        image, name = (
            (item.get("image"), item.get("name", f"query[{i}]")) if isinstance(item, dict) else (item, f"query[{i}]")
        )
        queries.append(_b64(image, f"query[{i}]"))
        names.append(str(name))
    return support, labels, queries, names


def _b64(value, name: str) -> bytes:
    if not isinstance(value, str):
        raise Refusal(422, f"{name}: image must be a base64 string")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise Refusal(422, f"{name}: not valid base64") from None


def run_server(checkpoint, *, host: str = "127.0.0.1", port: int = 8000, api_key: str | None = None) -> None:
    import uvicorn

    uvicorn.run(create_app(checkpoint, api_key=api_key), host=host, port=port, log_level="info")
