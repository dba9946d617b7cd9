"""The FastAPI app behind ``fewshot serve``.

    GET  /health   liveness, no key needed
    GET  /model    what is served: algorithm, backbone, preprocessing, metrics
    POST /predict  a support set (labelled images) and query images -> class probabilities

``/predict`` takes multipart form data (repeated ``support`` files with a ``label``
field each, in the same order, and repeated ``query`` files) or JSON
(``{"support": [{"label": "a", "image": "<base64>"}], "query": ["<base64>", ...]}``).
Labels are non-empty strings; base64 may be wrapped in lines or be a ``data:`` URI.
Each request adapts from the meta-learned parameters, which never change, so
requests cannot leak into each other. Every refusal is a 4xx with a clear message
naming the field (``support[2] (cat.png)``) and the problem; limits answer 413.
``/docs`` and ``/redoc`` are off (their pages load assets from a CDN); ``/openapi.json`` stays.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import asdict, dataclass

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.formparsers import MultiPartException, MultiPartParser

from fewshot.data.images import ImageTooLarge
from fewshot.deploy import MAX_IMAGE_PIXELS, DeployError, Deployment
from fewshot.serve.guards import Refusal, service_app


@dataclass(frozen=True)
class Limits:
    max_request_bytes: int = 32 * 2**20
    max_image_bytes: int = 4 * 2**20
    max_image_pixels: int = MAX_IMAGE_PIXELS
    max_support: int = 250
    max_query: int = 250
    max_ways: int = 50


def create_app(checkpoint, *, api_key: str | None = None, limits: Limits = Limits(), device: str = "cpu") -> FastAPI:
    deployment = Deployment.load(checkpoint, device=device)
    app, check_key = service_app(
        "fewshot",
        "Few-shot classification: adapt on a support set, predict queries.",
        limits.max_request_bytes,
        api_key,
    )

    @app.exception_handler(ImageTooLarge)
    async def too_large(request: Request, exc: ImageTooLarge):
        return JSONResponse({"detail": str(exc)}, status_code=413)

    @app.exception_handler(DeployError)
    async def bad_task(request: Request, exc: DeployError):
        return JSONResponse({"detail": str(exc)}, status_code=422)

    @app.get("/model")
    def model(request: Request):
        check_key(request)
        spec, stored = deployment.spec, deployment.stored
        return {
            "algorithm": spec.algorithm,
            "algorithm_options": spec.algorithm_options,
            "backbone": spec.backbone,
            "ways": spec.ways,
            "any_ways": not deployment.algorithm.fixed_ways,
            "preprocessing": deployment.preprocessing,
            "metrics": stored.metrics,
            "fewshot_version": stored.fewshot_version,
            "limits": asdict(limits),
        }

    @app.post("/predict")
    async def predict(request: Request):
        check_key(request)
        support, labels, queries, names = await _read_task(request, limits)
        support_x = [_decode(deployment, data, where, limits) for data, where in support]
        query_x = [_decode(deployment, data, where, limits) for data, where in queries]
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


async def _in_thread(fn, *args):
    from starlette.concurrency import run_in_threadpool

    return await run_in_threadpool(fn, *args)


def _decode(deployment: Deployment, data: bytes, where: str, limits: Limits):
    if len(data) > limits.max_image_bytes:
        raise Refusal(413, f"{where}: {len(data)} bytes, over the per-image limit of {limits.max_image_bytes}")
    return deployment.decode(data, where, max_pixels=limits.max_image_pixels)


def _where(field: str, i: int, name: str | None) -> str:
    """How errors name an image: ``support[2]``, or ``support[2] (cat.png)`` when it has a name."""
    return f"{field}[{i}] ({name})" if name else f"{field}[{i}]"


async def _read_task(request: Request, limits: Limits):
    """Support [(bytes, where)], labels, queries [(bytes, where)] and query names, from multipart or JSON."""
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


class _FormParser(MultiPartParser):
    """Starlette's multipart parser, noting whether the closing boundary came (python-multipart does not check)."""

    complete = False

    def on_end(self) -> None:
        self.complete = True


