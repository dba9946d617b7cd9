"""The HTTP service of a molecules run (``fewshot molecules serve RUN``), built with FastAPI.

    GET  /health   liveness, no key needed
    GET  /model    what is served: the learner spec, its metrics, the limits
    POST /predict  {"support": [{"smiles": "CCO", "label": 1}, ...], "query": ["CCN", ...]}
                   -> {"predictions": [{"index": 0, "smiles": "CCN", "probability": 0.73}, ...]}

Every request adapts from the meta-learned weights, which never change, so requests cannot
leak into each other. Refusals are 4xx with one message naming the problem: 400 a body that is
not JSON, 413 a limit (body bytes, molecules, SMILES length), 422 anything else (an invalid
SMILES, with ``where`` "support" or "query" and its ``index``; an empty or one-class support),
401 a missing or wrong ``X-API-Key`` when the app was made with ``api_key``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from fastapi import FastAPI, Request
from starlette.concurrency import run_in_threadpool

from fewshot.molecules.smiles import InvalidSmilesError
from fewshot.serve.guards import Refusal, service_app


@dataclass(frozen=True)
class Limits:
    max_request_bytes: int = 2 * 2**20
    max_support: int = 1024
    max_query: int = 2000
    max_smiles_chars: int = 500


def parse_request(body: Any, limits: Limits) -> tuple[list[str], list[int], list[str]]:
    """(support SMILES, support labels, query SMILES) of a request body, or a ``Refusal`` naming the field."""
    if (
        not isinstance(body, dict)
        or not isinstance(body.get("support"), list)
        or not isinstance(body.get("query"), list)
    ):
        raise Refusal(422, 'expected {"support": [{"smiles": ..., "label": 0 or 1}, ...], "query": ["SMILES", ...]}')
    support, query = body["support"], body["query"]
    if len(support) > limits.max_support:
        raise Refusal(413, f"{len(support)} support molecules; the limit is {limits.max_support}")
    if len(query) > limits.max_query:
        raise Refusal(413, f"{len(query)} query molecules; the limit is {limits.max_query}")
    if not support:
        raise Refusal(422, "empty support set: at least one active and one inactive molecule are needed")
    if not query:
        raise Refusal(422, "no query molecules")
    smiles, labels = [], []
    for i, item in enumerate(support):
        if not isinstance(item, dict) or not isinstance(item.get("smiles"), str):
            raise Refusal(422, f"support[{i}]: expected an object with 'smiles' (a string) and 'label' (0 or 1)")
        label = item.get("label")
        if isinstance(label, bool) or label not in (0, 1):
            raise Refusal(422, f"support[{i}]: label must be 0 (inactive) or 1 (active), got {label!r}")
        smiles.append(_smiles(item["smiles"], "support", i, limits))
        labels.append(int(label))
    queries = []
    for i, item in enumerate(query):
        if not isinstance(item, str):
            raise Refusal(422, f"query[{i}]: expected a SMILES string, got {type(item).__name__}")
        queries.append(_smiles(item, "query", i, limits))
    if len(set(labels)) < 2:
        raise Refusal(422, f"the support set needs both actives (1) and inactives (0), got only label {labels[0]}")
    return smiles, labels, queries


def _smiles(text: str, where: str, index: int, limits: Limits) -> str:
    if len(text) > limits.max_smiles_chars:
        raise Refusal(
            413, f"{where}[{index}]: SMILES of {len(text)} characters; the limit is {limits.max_smiles_chars}"
        )
    return text


def create_app(run, *, limits: Limits = Limits(), api_key: str | None = None) -> FastAPI:
    """The service of the run folder ``run`` (or its checkpoint/); ``api_key``: required in ``X-API-Key``."""
    import json

    import torch

    from fewshot.molecules.cli import load_run, predictions
    from fewshot.molecules.predict import predict_smiles

    folder, config, learner, spec, fitted = load_run(run)
    meta = json.loads((folder / "checkpoint" / "checkpoint.json").read_text())
    app, check_key = service_app(
        "fewshot molecules",
        "Few-shot activity prediction: adapt on labelled SMILES, predict query SMILES.",
        limits.max_request_bytes,
        api_key,
    )

    @app.get("/model")
    def model(request: Request):
        check_key(request)
        return {"domain": "molecules", "spec": spec, "metrics": meta.get("metrics", {}), "data": config.data,
                "limits": asdict(limits)}  # fmt: skip

    def predict(smiles: list[str], labels: list[int], query: list[str]) -> list[float]:
        with torch.no_grad():
            p = predict_smiles(
                learner,
                spec["featurizer"],
                smiles,
                labels,
                query,
                max_support=limits.max_support,
                max_query=limits.max_query,
                standardizers=fitted,
            )
        return p.tolist()

    @app.post("/predict")
    async def predict_route(request: Request):
        check_key(request)
        raw = await request.body()
        try:
            body = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise Refusal(400, f"the body is not JSON: {e}") from None
        smiles, labels, query = parse_request(body, limits)
        try:
            p = await run_in_threadpool(predict, smiles, labels, query)
        except InvalidSmilesError as e:
            raise Refusal(422, str(e), where=e.where, index=e.index) from None
        except ValueError as e:
            raise Refusal(422, str(e)) from None
        return {"predictions": predictions(query, p)}

    return app
