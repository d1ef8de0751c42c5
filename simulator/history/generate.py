"""``inferledger sim history``: days of a scenario's fleet, generated on a virtual clock and
sent through the real OTLP/HTTP path (the SDK's exporters) into the collector.

Order of work: draw every app's arrivals and request lengths; split each model's traffic
over its replicas (round robin, as a gateway spreads it); run each engine's batching model
(:mod:`simulator.history.batching`); then send, hour by hour in time order, the GPU samples
(one per GPU per minute, as an agent sampling every 60 s would) and the spans of the requests
that arrived in that hour. Each POST waits for the collector's acknowledgement (given only when
the batch is durable), so a collector under load slows the generator down instead of losing
data; back-pressure answers (429/503) are retried.
"""

from __future__ import annotations

import logging
import math
import random
import time
from bisect import bisect_right
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any

import httpx
import numpy as np

from inferledger.errors import UserError
from simulator.arrivals import arrival_times, draw_request, lognormal
from simulator.engine.profiles import MODEL_PROFILES
from simulator.gpu_models import GPU_MODELS
from simulator.gpu_state import sim_uuid
from simulator.history.batching import BIN_S, Bins, FluidEngine, Requests, Truth
from simulator.history.telemetry import (
    Engine,
    GpuReading,
    Reply,
    SpanBatch,
    SpanFactory,
    Trace,
    gpu_metrics,
)
from simulator.scenario import App, Scenario

log = logging.getLogger("inferledger.sim.history")
LOAD_S = 90.0  # each engine loads its model at the start of the history
SPAN_BATCH = 8192
READINGS_PER_POST = 900  # GPU readings per GPU in one metrics POST
HISTORY_PID_BASE = 3_000_000  # above any live PID on a default Linux (pid_max 4194304)


@dataclass
class HistoryStats:
    days: float
    gpus: int
    requests: int = 0
    spans: int = 0
    points: int = 0
    wall_s: float = 0.0

    @property
    def simulated_days_per_minute(self) -> float:
        return self.days / (self.wall_s / 60) if self.wall_s else 0.0

    def describe(self) -> str:
        return (f"{self.days:g} simulated day(s) of {self.gpus} GPUs: {self.requests:,} requests, "
                f"{self.spans:,} spans, {self.points:,} GPU metric points in "
                f"{self.wall_s:.0f} s ({self.simulated_days_per_minute:.2f} days per minute, "
                f"{self.spans / max(self.wall_s, 1e-9):,.0f} spans/s)")


def report_progress(every: float = 0.1) -> Callable[[HistoryStats, float], None]:
    """A progress callback that logs every ``every`` of the way."""
    last = [0.0]

    def report(stats: HistoryStats, done: float) -> None:
        if done - last[0] >= every or done >= 1.0:
            last[0] = done
            log.info("history %3.0f%%: %s requests sent in %.0f s", done * 100,
                     f"{stats.requests:,}", stats.wall_s)
    return report


@dataclass
class _Answer:
    """One answer of an app: its requests (the steps and their retries) are slots of its
    engine's traffic; the app traces it under a root span when it has one."""

    app: int
    start: float
    retrieval_s: float = 0.0
    context_tokens: int = 0  # what the retrieval added to the prompt (RAG)
    user_tokens: int = 0  # the user's own prompt (agents say it on every step)


@dataclass
class _Traffic:
    """One engine's requests before they are served (the well-formed ones) and its bad ones.
    A slot with a NaN arrival depends on another (``Requests.on_ok``/``on_fail``)."""

    engine: Engine
    apps: list[App]
    bad: list[tuple[float, int]] = field(default_factory=list)  # (arrival, app index)
    answers: list[_Answer] = field(default_factory=list)
    cols: dict[str, list] = field(default_factory=lambda: {c: [] for c in _SLOT})
    # each answer's slots once served (set by _serve): a scan per answer would make sending
    # quadratic in the window's requests (a month of fleet-16 is 7.9 M)
    slots_of: dict[int, list[int]] = field(default_factory=dict)

    def add(self, **slot: Any) -> int:
        for c in _SLOT:
            self.cols[c].append(slot[c])
        return len(self.cols["arrival"]) - 1

    def __len__(self) -> int:
        return len(self.cols["arrival"])