async def _read_multipart(request: Request, limits: Limits):
    max_files, max_fields = limits.max_support + limits.max_query, limits.max_support
    parser = _FormParser(
        request.headers,
        request.stream(),
        max_files=max_files,
        max_fields=max_fields,
        max_part_size=limits.max_image_bytes,
    )
    try:
        form = await parser.parse()
    except MultiPartException as e:  # Starlette's message says which of its limits was hit
        over = {
            "Too many files": f"more than {max_files} files; the limits are {limits.max_support} support "
            f"and {limits.max_query} query images",
            "Too many fields": f"more than {max_fields} label fields; the limit is {max_fields} support images",
            "Part exceeded": f"a label field over the limit of {limits.max_image_bytes} bytes",
        }
        limit = next((text for start, text in over.items() if e.message.startswith(start)), None)
        raise (Refusal(413, limit) if limit else Refusal(400, f"malformed multipart body: {e.message}")) from None
    try:
        if not parser.complete:
            raise Refusal(400, "malformed multipart body: it ends before its closing boundary (truncated?)")
        files, labels, queries = form.getlist("support"), form.getlist("label"), form.getlist("query")
        for field, items in (("support", files), ("query", queries)):
            for i, item in enumerate(items):
                if isinstance(item, str):
                    raise Refusal(422, f"{field}[{i}]: expected a file, got a text field")
        for i, label in enumerate(labels):
            if not isinstance(label, str) or not label:
                raise Refusal(422, f"label[{i}]: expected a non-empty text field")
        if len(labels) != len(files):
            raise Refusal(422, f"{len(files)} support files but {len(labels)} label fields; send one label per file")
        uploads = [f for f in files if not isinstance(f, str)], [f for f in queries if not isinstance(f, str)]
        support = [(await f.read(), _where("support", i, f.filename)) for i, f in enumerate(uploads[0])]
        query_data = [(await f.read(), _where("query", i, f.filename)) for i, f in enumerate(uploads[1])]
        names = [f.filename or f"query[{i}]" for i, f in enumerate(uploads[1])]
    finally:
        await form.close()
    return support, labels, query_data, names


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
        label, where = item["label"], _where("support", i, _name(item, f"support[{i}]"))
        if not isinstance(label, str) or not label:
            raise Refusal(422, f"{where}: the label must be a non-empty string, got {json.dumps(label)[:40]}")
        support.append((_b64(item["image"], where), where))
        labels.append(label)
    queries, names = [], []
    for i, item in enumerate(body["query"]):
        image, name = (item.get("image"), _name(item, f"query[{i}]")) if isinstance(item, dict) else (item, None)
        where = _where("query", i, name)
        queries.append((_b64(image, where), where))
        names.append(name or f"query[{i}]")
    return support, labels, queries, names


def _name(item: dict, field: str) -> str | None:
    name = item.get("name")
    if name is not None and not isinstance(name, str):
        raise Refusal(422, f"{field}: the name must be a string, got {json.dumps(name)[:40]}")
    return name


def _b64(value, where: str) -> bytes:
    """Standard base64, possibly wrapped in lines (as ``base64`` writes it) or as a ``data:...;base64,`` URI."""
    if not isinstance(value, str):
        raise Refusal(422, f"{where}: the image must be a base64 string")
    if value.startswith("data:"):
        header, comma, value = value.partition(",")
        if not comma or not header.lower().endswith(";base64"):
            raise Refusal(422, f"{where}: a data URI must read data:<type>;base64,<data>")
    try:
        return base64.b64decode("".join(value.split()), validate=True)
    except (binascii.Error, ValueError):
        raise Refusal(422, f"{where}: not valid base64") from None


def run_server(checkpoint, *, host: str = "127.0.0.1", port: int = 8000, api_key: str | None = None) -> None:
    import uvicorn

    uvicorn.run(create_app(checkpoint, api_key=api_key), host=host, port=port, log_level="info")
