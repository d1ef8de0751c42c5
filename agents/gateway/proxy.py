"""The gateway's HTTP side: OpenAI-compatible routes relayed to an upstream engine, streamed.

Bytes pass through as they arrive (no buffering: the client's time to first token is the
engine's plus one hop). Errors the gateway makes itself use OpenAI's error body. An upstream
that refuses the connection is marked down and the next one is tried — only before any byte
has reached the client; after that a failure cuts the stream, as the engine would. When the
client goes away mid-stream, the upstream request is closed too, so the engine aborts it and
its GPU stops working on it. The span comes from :class:`InferLedgerMiddleware` around this
app (source ``gateway``); the upstream chosen is left in ``scope["state"]`` for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator

import anyio
import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Send

from agents.gateway.upstreams import Pool, Upstream
from agents.tracing.middleware import UPSTREAM_KEY

MAX_BODY_BYTES = 8 * 1024 * 1024
_HOP_BY_HOP = {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te",
               "trailer", "transfer-encoding", "upgrade", "host", "content-length"}


def _error(status: int, message: str, kind: str, code: str | None = None) -> JSONResponse:
    return JSONResponse({"error": {"message": message, "type": kind, "param": None,
                                   "code": code}}, status_code=status)


def _forward_headers(headers: httpx.Headers | dict) -> dict[str, str]:
    return {k: v for k, v in headers.items() if k.lower() not in _HOP_BY_HOP}


class _Relay(Response):
    """Streams an upstream response to the client while watching for the client leaving.

    A client that hangs up (even while the engine is still prefilling and nothing is being
    sent) cancels the relay; closing the upstream response then hangs up on the engine,
    which aborts the request.
    """

    def __init__(self, upstream: httpx.Response, up: Upstream) -> None:
        self.upstream, self.up = upstream, up
        self.background = None

    async def __call__(self, scope: dict, receive: Receive, send: Send) -> None:
        try:
            async with anyio.create_task_group() as tg:
                async def watch() -> None:
                    while (await receive())["type"] != "http.disconnect":
                        pass
                    tg.cancel_scope.cancel()

                tg.start_soon(watch)
                await self._relay(send)
                tg.cancel_scope.cancel()
        finally:
            with anyio.CancelScope(shield=True):
                self.up.outstanding -= 1
                await self.upstream.aclose()

    async def _relay(self, send: Send) -> None:
        await send({"type": "http.response.start", "status": self.upstream.status_code,
                    "headers": [(k.encode("latin-1"), v.encode("latin-1")) for k, v in
                                _forward_headers(self.upstream.headers).items()]})
        with contextlib.suppress(httpx.HTTPError):  # a cut upstream ends the stream
            async for chunk in self.upstream.aiter_raw():
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})


def build_gateway(pool: Pool, *, timeout_s: float = 600.0,
                  connect_timeout_s: float = 2.0) -> Starlette:
    timeout = httpx.Timeout(timeout_s, connect=connect_timeout_s)
    client = httpx.AsyncClient(timeout=timeout, limits=httpx.Limits(max_connections=None))

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        await pool.check(client)
        task = asyncio.create_task(pool.run(client))
        try:
            yield
        finally:
            task.cancel()
            await client.aclose()

    async def relay(request: Request) -> Response:
        size = request.headers.get("content-length")
        if size is not None and size.isdigit() and int(size) > MAX_BODY_BYTES:
            return _error(413, f"request body over {MAX_BODY_BYTES} bytes", "invalid_request_error")
        body = await request.body()
        if len(body) > MAX_BODY_BYTES:
            return _error(413, f"request body over {MAX_BODY_BYTES} bytes", "invalid_request_error")
        try:
            doc = json.loads(body)
        except ValueError as e:
            return _error(400, f"request body is not JSON: {e}", "invalid_request_error")
        model = doc.get("model") if isinstance(doc, dict) else None
        if not isinstance(model, str):
            return _error(400, "'model' (a string) is required", "invalid_request_error")
        known = pool.known_models()
        if known and model not in known:
            return _error(404, f"The model `{model}` does not exist.", "NotFoundError",
                          "model_not_found")
        for up in pool.candidates(model):
            response = await _send(request, up, body)
            if response is not None:
                return response
        down = "; ".join(f"{u.url}: {u.last_error}" for u in pool.upstreams if not u.healthy)
        return _error(503, f"no upstream available for {model!r} ({down or 'none serve it'})",
                      "service_unavailable")

    async def _send(request: Request, up: Upstream, body: bytes) -> Response | None:
        """The upstream's response, streamed; None if it could not be reached at all."""
        upstream_request = client.build_request(
            request.method, f"{up.url}{request.url.path}", content=body,
            headers=_forward_headers(request.headers), params=request.query_params)
        up.outstanding += 1
        try:
            upstream = await client.send(upstream_request, stream=True)
        except (httpx.ConnectError, httpx.ConnectTimeout) as e:
            up.outstanding -= 1
            up.mark_down(str(e) or type(e).__name__)
            return None
        except httpx.TimeoutException:
            up.outstanding -= 1
            return _error(504, f"upstream {up.url} did not answer in time", "timeout")
        except httpx.HTTPError as e:
            up.outstanding -= 1
            return _error(502, f"upstream {up.url} failed: {e}", "bad_gateway")
        request.scope.setdefault("state", {})[UPSTREAM_KEY] = up.url
        return _Relay(upstream, up)

    async def models(_: Request) -> JSONResponse:
        ids = sorted(pool.known_models())
        return JSONResponse({"object": "list", "data": [
            {"id": m, "object": "model", "owned_by": "inferledger-gateway"} for m in ids]})

    async def health(_: Request) -> JSONResponse:
        up = [u.url for u in pool.upstreams if u.healthy]
        return JSONResponse({"status": "ok" if up else "no upstream", "healthy_upstreams": up},
                            status_code=200 if up else 503)

    return Starlette(routes=[
        Route("/v1/chat/completions", relay, methods=["POST"]),
        Route("/v1/completions", relay, methods=["POST"]),
        Route("/v1/embeddings", relay, methods=["POST"]),
        Route("/v1/models", models, methods=["GET"]),
        Route("/health", health, methods=["GET"]),
    ], lifespan=lifespan)