# A slot's columns: its answer, its step and attempt, what it triggers, and its lengths.
_SLOT = ("answer", "step", "attempt", "retry_key", "arrival", "prompt", "output",
         "stop_after", "deadline", "max_tokens", "stream", "on_ok", "on_fail", "delay",
         "patience")


def fleet_engines(scenario: Scenario) -> list[Engine]:
    engines = []
    for node in scenario.nodes:
        for e in node.engines:
            gpu = GPU_MODELS[node.gpus[e.gpus[0]]]
            engines.append(Engine(node.name, e.model, tuple(sim_uuid(node.name, i) for i in e.gpus),
                                  gpu, HISTORY_PID_BASE + len(engines)))
    return engines


def _draw(scenario: Scenario, engines: list[Engine], start: float, end: float,
          rng: random.Random) -> list[_Traffic]:
    """Every app's answers: a RAG answer's retrieval then its request, an agent's steps with
    a tool call between two, each request retried after a time-out as its client would."""
    traffic = [_Traffic(e, list(scenario.apps)) for e in engines]
    for a_idx, app in enumerate(scenario.apps):
        replicas = [t for t in traffic if t.engine.model == app.model]
        max_len = MODEL_PROFILES[app.model].max_model_len
        for n, t0 in enumerate(arrival_times(app, start, end, rng).tolist()):
            tr = replicas[n % len(replicas)]  # an answer's requests stay on its replica
            d = draw_request(app, rng, max_len)
            retrieval = lognormal(rng, app.retrieval_ms, 10_000) / 1000 if app.retrieval_ms else 0.0
            if d.bad:
                tr.bad.append((t0 + retrieval, a_idx))
                continue
            ans = _Answer(a_idx, t0, retrieval, round(d.prompt_tokens * app.context_share),
                          d.prompt_tokens)
            tr.answers.append(ans)
            steps = lognormal(rng, app.steps, 12) if app.steps else 1
            prompt, arrive, after = d.prompt_tokens, t0 + retrieval, -1
            for step in range(steps):
                if step:  # the agent's context so far: prompt, reply, and the tool's output
                    prompt = min(prompt + d.output_tokens
                                 + lognormal(rng, app.tool_tokens, max_len), max_len - 16)
                    d = draw_request(app, rng, max_len)
                    room = max_len - prompt
                    d = replace(d, max_tokens=min(d.max_tokens, room),
                                output_tokens=min(d.output_tokens, room))
                key = f"{rng.getrandbits(64):016x}" if app.retries else None
                first = -1
                for attempt in range(1 + app.retries):
                    if attempt:  # the same prompt; sampled again, the reply has its own length
                        again = draw_request(app, rng, max_len)
                        room = max_len - prompt
                        d = replace(d, max_tokens=min(again.max_tokens, room),
                                    output_tokens=min(again.output_tokens, room))
                    slot = tr.add(
                        answer=len(tr.answers) - 1, step=step, attempt=attempt, retry_key=key,
                        arrival=arrive if step == 0 and attempt == 0 else math.nan,
                        prompt=prompt, output=d.output_tokens,
                        stop_after=d.abort_after if d.abort_after is not None else 1 << 30,
                        deadline=(arrive + app.timeout_s if app.timeout_s else math.inf)
                        if step == 0 and attempt == 0 else math.inf,
                        max_tokens=d.max_tokens, stream=d.stream, on_ok=-1, on_fail=-1,
                        delay=app.retry_backoff_s * 2 ** (attempt - 1) if attempt else (
                            lognormal(rng, app.tool_ms, 60_000) / 1000 if step else 0.0),
                        patience=app.timeout_s or math.inf)
                    if attempt == 0:
                        first = slot
                    else:
                        tr.cols["on_fail"][slot - 1] = slot
                # every attempt of the previous step that succeeds triggers this step
                for prev in _attempts_of(tr, after):
                    tr.cols["on_ok"][prev] = first
                after = first
    return traffic


def _attempts_of(tr: _Traffic, first: int) -> list[int]:
    """The attempts of the step whose first attempt is slot ``first``."""
    if first < 0:
        return []
    out, j = [first], first
    while tr.cols["on_fail"][j] >= 0:
        j = tr.cols["on_fail"][j]
        out.append(j)
    return out


