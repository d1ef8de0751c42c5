"""Synthetic clients: a scenario's apps sending live traffic to the simulated engines.

Arrivals are Poisson at ``--rate`` in total, shared among the apps in proportion to each
one's rate at this hour of the day (its daily shape, or its batch window); lengths, streaming,
hang-ups and bad requests are drawn per app as the history generator draws them
(:mod:`simulator.arrivals`). Each app calls its own route: chat, text completions
(summaries) or embeddings. A RAG app first runs a retrieval step (saying how many prompt tokens
it added) under its own root span and passes ``traceparent`` on, so the request's trace shows
where the time went; an agent app runs several LLM steps under its root span with a tool call
between two, each step's prompt growing by the last reply and the tool's output. A client with
a ``timeout_s`` hangs up when it passes and, with ``retries``, tries again with the same
``Idempotency-Key`` (and ``X-Stainless-Retry-Count``, as OpenAI's SDK sends it).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import random
import secrets
import signal
import time
from collections import Counter
from dataclasses import replace
from typing import Any

import httpx
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import SpanKind
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from inferledger.errors import UserError
from inferledger.otel import span_exporter
from simulator import SIMULATED_RESOURCE
from simulator.arrivals import draw_request, hourly_share, lognormal
from simulator.engine.profiles import MODEL_PROFILES
from simulator.scenario import App

log = logging.getLogger("inferledger.sim.loadgen")
_PROPAGATOR = TraceContextTextMapPropagator()


def _body(app: App, prompt_tokens: int, max_tokens: int, stream: bool, bad: bool,
          rng: random.Random) -> dict[str, Any]:
    text = " ".join(["word"] * prompt_tokens)
    body: dict[str, Any] = {"model": app.model}
    if app.operation == "embeddings":
        body["input"] = text
    elif app.operation == "text_completion":
        body |= {"prompt": text, "max_tokens": max_tokens, "stream": stream}
    else:
        body |= {"messages": [{"role": "system", "content": "You are helpful."},
                              {"role": "user", "content": text}],
                 "max_tokens": max_tokens, "temperature": 0.7, "stream": stream}
    if bad:
        if app.operation != "embeddings" and rng.random() < 0.5:
            body["max_tokens"] = 100_000  # beyond the context window: 400
        else:  # malformed: 400
            body[{"embeddings": "input", "text_completion": "prompt"}.get(app.operation,
                                                                          "messages")] = 42
    return body


class LoadGenerator:
    def __init__(self, targets: dict[str, list[str]], apps: tuple[App, ...], *,
                 rate_per_s: float = 2.0, seed: int = 7, max_in_flight: int = 64,
                 tracer_provider: TracerProvider | None = None) -> None:
        missing = {a.model for a in apps} - set(targets)
        if missing:
            raise UserError(f"no engine URL for model(s) {sorted(missing)}")
        self.targets = {m: itertools.cycle(urls) for m, urls in targets.items()}
        self.rate = rate_per_s
        self.apps = apps
        self.rng = random.Random(seed)
        self.sem = asyncio.Semaphore(max_in_flight)
        self.outcomes: Counter[str] = Counter()
        self.tracer = tracer_provider.get_tracer("inferledger.sim.app") if tracer_provider else None

    def pick_app(self, now: float) -> App:
        """An app, weighted by its rate at ``now``; at an hour when none runs, by peak rate."""
        weights = [a.peak_per_min * hourly_share(a, now) for a in self.apps]
        if not any(weights):
            weights = [a.peak_per_min for a in self.apps]
        return self.rng.choices(self.apps, weights=weights)[0]

    async def _one(self, client: httpx.AsyncClient) -> None:
        """One answer of an app: traced under the app's own root span when it has one."""
        app = self.pick_app(time.time())
        try:
            if app.has_root_span and self.tracer is not None:
                agent = app.kind == "agent"
                attrs = {"inferledger.tenant": app.tenant} | (
                    {"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": app.name}
                    if agent else {})
                with self.tracer.start_as_current_span(
                        f"invoke_agent {app.name}" if agent else f"{app.name} answer",
                        kind=SpanKind.SERVER, attributes=attrs):
                    await self._answer(client, app)
            else:
                await self._answer(client, app)
        except httpx.HTTPError as e:
            self.outcomes[type(e).__name__] += 1
        finally:
            self.sem.release()

    async def _step(self, name: str, seconds: float, attrs: dict[str, Any]) -> None:
        """An app's own step (retrieval, a tool call): a span if it traces, else a pause."""
        if self.tracer is None:
            await asyncio.sleep(seconds)
            return
        with self.tracer.start_as_current_span(name, kind=SpanKind.CLIENT, attributes=attrs):
            await asyncio.sleep(seconds)

    async def _answer(self, client: httpx.AsyncClient, app: App) -> None:
        """A RAG app retrieves, then asks; an agent asks, calls a tool, asks again with what
        the tool returned, step after step; each request retried as the app's client does."""
        max_len = MODEL_PROFILES[app.model].max_model_len
        d = draw_request(app, self.rng, max_len)
        if app.retrieval_ms:
            await self._step("retrieval", lognormal(self.rng, app.retrieval_ms, 10_000) / 1000,
                             {"db.system.name": "qdrant", "db.operation.name": "query",
                              "inferledger.context_tokens": round(d.prompt_tokens
                                                                  * app.context_share)})
        user, prompt = d.prompt_tokens, d.prompt_tokens
        for step in range(lognormal(self.rng, app.steps, 12) if app.steps else 1):
            if step:
                await self._step("execute_tool search",
                                 lognormal(self.rng, app.tool_ms, 60_000) / 1000,
                                 {"gen_ai.operation.name": "execute_tool",
                                  "gen_ai.tool.name": "search"})
                prompt = min(prompt + d.output_tokens
                             + lognormal(self.rng, app.tool_tokens, max_len), max_len - 16)
                d = draw_request(app, self.rng, max_len)
                d = replace(d, max_tokens=max(1, min(d.max_tokens, max_len - prompt)))
            said = {"x-inferledger-user-tokens": str(user)} if app.kind == "agent" else {}
            if not await self._attempts(client, app, d, prompt, said):
                return  # the answer failed: an agent stops there

    async def _attempts(self, client: httpx.AsyncClient, app: App, d: Any, prompt: int,
                        said: dict[str, str]) -> bool:
        """Send one request, and again (same Idempotency-Key) after a time-out or a 503, up
        to the app's retries; True once it succeeded."""
        key = secrets.token_hex(16) if app.retries else None
        url = f"{next(self.targets[app.model])}{app.path}"
        for attempt in range(1 + app.retries):
            if attempt:
                self.outcomes["retry"] += 1
                await asyncio.sleep(app.retry_backoff_s * 2 ** (attempt - 1))
            body = _body(app, prompt, d.max_tokens, d.stream, d.bad, self.rng)
            headers = {"x-tenant": app.tenant, "x-route": app.name,
                       "authorization": f"Bearer sk-{app.tenant}-demo",
                       "x-stainless-retry-count": str(attempt), **said}
            if key:
                headers["idempotency-key"] = key
            _PROPAGATOR.inject(headers)
            try:
                status = await self._send(client, url, body, headers, d.abort_after,
                                          app.timeout_s)
            except httpx.TimeoutException:
                self.outcomes["client_timeout"] += 1
                continue
            if status != 503:
                return status == 200
        return False

    async def _send(self, client: httpx.AsyncClient, url: str, body: dict, headers: dict,
                    abort_after: int | None, timeout_s: float | None) -> int:
        timeout = httpx.Timeout(timeout_s or 120.0)
        if not body.get("stream"):
            resp = await client.post(url, json=body, headers=headers, timeout=timeout)
            self.outcomes[f"http_{resp.status_code}"] += 1
            return resp.status_code
        async with client.stream("POST", url, json=body, headers=headers,
                                 timeout=timeout) as resp:
            chunks = 0
            async for line in resp.aiter_lines():
                if line.startswith("data:"):
                    chunks += 1
                    if abort_after and chunks >= abort_after:
                        self.outcomes["client_abort"] += 1
                        return resp.status_code  # closing the stream hangs up on the server
            self.outcomes[f"http_{resp.status_code}"] += 1
            return resp.status_code

    async def run(self, duration_s: float | None, stop: asyncio.Event | None = None) -> Counter:
        stop = stop or asyncio.Event()
        deadline = None if duration_s is None else time.monotonic() + duration_s
        tasks: set[asyncio.Task] = set()
        limits = httpx.Limits(max_connections=128, max_keepalive_connections=32)
        async with httpx.AsyncClient(limits=limits) as client:
            while not stop.is_set() and (deadline is None or time.monotonic() < deadline):
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(stop.wait(), self.rng.expovariate(self.rate))
                if stop.is_set():
                    break
                await self.sem.acquire()
                task = asyncio.create_task(self._one(client))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
            if tasks:  # let answers in flight finish briefly, then hang up on the rest
                _, pending = await asyncio.wait(tasks, timeout=5)
                for t in pending:
                    t.cancel()
                await asyncio.gather(*pending, return_exceptions=True)
        log.info("load generator done: %s", dict(self.outcomes))
        return self.outcomes


def run_loadgen(targets: dict[str, list[str]], apps: tuple[App, ...], *, rate_per_s: float,
                duration_s: float | None, seed: int | None,
                otlp_endpoint: str | None = None) -> Counter:
    """Send the apps' traffic until ``duration_s`` passes or SIGINT/SIGTERM; with
    ``otlp_endpoint`` (OTLP/HTTP) the apps trace their own steps, as instrumented apps do."""
    provider = None
    if otlp_endpoint:
        provider = TracerProvider(resource=Resource.create({
            "service.name": "inferledger-sim-apps", **SIMULATED_RESOURCE}))
        provider.add_span_processor(BatchSpanProcessor(
            span_exporter(otlp_endpoint, "http/protobuf")))

    async def main() -> Counter:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        return await LoadGenerator(targets, apps, rate_per_s=rate_per_s, seed=seed,
                                   tracer_provider=provider).run(duration_s, stop)

    try:
        return asyncio.run(main())
    finally:
        if provider is not None:
            provider.shutdown()
