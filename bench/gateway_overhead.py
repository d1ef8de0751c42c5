"""Benchmark: what the tracing middleware and the gateway add to TTFT and end-to-end latency.

Three setups run side by side against simulated engine processes on one simulated H100:

1. an engine alone;
2. an engine with ``--middleware agents.tracing.InferLedgerMiddleware`` (spans exported to a
   real collector);
3. ``inferledger gateway`` in front of the engine of (1) (spans to the same collector).

The load (50 streaming chat completions of 64 tokens arriving evenly over a second, most of
them in flight together) runs in rounds; each
round runs every setup once, in an order that rotates from round to round, so neither order
nor warm-up decides. Each round gives each setup's ratio to the engine alone in that round;
the result is the median of those per-round ratios, with their spread (min–max), for p50
TTFT and e2e. The middleware's own cost per request is too small to see through an engine's
step times, so it is also measured directly: the same streamed response from a stub ASGI
app, called in-process with and without the middleware, p50 of the difference. The last
line is one JSON object.

    .venv/bin/python bench/gateway_overhead.py [--rounds 9] [--streams 50]
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
    p = subprocess.Popen([sys.executable, "-m", "commands", *args],
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


ARRIVALS_S = 1.0  # a round's requests arrive evenly over this long


async def _round(client: httpx.AsyncClient, url: str, streams: int) -> dict[str, float]:
    """p50 TTFT and e2e of ``streams`` requests arriving evenly over one second (the same
    schedule for every setup). All at one instant, the engine's first step takes however
    many happened to arrive before it, and a round's TTFT swings threefold with that."""
    async def later(k: int) -> tuple[float, float]:
        await asyncio.sleep(k * ARRIVALS_S / streams)
        return await _one(client, url)

    got = await asyncio.gather(*(later(k) for k in range(streams)))
    return {"ttft": statistics.median(t for t, _ in got),
            "e2e": statistics.median(e for _, e in got)}


# Each setup keeps its connections, as a client application's pool does; one left idle while
# the other setups run is dropped after 4 s, before uvicorn's 5 s keep-alive timeout can
# close it just as it is reused.
KEEP_ALIVE_S = 4.0


async def _rounds(urls: dict[str, str], rounds: int, streams: int) -> list[dict[str, dict]]:
    """Every setup once per round, the order rotating, after a warm-up round each."""
    limits = httpx.Limits(max_connections=None, keepalive_expiry=KEEP_ALIVE_S)
    clients = {name: httpx.AsyncClient(timeout=120, limits=limits) for name in urls}
    try:
        for name, url in urls.items():
            await _round(clients[name], url, streams)
        out = []
        for k in range(rounds):
            order = list(urls)[k % len(urls):] + list(urls)[:k % len(urls)]
            out.append({name: await _round(clients[name], urls[name], streams)
                        for name in order})
        return out
    finally:
        for c in clients.values():
            await c.aclose()


def _ratios(rounds: list[dict[str, dict]], name: str, key: str) -> dict[str, float]:
    r = sorted(x[name][key] / x["engine"][key] for x in rounds)
    return {"median": statistics.median(r), "min": r[0], "max": r[-1]}


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
    ap.add_argument("--rounds", type=int, default=9)
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

    with _proc(collector, c_http):
        p, m, g = _port(), _port(), _port()
        with _proc(engine(p, False), p) as direct, _proc(engine(m, True), m, env) as traced, \
                _proc(["gateway", "--listen", f"127.0.0.1:{g}", "--upstream", direct], g,
                      env) as proxied:
            rounds = asyncio.run(_rounds({"engine": direct, "middleware": traced,
                                          "gateway": proxied}, args.rounds, args.streams))
    ratios = {f"{name}_{key}": _ratios(rounds, name, key)
              for name in ("middleware", "gateway") for key in ("ttft", "e2e")}
    for name in ("engine", "middleware", "gateway"):
        ttft = statistics.median(x[name]["ttft"] for x in rounds)
        e2e = statistics.median(x[name]["e2e"] for x in rounds)
        line = f"{name:>10}: TTFT p50 {ttft * 1e3:7.1f} ms   e2e p50 {e2e * 1e3:7.1f} ms"
        if name != "engine":
            t, e = ratios[f"{name}_ttft"], ratios[f"{name}_e2e"]
            line += (f"   TTFT ×{t['median']:.3f} ({t['min']:.3f}–{t['max']:.3f})"
                     f"   e2e ×{e['median']:.3f} ({e['min']:.3f}–{e['max']:.3f})")
        print(line)
    print(f"(median over {args.rounds} rounds of each round's ratio to the engine alone, "
          "min–max in brackets)")
    added = middleware_added_us()
    print(f"middleware's own cost per streamed request (in-process, p50): {added:.0f} µs "
          f"(goal ≤ 100 µs)")
    print(json.dumps({
        **{f"{k}_ratio": round(v["median"], 4) for k, v in ratios.items()},
        **{f"{k}_ratio_min": round(v["min"], 4) for k, v in ratios.items()},
        **{f"{k}_ratio_max": round(v["max"], 4) for k, v in ratios.items()},
        "middleware_added_p50_us": round(added, 1),
        "streams": args.streams, "rounds": args.rounds,
        "machine": f"{platform.machine()} {os.cpu_count()} CPUs",
    }))


if __name__ == "__main__":
    main()