def _serve(tr: _Traffic, start: float, n_bins: int, bin_s: float = BIN_S,
           truth: list[Truth] | None = None) -> tuple[Requests, Bins]:
    """Serve the engine's slots; then keep the requests that happened, in arrival order
    (``tr.cols`` and the returned requests alike)."""
    c = {k: np.asarray(v) for k, v in tr.cols.items()}
    n = len(tr)
    req = Requests(c["arrival"].astype(float) if n else np.zeros(0),
                   c["prompt"].astype(np.int64) if n else np.zeros(0, np.int64),
                   c["output"].astype(np.int64) if n else np.zeros(0, np.int64),
                   c["stop_after"].astype(np.int64) if n else np.zeros(0, np.int64),
                   c["deadline"].astype(float) if n else np.zeros(0),
                   on_ok=c.get("on_ok"), on_fail=c.get("on_fail"), delay=c.get("delay"),
                   patience=c.get("patience"))
    bins = Bins(start, n_bins, bin_s)
    bins.add(start, start + LOAD_S, 0.2 * tr.engine.gpu.idle_w, 0)  # loading the weights
    tp = len(tr.engine.gpu_uuids)
    oracle = Truth.empty(n) if truth is not None else None
    if n:
        FluidEngine(MODEL_PROFILES[tr.engine.model], tr.engine.gpu, tp).run(req, bins, oracle)
    happened = np.flatnonzero(~np.isnan(req.arrival)) if n else np.zeros(0, int)
    order = happened[np.argsort(req.arrival[happened], kind="stable")]
    tr.cols = {k: [v[i] for i in order] for k, v in tr.cols.items()}
    tr.cols["arrival"] = req.arrival[order].tolist()
    tr.slots_of = {}
    for j, a in enumerate(tr.cols["answer"]):
        tr.slots_of.setdefault(a, []).append(j)
    req = req.take(order)
    if truth is not None:
        truth.append(Truth(oracle.gpu_s[order], oracle.energy_j[order]))
    return req, bins


def _gpu_samples(e: Engine, bins: Bins, start: float) -> list[GpuReading]:
    """A sample at each period's end and at each edge of an idle stretch; the energy counter
    starts at zero when the history starts, as after a driver load."""
    profile = MODEL_PROFILES[e.model]
    tp = len(e.gpu_uuids)
    idle = e.gpu.idle_w
    extra = np.cumsum(bins.extra_j).tolist()
    busy = np.cumsum(bins.busy_s).tolist()
    points = [(start + (i + 1) * bins.width_s, extra[i], busy[i], bins.kv_tokens[i])
              for i in range(bins.n)]
    points += [(t, x, b, 0.0) for t, x, b in bins.marks]
    points.sort()
    out: list[GpuReading] = []
    prev_t, prev_x, prev_b = start, 0.0, 0.0
    for t, x, b, kv in points:
        if t - prev_t < 0.5:  # a mark next to a minute's end says nothing new
            continue
        dt = t - prev_t
        loaded = min(1.0, (t - start) / LOAD_S)
        mem = (profile.weight_bytes * loaded + kv * profile.kv_bytes_per_token) / tp
        out.append(GpuReading(t, idle * (t - start) + x, idle + (x - prev_x) / dt,
                             min(1.0, (b - prev_b) / dt), int(mem)))
        prev_t, prev_x, prev_b = t, x, b
    return out


