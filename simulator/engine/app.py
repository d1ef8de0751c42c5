"""The simulated engine's OpenAI-compatible server, shaped like vLLM's.

Routes: ``POST /v1/chat/completions`` and ``/v1/completions`` (streaming with the final
usage chunk, and not), ``POST /v1/embeddings`` (a prefill-only pass), ``GET /v1/models``,
``GET /health``, ``GET /metrics`` (vLLM V1 names). Errors use vLLM's body (``object:
error``). Tokens are whitespace-separated words of the prompt; output text is filler words,
since only shapes and timings matter here.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import json
import random
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from opentelemetry.sdk.trace import TracerProvider

from simulator.engine.core import EngineCore, QueueFull, SimRequest
from simulator.engine.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from simulator.engine.metrics import exposition
from simulator.engine.tracing import emit_llm_request_span

_WORDS = ("the", "cost", "of", "a", "token", "is", "measured", "on", "gpu", "time", "and",
          "energy", "per", "request", "batch", "shares")
TRACE_HEADERS = ("traceparent", "tracestate")
EMBEDDING_DIM = 256


def _error(status: int, message: str, kind: str) -> JSONResponse:
    return JSONResponse({"object": "error", "message": message, "type": kind,
                         "param": None, "code": status}, status_code=status)


def count_prompt_tokens(messages: Any) -> int:
    if not isinstance(messages, list) or not messages:
        raise ValueError("messages must be a non-empty list")
    total = 0
    for m in messages:
        content = m.get("content") if isinstance(m, dict) else None
        if not isinstance(content, str):
            raise ValueError("each message needs string content")
        total += len(content.split()) + 4  # chat-template overhead per message
    return total


def count_text_tokens(prompt: Any) -> int:
    """Tokens of a completion prompt or embedding input: a string or a list of strings."""
    texts = [prompt] if isinstance(prompt, str) else prompt
    if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
        raise ValueError("the prompt must be a string or a non-empty list of strings")
    return sum(len(t.split()) + 1 for t in texts)


def _request(request: Request, prefix: str, prompt: int, max_tokens: int, target: int,
             sampling: dict[str, Any]) -> SimRequest:
    base_id = request.headers.get("x-request-id") or uuid.uuid4().hex
    return SimRequest(
        request_id=f"{prefix}-{base_id}", prompt_tokens=prompt, max_tokens=max_tokens,
        target_tokens=target,
        trace_headers={h: request.headers[h] for h in TRACE_HEADERS if h in request.headers},
        sampling=sampling | {"max_tokens": max_tokens})


async def _finished(core: EngineCore, req: SimRequest) -> None:
    """Wait for a non-streamed request; a client that leaves aborts it (as vLLM does)."""
    try:
        while not await req.out.get():
            pass
    except asyncio.CancelledError:
        core.abort(req)
        raise


def _usage(req: SimRequest) -> dict[str, int]:
    return {"prompt_tokens": req.prompt_tokens, "completion_tokens": req.generated,
            "total_tokens": req.prompt_tokens + req.generated}


def build_app(core: EngineCore, served_model: str, tracer_provider: TracerProvider | None,
              middleware: list[str] = (), seed: int | None = None) -> FastAPI:
    rng = random.Random(seed)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        task = asyncio.create_task(core.run())
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    app = FastAPI(lifespan=lifespan)
    if tracer_provider is not None:
        core.on_finish = lambda r: emit_llm_request_span(tracer_provider, r)

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/metrics")
    async def metrics() -> Response:
        return Response(exposition(core, served_model), media_type=METRICS_CONTENT_TYPE)

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        return {"object": "list", "data": [{"id": served_model, "object": "model",
                                            "owned_by": "vllm",
                                            "max_model_len": core.profile.max_model_len}]}

    async def read(request: Request) -> dict | JSONResponse:
        """The JSON body for this model, or vLLM's error."""
        try:
            body = await request.json()
        except ValueError:
            return _error(400, "request body is not valid JSON", "BadRequestError")
        if not isinstance(body, dict) or body.get("model") != served_model:
            model = body.get("model") if isinstance(body, dict) else None
            return _error(404, f"The model `{model}` does not exist.", "NotFoundError")
        return body

    async def complete(request: Request, kind: str) -> Any:
        """Chat (``kind="chat"``) or text completion, streamed or not, through the engine."""
        body = await read(request)
        if isinstance(body, JSONResponse):
            return body
        try:
            prompt = (count_prompt_tokens(body.get("messages")) if kind == "chat"
                      else count_text_tokens(body.get("prompt")))
            max_tokens = int(body.get("max_tokens") or (256 if kind == "chat" else 16))
        except (ValueError, TypeError) as e:
            return _error(400, str(e), "BadRequestError")
        if max_tokens < 1:
            return _error(400, "max_tokens must be at least 1", "BadRequestError")
        if prompt + max_tokens > core.profile.max_model_len:
            return _error(400, f"This model's maximum context length is "
                          f"{core.profile.max_model_len} tokens. However, you requested "
                          f"{prompt + max_tokens} tokens.", "BadRequestError")
        # Most replies end on their own before max_tokens, as real ones do.
        target = (max_tokens if rng.random() < 0.3
                  else max(1, int(max_tokens * rng.uniform(0.5, 1))))
        req = _request(request, "chatcmpl" if kind == "chat" else "cmpl", prompt, max_tokens,
                       target, {k: body.get(k) for k in ("top_p", "temperature", "n")})
        try:
            core.add(req)
        except QueueFull as e:
            return _error(503, f"server overloaded: {e}", "ServiceUnavailableError")
        created = int(time.time())
        opts = body.get("stream_options") or {}
        if body.get("stream"):
            # vLLM: usage only when stream_options is sent (include_usage defaults to true).
            include_usage = ("stream_options" in body and isinstance(opts, dict)
                             and opts.get("include_usage", True) is not False)
            return StreamingResponse(
                _stream(core, req, served_model, created, include_usage, rng, kind),
                media_type="text/event-stream")
        await _finished(core, req)
        text = " ".join(rng.choice(_WORDS) for _ in range(req.generated))
        choice = ({"index": 0, "message": {"role": "assistant", "content": text}}
                  if kind == "chat" else {"index": 0, "text": text, "logprobs": None})
        return {
            "id": req.request_id, "created": created, "model": served_model,
            "object": "chat.completion" if kind == "chat" else "text_completion",
            "choices": [{**choice, "finish_reason": req.finish_reason}],
            "usage": _usage(req),
        }

    @app.post("/v1/chat/completions")
    async def chat(request: Request) -> Any:
        return await complete(request, "chat")

    @app.post("/v1/completions")
    async def completions(request: Request) -> Any:
        return await complete(request, "text")

    @app.post("/v1/embeddings")
    async def embeddings(request: Request) -> Any:
        """A pooling pass: the prompt's prefill through the engine, one vector per input."""
        body = await read(request)
        if isinstance(body, JSONResponse):
            return body
        inputs = body.get("input")
        inputs = [inputs] if isinstance(inputs, str) else inputs
        try:
            prompt = count_text_tokens(inputs)
        except ValueError as e:
            return _error(400, str(e), "BadRequestError")
        req = _request(request, "embd", prompt, 1, 1, {})
        try:
            core.add(req)
        except QueueFull as e:
            return _error(503, f"server overloaded: {e}", "ServiceUnavailableError")
        await _finished(core, req)
        return {"id": req.request_id, "object": "list", "model": served_model,
                "data": [{"object": "embedding", "index": i,
                          "embedding": [rng.uniform(-1, 1) for _ in range(EMBEDDING_DIM)]}
                         for i in range(len(inputs))],
                "usage": {"prompt_tokens": prompt, "total_tokens": prompt}}

    for path in middleware:
        # Exactly how vLLM's build_app applies --middleware: import path split at the last dot, a
        # class added with add_middleware (no arguments), a function as an HTTP middleware.
        module_path, name = path.rsplit(".", 1)
        obj = getattr(importlib.import_module(module_path), name)
        if isinstance(obj, type):
            app.add_middleware(obj)
        elif asyncio.iscoroutinefunction(obj):
            app.middleware("http")(obj)
        else:
            raise ValueError(f"Invalid middleware {path}. Must be a function or a class.")
    return app


async def _stream(core: EngineCore, req: SimRequest, model: str, created: int,
                  include_usage: bool, rng: random.Random, kind: str) -> AsyncIterator[str]:
    """vLLM's SSE chunks: ``chat.completion.chunk`` deltas, or ``text_completion`` text."""
    head = {"id": req.request_id, "created": created, "model": model,
            "object": "chat.completion.chunk" if kind == "chat" else "text_completion"}
    try:
        first = True
        while True:
            done = await req.out.get()
            word = " " + rng.choice(_WORDS)
            if kind == "chat":
                choice = {"delta": {"role": "assistant", "content": word} if first
                          else {"content": word}}
            else:
                choice = {"text": word}
            first = False
            yield "data: " + json.dumps({**head, "choices": [{
                "index": 0, **choice, "logprobs": None,
                "finish_reason": req.finish_reason if done else None}]}) + "\n\n"
            if done:
                break
        if include_usage:
            yield "data: " + json.dumps({**head, "choices": [], "usage": _usage(req)}) + "\n\n"
        yield "data: [DONE]\n\n"
    finally:
        if req.finish_reason is None:
            core.abort(req)
