"""Synthetic clients: tenants and apps sending chat requests to the simulated engines.

Arrivals are Poisson; prompt and output lengths are lognormal per app; a share of requests
stream; a few are malformed or oversize (the engine answers 4xx) and a few streaming
clients hang up mid-answer, so every outcome the analytics must book shows up.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import math
import random
import time
from collections import Counter
from dataclasses import dataclass

import httpx

log = logging.getLogger("inferledger.sim.loadgen")


@dataclass(frozen=True)
class App:
    tenant: str
    name: str
    model: str
    weight: float
    prompt_median: int
    output_median: int
    stream_share: float


DEFAULT_APPS = (
    App("acme", "support-chat", "llama-3.1-8b-instruct", 0.45, 250, 160, 0.9),
    App("globex", "contract-rag", "qwen2.5-32b-instruct", 0.25, 1400, 140, 0.5),
    App("initech", "nightly-summaries", "llama-3.1-8b-instruct", 0.30, 700, 220, 0.0),
)
ERROR_SHARE = 0.03  # oversize or malformed requests
ABORT_SHARE = 0.05  # of streaming requests: the client hangs up mid-stream


def _lognormal(rng: random.Random, median: int, sigma: float = 0.6, cap: int = 6000) -> int:
    return max(1, min(cap, int(rng.lognormvariate(math.log(median), sigma))))


class LoadGenerator:
    def __init__(self, targets: dict[str, list[str]], *, rate_per_s: float = 2.0,
                 apps: tuple[App, ...] = DEFAULT_APPS, seed: int = 7,
                 max_in_flight: int = 64) -> None:
        missing = {a.model for a in apps} - set(targets)
        if missing:
            raise ValueError(f"no engine URL for model(s) {sorted(missing)}")
        self.targets = {m: itertools.cycle(urls) for m, urls in targets.items()}
        self.rate = rate_per_s
        self.apps = apps
        self.rng = random.Random(seed)
        self.sem = asyncio.Semaphore(max_in_flight)
        self.outcomes: Counter[str] = Counter()

    def _request(self) -> tuple[App, dict, str, int | None]:
        app = self.rng.choices(self.apps, weights=[a.weight for a in self.apps])[0]
        prompt_words = _lognormal(self.rng, app.prompt_median)
        body: dict = {
            "model": app.model,
            "messages": [{"role": "system", "content": "You are helpful."},
                         {"role": "user", "content": " ".join(["word"] * prompt_words)}],
            "max_tokens": _lognormal(self.rng, app.output_median, cap=1500),
            "temperature": 0.7,
        }
        kind = "normal"
        if self.rng.random() < ERROR_SHARE:
            if self.rng.random() < 0.5:
                body["max_tokens"] = 100_000  # beyond the context window: 400
            else:
                body["messages"] = "not a list"  # malformed: 400
            kind = "bad"
        stream = self.rng.random() < app.stream_share
        body["stream"] = stream
        abort_after = None
        if stream and kind == "normal" and self.rng.random() < ABORT_SHARE:
            abort_after = self.rng.randint(2, 20)
        return app, body, next(self.targets[app.model]), abort_after

    async def _one(self, client: httpx.AsyncClient) -> None:
        app, body, base, abort_after = self._request()
        headers = {"x-tenant": app.tenant, "x-route": app.name,
                   "authorization": f"Bearer sk-{app.tenant}-demo"}
        url = f"{base}/v1/chat/completions"
        try:
            if body["stream"]:
                async with client.stream("POST", url, json=body, headers=headers) as resp:
                    chunks = 0
                    async for line in resp.aiter_lines():
                        if line.startswith("data:"):
                            chunks += 1
                            if abort_after and chunks >= abort_after:
                                self.outcomes["client_abort"] += 1
                                return  # closing the stream hangs up on the server
                    self.outcomes[f"http_{resp.status_code}"] += 1
            else:
                resp = await client.post(url, json=body, headers=headers)
                self.outcomes[f"http_{resp.status_code}"] += 1
        except httpx.HTTPError as e:
            self.outcomes[type(e).__name__] += 1
        finally:
            self.sem.release()

    async def run(self, duration_s: float | None, stop: asyncio.Event | None = None) -> Counter:
        stop = stop or asyncio.Event()
        deadline = None if duration_s is None else time.monotonic() + duration_s
        tasks: set[asyncio.Task] = set()
        limits = httpx.Limits(max_connections=128, max_keepalive_connections=32)
        async with httpx.AsyncClient(timeout=httpx.Timeout(120.0), limits=limits) as client:
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