class _Poster:
    """OTLP/HTTP protobuf POSTs; 429/503 (back-pressure) and lost connections are retried,
    after ``Retry-After`` when the collector gives one, until ``give_up_s``."""

    def __init__(self, endpoint: str, give_up_s: float = 300.0) -> None:
        self.base = endpoint.rstrip("/")
        self.client = httpx.Client(timeout=60.0)
        self.give_up_s = give_up_s
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="otlp-post")
        self._in_flight: Future[None] | None = None

    def send(self, signal: str, body: bytes) -> None:
        """Post in the background: one request in flight while the next is built."""
        self.wait()
        self._in_flight = self._pool.submit(self._post, signal, body)

    def wait(self) -> None:
        if self._in_flight is not None:
            self._in_flight.result()
            self._in_flight = None

    def _post(self, signal: str, body: bytes) -> None:
        deadline = time.monotonic() + self.give_up_s
        delay = 0.5
        while True:
            try:
                resp = self.client.post(f"{self.base}/v1/{signal}", content=body,
                                        headers={"content-type": "application/x-protobuf"})
                if resp.status_code == 200:
                    return
                if resp.status_code not in (429, 502, 503, 504):
                    raise RuntimeError(f"the collector refused {signal}: HTTP "
                                       f"{resp.status_code} {resp.text[:200]}")
                wait = float(resp.headers.get("retry-after") or delay)
            except httpx.TransportError as e:
                log.warning("collector unreachable (%s)", e)
                wait = delay
            if time.monotonic() + wait > deadline:
                raise RuntimeError(f"the collector did not take {signal} for "
                                   f"{self.give_up_s:.0f} s")
            time.sleep(wait)
            delay = min(delay * 2, 10.0)

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        self.client.close()


@dataclass(frozen=True)
class TrueUse:
    """The simulator's ground truth for one served request (``generate_history(oracle=)``):
    its GPU-seconds and joules on each of its engine's GPUs."""

    request_uid: str
    outcome: str
    gpu_uuids: tuple[str, ...]
    gpu_s: float  # per GPU
    energy_j: float  # per GPU


