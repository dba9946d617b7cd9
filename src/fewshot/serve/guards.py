"""What every fewshot HTTP service shares: refusals as 4xx JSON naming the problem, a limit on
the request body (declared or streamed), and an optional API key."""

from __future__ import annotations

import hmac
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse


class Refusal(Exception):
    """A request refused with HTTP ``status``: ``{"detail": message, **fields}``."""

    def __init__(self, status: int, message: str, **fields: Any):
        super().__init__(message)
        self.status, self.fields = status, fields


class LimitBody:
    """ASGI middleware: refuse bodies over ``limit`` bytes, declared or streamed."""

    def __init__(self, app, limit: int):
        self.app, self.limit = app, limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope.get("headers", [])).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            return await JSONResponse({"detail": self.message()}, status_code=413)(scope, receive, send)
        received = 0

        async def limited():
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.limit:
                raise Refusal(413, self.message())
            return message

        return await self.app(scope, limited, send)

    def message(self) -> str:
        return f"request body over the limit of {self.limit} bytes"


def service_app(
    title: str, description: str, max_request_bytes: int, api_key: str | None
) -> tuple[FastAPI, Callable[[Request], None]]:
    """A FastAPI app with ``guard`` installed, ``GET /health``, and no ``/docs`` or ``/redoc`` (their
    pages load assets from a CDN: blank offline); returns it with its ``check_key``."""
    app = FastAPI(title=title, description=description, docs_url=None, redoc_url=None)
    check_key = guard(app, max_request_bytes, api_key)

    @app.get("/health")
    def health():
        return {"status": "ok"}

    return app, check_key


def guard(app: FastAPI, max_request_bytes: int, api_key: str | None) -> Callable[[Request], None]:
    """Install the body limit and the refusal handler on ``app``; return ``check_key(request)``,
    which refuses (401) a request without ``api_key`` in its X-API-Key header (no-op without a key)."""
    app.add_middleware(LimitBody, limit=max_request_bytes)

    @app.exception_handler(Refusal)
    async def refused(request: Request, exc: Refusal):
        return JSONResponse({"detail": str(exc), **exc.fields}, status_code=exc.status)

    def check_key(request: Request) -> None:
        if api_key is not None and not hmac.compare_digest(request.headers.get("x-api-key", ""), api_key):
            raise Refusal(401, "missing or wrong API key (send it in the X-API-Key header)")

    return check_key
