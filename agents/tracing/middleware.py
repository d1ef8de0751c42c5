"""A pure ASGI middleware that gives every inference request one faithful span.

vLLM loads it with ``vllm serve MODEL --middleware agents.tracing.InferLedgerMiddleware``
(``app.add_middleware(cls)``, no arguments), so all settings come from the environment
(see :mod:`agents.tracing.config`). It never buffers a response: streamed bytes pass on as
complete SSE events arrive. It propagates W3C ``traceparent`` so vLLM's ``llm_request`` span
becomes its child, and never raises into the request: telemetry failures are logged only.
When the server reports its start-up complete (ASGI lifespan), it records the engine's
start-up, from the process start to ready, so analytics can book that GPU time as model
loading.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from dataclasses import dataclass, field
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import SpanKind, Status, StatusCode, set_span_in_context
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from agents.tracing.config import MiddlewareConfig
from agents.tracing.sse import SseTap
from inferledger.errors import UserError
from inferledger.otel import span_exporter

log = logging.getLogger("inferledger.middleware")

INFERENCE_ROUTES = {"/v1/chat/completions": "chat", "/v1/completions": "text_completion",
                    "/v1/embeddings": "embeddings"}
UPSTREAM_KEY = "inferledger.upstream"  # scope["state"]: the engine a gateway chose
_PROPAGATOR = TraceContextTextMapPropagator()
_MAX_JSON_BODY = 8 * 1024 * 1024


def process_started_at() -> float:
    """Wall-clock start of this process, from Linux /proc; vLLM loads the model after it."""
    with open("/proc/self/stat") as f:
        after_name = f.read().rsplit(")", 1)[1].split()
    with open("/proc/stat") as f:
        boot = next(float(line.split()[1]) for line in f if line.startswith("btime "))
    return boot + int(after_name[19]) / os.sysconf("SC_CLK_TCK")  # field 22: starttime


def _gpu_uuids(cfg: MiddlewareConfig) -> list[str]:
    """GPUs this server process uses: CUDA_VISIBLE_DEVICES resolved through NVML."""
    from agents.gpu import GpuError, open_backend, resolve_visible_devices

    if cfg.gpu_backend == "none":  # placed by the agent's process samples instead
        return []
    try:
        backend = open_backend(cfg.gpu_backend)
    except (GpuError, UserError) as e:
        log.warning("GPU placement unknown (%s); analytics will fall back to host/PID", e)
        return []
    try:
        return resolve_visible_devices(backend, os.environ.get("CUDA_VISIBLE_DEVICES"))
    finally:
        backend.close()


@dataclass
class _Exchange:
    """What the middleware learns about one request while it passes through."""

    started_at: float = field(default_factory=time.monotonic)
    status: int | None = None
    streaming: bool = False
    complete: bool = False
    disconnected: bool = False
    body: bytearray = field(default_factory=bytearray)
    tap: SseTap | None = None


def answer_attributes(headers: dict[str, str]) -> dict[str, Any]:
    """What ties a request to the answer it serves, from the caller's headers: an explicit
    answer id, a retry of the same work (``Idempotency-Key``, kept only as a hash, and the
    attempt number OpenAI's and Anthropic's SDKs send as ``X-Stainless-Retry-Count``), and
    how much of the prompt was the user's own or added context. Malformed counts are
    ignored, never an error: the request goes on."""
    attrs: dict[str, Any] = {}
    if answer := headers.get("x-inferledger-answer-id", "").strip()[:200]:
        attrs["inferledger.answer_id"] = answer
    if key := headers.get("idempotency-key", "").strip():
        attrs["inferledger.retry_key"] = hashlib.sha256(key.encode()).hexdigest()[:32]
    for header, name in (("x-stainless-retry-count", "inferledger.retry_attempt"),
                         ("x-inferledger-context-tokens", "inferledger.usage.context_tokens"),
                         ("x-inferledger-user-tokens", "inferledger.usage.user_tokens")):
        value = headers.get(header, "").strip()
        if value.isdigit():
            attrs[name] = int(value)
    return attrs


def keep_warnings_visible() -> None:
    """Print the middleware's warnings even where the host server silenced them: vLLM's API
    server sets the root logger to ERROR, which would hide a placement that fell back or a
    tenant key left at its default. Only then does it get its own handler on stderr."""
    if log.isEnabledFor(logging.WARNING):
        return
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.WARNING)
    log.propagate = False


class InferLedgerMiddleware:
    def __init__(self, app: Any, config: MiddlewareConfig | None = None,
                 tracer_provider: TracerProvider | None = None,
                 source: str = "middleware") -> None:
        """``source="gateway"``: in front of engines, not inside one, so the span names the
        upstream chosen and no host, PID or GPUs of its own (the engine's span places it)."""
        keep_warnings_visible()
        self.app = app
        self.cfg = config or MiddlewareConfig.from_env()
        self.source = source
        self.placement = {} if source == "gateway" else {
            "inferledger.host": self.cfg.host, "inferledger.pid": os.getpid(),
            "inferledger.gpu_uuids": _gpu_uuids(self.cfg)}
        if tracer_provider is None:
            resource = Resource.create({"service.name": f"inferledger-{source}",
                                        "host.name": self.cfg.host})
            tracer_provider = TracerProvider(resource=resource)
            tracer_provider.add_span_processor(
                BatchSpanProcessor(span_exporter(self.cfg.endpoint, self.cfg.protocol)))
        self.tracer_provider = tracer_provider
        self.tracer = tracer_provider.get_tracer("inferledger.middleware")

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan" and self.source == "middleware":  # an engine starting
            await self.app(scope, receive, self._watch_startup(send))
            return
        operation = INFERENCE_ROUTES.get(scope.get("path", ""))
        if scope["type"] != "http" or scope.get("method") != "POST" or operation is None:
            await self.app(scope, receive, send)
            return
        await self._traced(scope, receive, send, operation)

    def _watch_startup(self, send: Any) -> Any:
        async def wrapped_send(message: dict) -> None:
            if message["type"] == "lifespan.startup.complete":
                try:
                    self._record_startup()
                except (OSError, StopIteration, ValueError, IndexError) as e:
                    log.warning("engine start-up not recorded (no Linux /proc: %s)", e)
            await send(message)
        return wrapped_send

    def _record_startup(self) -> None:
        span = self.tracer.start_span("inferledger.engine.startup", kind=SpanKind.INTERNAL,
                                      start_time=int(process_started_at() * 1e9))
        span.set_attributes({"inferledger.span.source": "engine_startup", **self.placement})
        span.end()

    async def _read_body(self, receive: Any) -> tuple[bytes, bool]:
        chunks, more = [], True
        while more:
            msg = await receive()
            if msg["type"] == "http.disconnect":
                return b"".join(chunks), True
            chunks.append(msg.get("body", b""))
            more = msg.get("more_body", False)
        return b"".join(chunks), False

    async def _traced(self, scope: dict, receive: Any, send: Any, operation: str) -> None:
        ex = _Exchange()
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        body, gone = await self._read_body(receive)
        request, strip_usage = self._parse_request(body)
        if strip_usage:
            body = json.dumps(request).encode()
        model = request.get("model") if isinstance(request.get("model"), str) else None
        span = self.tracer.start_span(
            f"{operation} {model or ''}".strip(), kind=SpanKind.SERVER,
            context=_PROPAGATOR.extract(headers))
        ctx = span.get_span_context()  # random ids already: no second trip to the kernel
        request_key = headers.get("x-request-id") or f"{ctx.trace_id:032x}{ctx.span_id:016x}"
        span.set_attributes(self._request_attributes(headers, request, operation, scope))
        span.set_attribute("inferledger.request_id", request_key)
        carrier: dict[str, str] = {}
        _PROPAGATOR.inject(carrier, context=set_span_in_context(span))
        drop = {b"traceparent", b"tracestate", b"content-length", b"x-request-id"}
        new_headers = [(k, v) for k, v in scope["headers"] if k.lower() not in drop]
        new_headers += [(k.encode(), v.encode()) for k, v in carrier.items()]
        new_headers += [(b"content-length", str(len(body)).encode()),
                        (b"x-request-id", request_key.encode())]
        scope.setdefault("state", {})
        inner_scope = {**scope, "headers": new_headers}
        ex.tap = SseTap(strip_usage_chunk=strip_usage)
        ex.disconnected = gone
        body_sent = False

        async def wrapped_receive() -> dict:
            nonlocal body_sent
            if not body_sent:
                body_sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            msg = await receive()
            if msg["type"] == "http.disconnect" and not ex.complete:
                ex.disconnected = True
            return msg

        async def wrapped_send(message: dict) -> None:
            if message["type"] == "http.response.start":
                ex.status = message["status"]
                ctype = dict(message.get("headers") or []).get(b"content-type", b"")
                ex.streaming = ctype.startswith(b"text/event-stream")
            elif message["type"] == "http.response.body":
                chunk = message.get("body", b"")
                more = message.get("more_body", False)
                if ex.streaming:
                    chunk = ex.tap.feed(chunk) + (b"" if more else ex.tap.flush())
                    message = {**message, "body": chunk}
                elif len(ex.body) < _MAX_JSON_BODY:
                    ex.body += chunk
                if not more:
                    ex.complete = True
            try:
                await send(message)
            except OSError:
                ex.disconnected = True
                raise

        token = otel_context.attach(set_span_in_context(span))
        error: BaseException | None = None
        try:
            await self.app(inner_scope, wrapped_receive, wrapped_send)
        except BaseException as e:  # CancelledError included: the client went away
            error = e
            raise
        finally:
            otel_context.detach(token)
            try:
                self._finish(span, ex, error, scope["state"])
            except Exception:
                log.exception("could not record the inference span")

    def _parse_request(self, body: bytes) -> tuple[dict, bool]:
        """The JSON request, and whether we added ``stream_options.include_usage``."""
        try:
            request = json.loads(body) if body else {}
        except ValueError:
            return {}, False
        if not isinstance(request, dict):
            return {}, False
        opts = request.get("stream_options")
        asked = isinstance(opts, dict) and opts.get("include_usage", True) is not False
        if request.get("stream") is True and self.cfg.request_usage and not asked:
            request["stream_options"] = {**(opts if isinstance(opts, dict) else {}),
                                         "include_usage": True}
            return request, True
        return request, False

    def _request_attributes(self, headers: dict[str, str], request: dict, operation: str,
                            scope: dict) -> dict[str, Any]:
        tenant = headers.get(self.cfg.tenant_header)
        if not tenant:
            auth = headers.get("authorization", "")
            key = auth[7:].strip() if auth.lower().startswith("bearer ") else ""
            tenant = self.cfg.tenant_from_api_key(key) if key else "unknown"
        attrs: dict[str, Any] = {
            "inferledger.span.source": self.source,
            "gen_ai.operation.name": operation,
            "gen_ai.provider.name": "vllm",
            "http.request.method": "POST",
            "url.path": scope.get("path", ""),
            "inferledger.tenant": tenant,
            "inferledger.route": headers.get(self.cfg.route_header) or scope.get("path", ""),
            "inferledger.stream": request.get("stream") is True,
            **self.placement,
        }
        if isinstance(request.get("model"), str):
            attrs["gen_ai.request.model"] = request["model"]
        if isinstance(request.get("max_tokens"), int):
            attrs["gen_ai.request.max_tokens"] = request["max_tokens"]
        return attrs | answer_attributes(headers)

    def _finish(self, span: Any, ex: _Exchange, error: BaseException | None,
                state: dict) -> None:
        usage, finish, model = self._usage(ex, state)
        status = ex.status or 500
        # A stream is whole once [DONE] went out: clients often hang up right after it,
        # before the server's closing message, and that is no abort.
        finished = ex.complete or (ex.streaming and ex.tap.done)
        if finished:
            error = None
        if (ex.disconnected and not finished) or (error is not None and ex.status and
                                                status < 400):
            outcome = "client_abort"
        elif error is not None or (status >= 500 and status not in (503, 504)):
            outcome = "error"
        elif status in (429, 503):
            outcome = "rejected"
        elif status == 504:
            outcome = "timeout"
        elif status >= 400:
            outcome = "error"
        else:
            outcome = "ok"
        attrs: dict[str, Any] = {"http.response.status_code": status,
                                 "inferledger.outcome": outcome}
        if state.get(UPSTREAM_KEY):
            attrs[UPSTREAM_KEY] = state[UPSTREAM_KEY]
        if ex.streaming and ex.tap.first_token_at is not None:
            attrs["inferledger.ttft_s"] = ex.tap.first_token_at - ex.started_at
        if model:
            attrs["gen_ai.response.model"] = model
        if finish:
            attrs["gen_ai.response.finish_reasons"] = finish
        if usage:
            attrs["gen_ai.usage.input_tokens"] = int(usage.get("prompt_tokens") or 0)
            attrs["gen_ai.usage.output_tokens"] = int(usage.get("completion_tokens") or 0)
            cached = (usage.get("prompt_tokens_details") or {}).get("cached_tokens")
            if cached is not None:
                attrs["gen_ai.usage.cache_read.input_tokens"] = int(cached)
        elif ex.streaming and ex.tap.content_chunks:
            # No usage (e.g. aborted mid-stream): one chunk per token is vLLM's norm.
            attrs["gen_ai.usage.output_tokens"] = ex.tap.content_chunks
            attrs["inferledger.usage.estimated"] = True
        span.set_attributes(attrs)
        if outcome == "error":
            span.set_status(Status(StatusCode.ERROR, f"HTTP {status}"))
        span.end()

    @staticmethod
    def _usage(ex: _Exchange, state: dict) -> tuple[dict | None, list[str], str | None]:
        if ex.streaming:
            usage, finish, model = ex.tap.usage, ex.tap.finish_reasons, ex.tap.model
        else:
            usage, finish, model = None, [], None
            try:
                doc = json.loads(bytes(ex.body)) if ex.body else None
            except ValueError:
                doc = None
            if isinstance(doc, dict):
                usage = doc.get("usage") if isinstance(doc.get("usage"), dict) else None
                model = doc.get("model")
                finish = [str(c.get("finish_reason")) for c in doc.get("choices") or []
                          if isinstance(c, dict) and c.get("finish_reason")]
        meta = getattr(state.get("request_metadata"), "final_usage_info", None)
        if usage is None and meta is not None:  # vLLM's own record, where present
            usage = {"prompt_tokens": meta.prompt_tokens,
                     "completion_tokens": meta.completion_tokens}
        return usage, finish, model