def generate_history(scenario: Scenario, days: float, endpoint: str, *,
                     end: float | None = None, seed: int = 7, sample_s: float = BIN_S,
                     progress: Callable[[HistoryStats, float], None] | None = None,
                     oracle: list[TrueUse] | None = None) -> HistoryStats:
    """Send ``days`` of ``scenario`` ending at ``end`` (default now) to the collector, GPUs
    sampled every ``sample_s``. With ``oracle``, also append every served request's true
    GPU use there (simulated ground truth; it never goes to the store)."""
    if days <= 0:
        raise UserError("history must cover a positive number of days")
    wall = time.monotonic()
    end = math.floor((end or time.time()) / BIN_S) * BIN_S
    start = end - days * 86400
    n_bins = int((end - start) // sample_s)
    rng = random.Random(seed)
    engines = fleet_engines(scenario)
    traffic = _draw(scenario, engines, start + LOAD_S, end, rng)
    truths: list[Truth] | None = [] if oracle is not None else None
    served = [_serve(tr, start, n_bins, sample_s, truths) for tr in traffic]
    stats = HistoryStats(days, scenario.gpu_count)
    samples = [_gpu_samples(tr.engine, bins, start)
               for tr, (_, bins) in zip(traffic, served, strict=True)]
    sample_times = [[r.t for r in readings] for readings in samples]
    log.info("history: %d requests served on the virtual clock in %.1f s; sending",
             sum(len(r.arrival) for r, _ in served) + sum(len(t.bad) for t in traffic),
             time.monotonic() - wall)
    poster = _Poster(endpoint)
    factory = SpanFactory(seed)
    batch = SpanBatch()

    def flush(full: SpanBatch) -> SpanBatch:
        poster.send("traces", full.message.SerializeToString())
        stats.spans += full.count
        return SpanBatch()

    try:
        for e in engines:
            factory.startup(batch, e, start, start + LOAD_S)
        cursors = [0] * len(traffic)
        bad_cursors = [0] * len(traffic)
        traces: list[dict[int, Trace | None]] = [{} for _ in traffic]
        for tr in traffic:
            tr.bad.sort()
        for hour_start in np.arange(start, end, 3600.0).tolist():
            hour_end = min(end, hour_start + 3600)
            by_node: dict[str, list] = {}
            for tr, readings, times in zip(traffic, samples, sample_times, strict=True):
                e = tr.engine
                hour = readings[bisect_right(times, hour_start):bisect_right(times, hour_end)]
                for k in range(len(e.gpu_uuids)):
                    by_node.setdefault(e.node, []).append((e, k, hour))
            for node, readings_of_node in by_node.items():
                # A node's hour in messages of at most READINGS_PER_POST readings per GPU
                # (a 1 Hz hour of a node would exceed the collector's body limit).
                for lo in range(0, max(len(x[2]) for x in readings_of_node), READINGS_PER_POST):
                    part = [(e, k, h[lo:lo + READINGS_PER_POST]) for e, k, h in readings_of_node]
                    message, points = gpu_metrics(node, part)
                    poster.send("metrics", message.SerializeToString())
                    stats.points += points
            for t_idx, (tr, (req, _)) in enumerate(zip(traffic, served, strict=True)):
                j = cursors[t_idx]
                arrival = tr.cols["arrival"]
                while j < len(arrival) and arrival[j] < hour_end:
                    a = tr.cols["answer"][j]
                    if a not in traces[t_idx]:  # its answer's first request: the app's spans
                        traces[t_idx][a] = _answer_spans(factory, batch, tr, req, a)
                    uid = factory.request(batch, tr.engine, _reply(tr, req, j),
                                          traces[t_idx][a], _edge_attrs(tr, j))
                    if truths is not None:
                        oracle.append(TrueUse(uid, req.outcome[j], tr.engine.gpu_uuids,
                                              float(truths[t_idx].gpu_s[j]),
                                              float(truths[t_idx].energy_j[j])))
                    j += 1
                    if batch.count >= SPAN_BATCH:
                        batch = flush(batch)
                stats.requests += j - cursors[t_idx]
                cursors[t_idx] = j
                b = bad_cursors[t_idx]
                while b < len(tr.bad) and tr.bad[b][0] < hour_end:
                    arrive, a_idx = tr.bad[b]
                    factory.request(batch, tr.engine, Reply(
                        tr.apps[a_idx], "bad", arrive, None, None, arrive + 0.002, 0, 0, 0,
                        False))
                    b += 1
                stats.requests += b - bad_cursors[t_idx]
                bad_cursors[t_idx] = b
                if batch.count >= SPAN_BATCH:
                    batch = flush(batch)
            if progress is not None:
                stats.wall_s = time.monotonic() - wall
                progress(stats, (hour_end - start) / (end - start))
        if batch.count:
            flush(batch)
        poster.wait()
    finally:
        poster.close()
    stats.wall_s = time.monotonic() - wall
    return stats


def _reply(tr: _Traffic, req: Requests, j: int) -> Reply:
    def at(x: float) -> float | None:
        return None if math.isnan(x) else float(x)

    c = tr.cols
    return Reply(tr.apps[tr.answers[c["answer"][j]].app], req.outcome[j], c["arrival"][j],
                 at(req.scheduled[j]), at(req.first_token[j]), float(req.finished[j]),
                 c["prompt"][j], int(req.generated[j]), c["max_tokens"][j], c["stream"][j])


def _edge_attrs(tr: _Traffic, j: int) -> dict[str, Any]:
    """What the middleware records of the client's answer headers (retry key and attempt,
    the user's own prompt tokens)."""
    c, out = tr.cols, {}
    if c["retry_key"][j] is not None:
        out["inferledger.retry_key"] = c["retry_key"][j]
        out["inferledger.retry_attempt"] = c["attempt"][j]
    ans = tr.answers[c["answer"][j]]
    if tr.apps[ans.app].kind == "agent":
        out["inferledger.usage.user_tokens"] = ans.user_tokens
    return out


def _answer_spans(factory: SpanFactory, batch: SpanBatch, tr: _Traffic, req: Requests,
                  a: int) -> Trace | None:
    """The app's own spans of answer ``a`` (a root over all of it, a RAG app's retrieval,
    an agent's tool calls between its steps); ``None`` for an app that traces nothing."""
    ans = tr.answers[a]
    app = tr.apps[ans.app]
    if not app.has_root_span:
        return None
    c = tr.cols
    slots = tr.slots_of[a]
    end = max(float(req.finished[j]) for j in slots) + 0.002
    children = []
    if ans.retrieval_s:
        children.append(("retrieval", ans.start + 0.002, ans.start + ans.retrieval_s - 0.002, {
            "db.system.name": "qdrant", "db.operation.name": "query",
            "inferledger.context_tokens": ans.context_tokens}))
    for j in slots:
        if c["step"][j] and not c["attempt"][j]:  # the tool call before a step
            children.append(("execute_tool search", c["arrival"][j] - c["delay"][j] + 0.001,
                             c["arrival"][j] - 0.001, {"gen_ai.operation.name": "execute_tool",
                                                       "gen_ai.tool.name": "search"}))
    return factory.answer(batch, app, ans.start, end, children)
