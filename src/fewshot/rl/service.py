"""The HTTP service behind ``fewshot rl serve RUN``: acting on a task described in words.

    GET  /health     liveness
    GET  /model      what is served: family, parameters and ranges, observation and action sizes, encoder
    POST /interpret  {"description": "..."} -> the task it was read as and what was understood
    POST /act        {"description": "...", "observation": [...], "deterministic": true} -> the action

Every refusal is a 4xx whose ``detail`` names the problem: a body that is not JSON or not an object, an
unknown field, a description that is empty, too long, of another family's task or with no recognisable
instruction (422, with what was understood), an observation of the wrong size or with a non-finite number
(422), a body over the limit (413). No request gets an action it did not ask for. ``/docs`` and ``/redoc``
are off (their pages load assets from a CDN).
"""

import json
import math
from dataclasses import asdict, dataclass
from typing import Any

from fewshot.rl.errors import RLError
from fewshot.rl.interpret import MAX_CHARS

SERVE_HINT = "pip install 'fewshot[serve]'"


@dataclass(frozen=True)
class Limits:
    max_request_bytes: int = 64 * 1024
    max_description_chars: int = MAX_CHARS
    max_observation: int = 1024  # numbers in one observation (the policy's own size is checked too)


class Refusal(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def create_app(learner: Any, limits: Limits = Limits()) -> Any:
    """A FastAPI app serving ``learner`` (a ``fewshot.rl.zeroshot.Learner``)."""
    try:
        from fastapi import FastAPI, Request
    except ImportError:
        raise RLError(f"fewshot rl serve needs fastapi and uvicorn: {SERVE_HINT}") from None
    from fastapi.responses import JSONResponse

    app = FastAPI(title="fewshot rl zero-shot", docs_url=None, redoc_url=None)

    @app.exception_handler(Refusal)
    async def refused(request: Request, exc: Refusal) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=exc.status)

    async def body(request: Request, fields: set[str]) -> dict[str, Any]:
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limits.max_request_bytes:
            raise Refusal(413, f"request body over the limit of {limits.max_request_bytes} bytes")
        raw = await request.body()
        if len(raw) > limits.max_request_bytes:
            raise Refusal(413, f"request body over the limit of {limits.max_request_bytes} bytes")
        try:
            data = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            raise Refusal(400, "the body must be a JSON object") from None
        if not isinstance(data, dict):
            raise Refusal(400, "the body must be a JSON object")
        unknown = set(data) - fields
        if unknown:
            raise Refusal(422, f"unknown field(s) {sorted(unknown)}; valid: {sorted(fields)}")
        return data

    def interpret(data: dict[str, Any]) -> Any:
        text = data.get("description")
        if not isinstance(text, str):
            raise Refusal(422, "'description' must be a string, e.g. " + _example(learner))
        if len(text) > limits.max_description_chars:
            raise Refusal(422, f"'description' has {len(text)} characters; the limit is {limits.max_description_chars}")
        try:
            return learner.interpret(text)
        except RLError as e:
            raise Refusal(422, str(e)) from None

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/model")
    async def model() -> dict[str, Any]:
        return {
            "run": str(learner.run),
            "family": learner.family.describe(),
            "observation_size": learner.obs_dim,
            "action_size": len(learner.low),
            "action_low": learner.low.tolist(),
            "action_high": learner.high.tolist(),
            "encoder": learner.adapter.encoder.describe(),
            "limits": asdict(limits),
        }

    @app.post("/interpret")
    async def interpret_route(request: Request) -> dict[str, Any]:
        data = await body(request, {"description"})
        return interpret(data).to_dict()

    @app.post("/act")
    async def act(request: Request) -> dict[str, Any]:
        data = await body(request, {"description", "observation", "deterministic"})
        reading = interpret(data)
        obs = data.get("observation")
        if not isinstance(obs, list) or not obs:
            raise Refusal(422, f"'observation' must be a list of {learner.obs_dim} numbers")
        if len(obs) > limits.max_observation:
            raise Refusal(413, f"'observation' has {len(obs)} numbers; the limit is {limits.max_observation}")
        if len(obs) != learner.obs_dim:
            raise Refusal(422, f"'observation' must hold {learner.obs_dim} numbers, got {len(obs)}")
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in obs):
            raise Refusal(422, "'observation' must hold finite numbers only")
        deterministic = data.get("deterministic", True)
        if not isinstance(deterministic, bool):
            raise Refusal(422, "'deterministic' must be true or false")
        policy = learner.zero_shot(reading.text)
        action = policy.act(obs, deterministic=deterministic)
        return {"action": [float(a) for a in action], "task": reading.to_dict()}

    return app


def _example(learner: Any) -> str:
    from fewshot.rl.interpret import _EXAMPLES

    return _EXAMPLES.get(learner.family.name, "'go to the top-left corner'")


def serve(learner: Any, host: str = "127.0.0.1", port: int = 8000) -> None:  # pragma: no cover - a server
    try:
        import uvicorn
    except ImportError:
        raise RLError(f"fewshot rl serve needs fastapi and uvicorn: {SERVE_HINT}") from None
    uvicorn.run(create_app(learner), host=host, port=port)
