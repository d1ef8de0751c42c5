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
from dataclasses import dataclass

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
class _Traffic:
    """One engine's requests before they are served (the well-formed ones) and its bad ones."""

    engine: Engine
    apps: list[App]
    app_of: list[int]
    arrival: list[float]
    prompt: list[int]
    output: list[int]
    stop_after: list[int]
    deadline: list[float]
    max_tokens: list[int]
    stream: list[bool]
    retrieval_s: list[float]
    bad: list[tuple[float, int]]  # (arrival, app index)


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
    traffic = [_Traffic(e, list(scenario.apps), [], [], [], [], [], [], [], [], [], [])
               for e in engines]
    for a_idx, app in enumerate(scenario.apps):
        replicas = [t for t in traffic if t.engine.model == app.model]
        max_len = MODEL_PROFILES[app.model].max_model_len
        for n, t0 in enumerate(arrival_times(app, start, end, rng).tolist()):
            tr = replicas[n % len(replicas)]
            d = draw_request(app, rng, max_len)
            retrieval = lognormal(rng, app.retrieval_ms, 10_000) / 1000 if app.retrieval_ms else 0.0
            arrive = t0 + retrieval
            if d.bad:
                tr.bad.append((arrive, a_idx))
                continue
            tr.app_of.append(a_idx)
            tr.arrival.append(arrive)
            tr.prompt.append(d.prompt_tokens)
            tr.output.append(d.output_tokens)
            tr.stop_after.append(d.abort_after if d.abort_after is not None else 1 << 30)
            tr.deadline.append(t0 + app.timeout_s if app.timeout_s else math.inf)
            tr.max_tokens.append(d.max_tokens)
            tr.stream.append(d.stream)
            tr.retrieval_s.append(retrieval)
    return traffic


def _serve(tr: _Traffic, start: float, n_bins: int, bin_s: float = BIN_S,
           truth: list[Truth] | None = None) -> tuple[Requests, Bins]:
    order = np.argsort(np.asarray(tr.arrival), kind="stable")
    for name in ("app_of", "arrival", "prompt", "output", "stop_after", "deadline",
                 "max_tokens", "stream", "retrieval_s"):
        col = getattr(tr, name)
        setattr(tr, name, [col[i] for i in order])
    req = Requests(np.asarray(tr.arrival, dtype=float), np.asarray(tr.prompt, dtype=np.int64),
                   np.asarray(tr.output, dtype=np.int64),
                   np.asarray(tr.stop_after, dtype=np.int64), np.asarray(tr.deadline))
    bins = Bins(start, n_bins, bin_s)
    bins.add(start, start + LOAD_S, 0.2 * tr.engine.gpu.idle_w, 0)  # loading the weights
    tp = len(tr.engine.gpu_uuids)
    oracle = Truth.empty(len(req.arrival)) if truth is not None else None
    if len(req.arrival):
        FluidEngine(MODEL_PROFILES[tr.engine.model], tr.engine.gpu, tp).run(req, bins, oracle)
    if truth is not None:
        truth.append(oracle)
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
                while j < len(tr.arrival) and tr.arrival[j] < hour_end:
                    uid = factory.request(batch, tr.engine, _reply(tr, req, j))
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
                        False, 0.0))
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

    return Reply(tr.apps[tr.app_of[j]], req.outcome[j], tr.arrival[j], at(req.scheduled[j]),
                 at(req.first_token[j]), float(req.finished[j]), tr.prompt[j],
                 int(req.generated[j]), tr.max_tokens[j], tr.stream[j], tr.retrieval_s[j])
