"""Benchmark: what the tracing middleware and the gateway add to TTFT and end-to-end latency.

One run, the same load each time (50 concurrent streaming chat completions, 64 tokens each,
several rounds) against a simulated engine process:

1. the engine alone;
2. the engine with ``--middleware agents.tracing.InferLedgerMiddleware`` (spans exported to a
   real collector);
3. ``inferledger gateway`` in front of the engine alone (spans to the same collector).

Prints p50/p99 TTFT and e2e for each and the ratios to the engine alone. The middleware's own
cost per request is too small to see through an engine's step times, so it is also measured
directly: the same streamed response from a stub ASGI app, called in-process with and
without the middleware, p50 of the difference. The last line is one JSON object.

    .venv/bin/python bench/gateway_overhead.py [--rounds 6] [--streams 50]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
from starlette.types import ASGIApp, Receive, Send

from agents.tracing import InferLedgerMiddleware
from agents.tracing.config import MiddlewareConfig
from inferledger.procs import wait_for_port
from simulator.gpu_state import NodeGpus

MODEL = "llama-3.1-8b-instruct"


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def _proc(args: list[str], port: int, env: dict[str, str] | None = None) -> Iterator[str]:
    p = subprocess.Popen([sys.executable, "-m", "inferledger", *args],
                         env={**os.environ, **(env or {})},
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_port("127.0.0.1", port, 60)
        yield f"http://127.0.0.1:{port}"
    finally:
        p.send_signal(signal.SIGINT)
        p.wait(timeout=30)


async def _one(client: httpx.AsyncClient, url: str) -> tuple[float, float]:
    started = time.perf_counter()
    ttft = None
    async with client.stream("POST", f"{url}/v1/chat/completions", json={
            "model": MODEL, "messages": [{"role": "user", "content": "benchmark me"}],
            "max_tokens": 64, "stream": True}) as r:
        async for line in r.aiter_lines():
            if ttft is None and line.startswith("data: ") and '"content"' in line:
                ttft = time.perf_counter() - started
    return ttft or float("nan"), time.perf_counter() - started


async def _load(url: str, rounds: int, streams: int) -> dict:
    ttfts, e2es = [], []
    async with httpx.AsyncClient(timeout=120, limits=httpx.Limits(max_connections=None)) as c:
        await _one(c, url)  # warm-up
        for _ in range(rounds):
            for ttft, e2e in await asyncio.gather(*(_one(c, url) for _ in range(streams))):
                ttfts.append(ttft)
                e2es.append(e2e)
    q = statistics.quantiles
    return {"ttft_p50": statistics.median(ttfts), "ttft_p99": q(ttfts, n=100)[98],
            "e2e_p50": statistics.median(e2es), "e2e_p99": q(e2es, n=100)[98]}


def middleware_added_us(requests: int = 3000) -> float:
    """p50 of (with − without) for one streamed response from a stub app, in-process."""
    async def stub(scope: dict, receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/event-stream")]})
        for k in range(8):  # vLLM's chunk shape
            await send({"type": "http.response.body", "more_body": True, "body": (
                b'data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,'
                b'"model":"m","choices":[{"index":0,"delta":{"content":"t%d"},'
                b'"logprobs":null,"finish_reason":null}]}\n\n' % k)})
        await send({"type": "http.response.body", "more_body": True, "body":
                    b'data: {"choices":[],"usage":{"prompt_tokens":5,"completion_tokens":8}}'
                    b"\n\ndata: [DONE]\n\n"})
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    tp = TracerProvider()
    tp.add_span_processor(BatchSpanProcessor(InMemorySpanExporter(), max_queue_size=2 * requests))
    traced = InferLedgerMiddleware(stub, MiddlewareConfig(host="bench", gpu_backend="none"),
                                   tracer_provider=tp)
    body = json.dumps({"model": MODEL, "stream": True,
                       "messages": [{"role": "user", "content": "hi"}]}).encode()
    scope = {"type": "http", "method": "POST", "path": "/v1/chat/completions",
             "headers": [(b"content-type", b"application/json"),
                         (b"authorization", b"Bearer sk-bench")]}

    async def call(app: ASGIApp) -> float:
        sent = False

        async def receive() -> dict:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            await asyncio.sleep(3600)
            return {"type": "http.disconnect"}

        async def send(_: dict) -> None:
            return None

        t = time.perf_counter()
        await app(dict(scope), receive, send)
        return time.perf_counter() - t

    async def measure() -> float:
        diffs = []
        for _ in range(requests):
            diffs.append(await call(traced) - await call(stub))
        return statistics.median(diffs) * 1e6

    added = asyncio.run(measure())
    tp.shutdown()
    return added


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--streams", type=int, default=50)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="gw-bench-"))
    state = tmp / "node.gpus"
    NodeGpus.create(state, "bench", ["h100"]).close()
    c_http, c_grpc = _port(), _port()
    collector = ["collector", "--data", str(tmp / "data"), "--http-port", str(c_http),
                 "--grpc-port", str(c_grpc)]
    env = {"INFERLEDGER_OTLP_ENDPOINT": f"http://127.0.0.1:{c_http}",
           "INFERLEDGER_GPU_BACKEND": f"sim:{state}", "INFERLEDGER_TENANT_HASH_KEY": "bench",
           "CUDA_VISIBLE_DEVICES": "0"}

    def engine(port: int, middleware: bool) -> list[str]:
        return ["sim", "engine", "--state", str(state), "--model", MODEL, "--port", str(port),
                "--load-s", "0", "--seed", "1"] + (
            ["--middleware", "agents.tracing.InferLedgerMiddleware"] if middleware else [])

    results = {}
    with _proc(collector, c_http):
        p = _port()
        with _proc(engine(p, False), p) as url:
            results["engine"] = asyncio.run(_load(url, args.rounds, args.streams))
        p = _port()
        with _proc(engine(p, True), p, env) as url:
            results["middleware"] = asyncio.run(_load(url, args.rounds, args.streams))
        p, g = _port(), _port()
        with _proc(engine(p, False), p) as up, _proc(
                ["gateway", "--listen", f"127.0.0.1:{g}", "--upstream", up], g, env) as url:
            results["gateway"] = asyncio.run(_load(url, args.rounds, args.streams))
    base = results["engine"]
    for name, r in results.items():
        print(f"{name:>10}: TTFT p50 {r['ttft_p50'] * 1e3:7.1f} ms  p99 {r['ttft_p99'] * 1e3:7.1f}"
              f" ms   e2e p50 {r['e2e_p50'] * 1e3:7.1f} ms  p99 {r['e2e_p99'] * 1e3:7.1f} ms   "
              f"TTFT ×{r['ttft_p50'] / base['ttft_p50']:.3f}  e2e ×"
              f"{r['e2e_p50'] / base['e2e_p50']:.3f}")
    added = middleware_added_us()
    print(f"middleware's own cost per streamed request (in-process, p50): {added:.0f} µs "
          f"(goal ≤ 100 µs)")
    gw, mw = results["gateway"], results["middleware"]
    print(json.dumps({
        "gateway_ttft_ratio": round(gw["ttft_p50"] / base["ttft_p50"], 4),
        "gateway_e2e_ratio": round(gw["e2e_p50"] / base["e2e_p50"], 4),
        "gateway_ttft_p99_ratio": round(gw["ttft_p99"] / base["ttft_p99"], 4),
        "middleware_ttft_ratio": round(mw["ttft_p50"] / base["ttft_p50"], 4),
        "middleware_e2e_ratio": round(mw["e2e_p50"] / base["e2e_p50"], 4),
        "middleware_added_p50_us": round(added, 1),
        "streams": args.streams, "requests_each": args.rounds * args.streams,
        "machine": f"{platform.machine()} {os.cpu_count()} CPUs",
    }))


if __name__ == "__main__":
    main()
