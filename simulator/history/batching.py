"""Continuous batching on a virtual clock, event by event instead of step by step.

The live engine (``simulator/engine/core.py``) runs every step; a week of a fleet is ~10⁹
steps, too many for minutes. Between two events (an arrival, an admission, a finish) the batch
is constant, so the steps in between have the same step time (``ModelProfile.step_time_s``,
taken at the batch's mid-span context) and are advanced in one go. Admission follows the
live engine: up to ``max_num_seqs`` running, KV blocks reserved for prompt + reply, a
bounded waiting queue (full: 503), new prompts prefilled in ``max_num_batched_tokens``
chunks alongside the running decodes. Power follows the GPU's serving curve for the batch,
and each span of constant power is added to per-minute bins exactly, so the energy a GPU
sample reports is the integral of power.

An idle stretch of ``MIN_GAP_S`` or more is *marked* at both ends with the running energy and
busy totals, so the history's GPU samples (once a minute otherwise) can bracket it: what an
agent sampling every second would report, less the samples in between that say nothing new.
Without the marks a minute with one short request would look busy from end to end.
"""

from __future__ import annotations

import heapq
import math
from collections import deque
from dataclasses import dataclass, field

import numpy as np

from simulator.engine.profiles import ModelProfile
from simulator.gpu_models import GpuModel

BLOCK_TOKENS = 16
BIN_S = 60.0
MIN_GAP_S = 10.0
QUEUE_FULL, TIMED_OUT, ABORTED, DONE = "rejected", "timeout", "client_abort", "ok"


@dataclass
class Requests:
    """Column arrays of one engine's requests, filled in by :meth:`FluidEngine.run`."""

    arrival: np.ndarray
    prompt: np.ndarray
    output: np.ndarray  # tokens the reply would have
    stop_after: np.ndarray  # tokens after which the client hangs up (≥ output: never)
    deadline: np.ndarray  # the client gives up at this time (inf: never)
    # Requests that depend on others (an agent's next step, a client's retry): a slot whose
    # arrival is NaN arrives ``delay`` after the request that triggers it ends — ``on_ok``
    # of one that succeeded, ``on_fail`` of one that timed out or was turned away — and
    # gives up ``patience`` seconds after it arrives. Never triggered: it never happens.
    on_ok: np.ndarray | None = None
    on_fail: np.ndarray | None = None
    delay: np.ndarray | None = None
    patience: np.ndarray | None = None
    scheduled: np.ndarray = field(init=False)
    first_token: np.ndarray = field(init=False)
    finished: np.ndarray = field(init=False)
    generated: np.ndarray = field(init=False)
    outcome: list[str] = field(init=False)

    def take(self, rows: np.ndarray) -> Requests:
        """These requests' rows ``rows``, results included (links dropped: they are done)."""
        out = Requests(*(getattr(self, c)[rows] for c in (
            "arrival", "prompt", "output", "stop_after", "deadline")))
        for c in ("scheduled", "first_token", "finished", "generated"):
            setattr(out, c, getattr(self, c)[rows])
        out.outcome = [self.outcome[i] for i in rows.tolist()]
        return out

    def __post_init__(self) -> None:
        n = len(self.arrival)
        self.scheduled = np.full(n, np.nan)
        self.first_token = np.full(n, np.nan)
        self.finished = np.full(n, np.nan)
        self.generated = np.zeros(n, dtype=np.int64)
        self.outcome = [DONE] * n


@dataclass
class Bins:
    """Per-sample-period sums (a minute by default) for the engine's GPUs: energy above idle
    and busy seconds."""

    start: float
    n: int
    width_s: float = BIN_S
    extra_j: list[float] = field(init=False)
    busy_s: list[float] = field(init=False)
    kv_tokens: list[float] = field(init=False)  # KV cache in use at the end of the period

    marks: list[tuple[float, float, float]] = field(init=False)  # (t, Σ extra_j, Σ busy_s)

    def __post_init__(self) -> None:
        self.extra_j = [0.0] * self.n
        self.busy_s = [0.0] * self.n
        self.kv_tokens = [0.0] * self.n
        self.marks = []
        self._extra = self._busy = 0.0

    def mark(self, t: float) -> None:
        """Remember the running totals at ``t`` (an edge of an idle stretch)."""
        self.marks.append((t, self._extra, self._busy))

    def add(self, t0: float, t1: float, extra_w: float, kv: float) -> None:
        """Constant power ``extra_w`` above idle over [t0, t1), ``kv`` tokens cached."""
        self._extra += extra_w * (t1 - t0)
        self._busy += t1 - t0
        i0 = int((t0 - self.start) // self.width_s)
        i1 = min(self.n - 1, int((t1 - self.start) // self.width_s))
        if i0 >= self.n:
            return
        if i0 == i1:
            self.extra_j[i0] += extra_w * (t1 - t0)
            self.busy_s[i0] += t1 - t0
            self.kv_tokens[i0] = kv
            return
        for i in range(i0, i1 + 1):
            a = max(t0, self.start + i * self.width_s)
            b = min(t1, self.start + (i + 1) * self.width_s)
            self.extra_j[i] += extra_w * (b - a)
            self.busy_s[i] += b - a
            self.kv_tokens[i] = kv


@dataclass
class Truth:
    """The simulator's ground truth of each request's GPU use, per GPU of its engine (a
    tensor-parallel engine's GPUs all step together): every step's seconds and joules split
    by each sequence's part of the step (``ModelProfile.step_parts_s``). Clearly simulated:
    kept apart from the store, for ``bench/attribution_accuracy.py``."""

    gpu_s: np.ndarray
    energy_j: np.ndarray

    @classmethod
    def empty(cls, n: int) -> Truth:
        return cls(np.zeros(n), np.zeros(n))

    def add(self, js: np.ndarray, parts: np.ndarray, seconds: float, power_w: float) -> None:
        share = parts / parts.sum()
        np.add.at(self.gpu_s, js, share * seconds)
        np.add.at(self.energy_j, js, share * seconds * power_w)


class FluidEngine:
    def __init__(self, profile: ModelProfile, gpu: GpuModel, tp: int, *, max_num_seqs: int = 64,
                 max_num_batched_tokens: int = 2048, max_waiting: int = 128,
                 gpu_memory_utilization: float = 0.9) -> None:
        self.profile, self.gpu, self.tp = profile, gpu, tp
        self.max_num_seqs = max_num_seqs
        self.max_batched = max_num_batched_tokens
        self.max_waiting = max_waiting
        kv_bytes = (gpu.memory_total_bytes * gpu_memory_utilization * tp - profile.weight_bytes)
        self.kv_blocks_total = max(1, int(kv_bytes / (profile.kv_bytes_per_token * BLOCK_TOKENS)))

    def _step_s(self, tokens: int, context: float, seqs: int) -> float:
        return self.profile.step_time_s(self.gpu, self.tp, tokens, int(context), seqs)

    def _parts(self, tokens: np.ndarray, context: np.ndarray) -> np.ndarray:
        return self.profile.step_parts_s(self.gpu, self.tp, tokens, context)

    def run(self, r: Requests, bins: Bins, truth: Truth | None = None) -> None:
        """Serve every request of ``r`` in arrival order, filling ``r``'s results and ``bins``
        (and, if given, ``truth``: each request's true share of every step); requests that
        others trigger arrive when those end (``Requests.on_ok``/``on_fail``)."""
        arrival = r.arrival
        prompt, target = r.prompt.tolist(), np.minimum(r.output, r.stop_after).tolist()
        deadline = r.deadline.tolist()
        idle_w = self.gpu.idle_w
        power = self.gpu.serving_power_w
        # arrivals still to come, earliest first: the given ones, then those triggered
        pending = [(float(a), j) for j, a in enumerate(arrival.tolist()) if not math.isnan(a)]
        heapq.heapify(pending)
        t = pending[0][0] if pending else bins.start

        def settled(j: int) -> None:
            """Request ``j`` has its outcome: arrive what it triggers."""
            nxt = r.on_ok if r.outcome[j] == DONE else r.on_fail if r.outcome[j] in (
                TIMED_OUT, QUEUE_FULL) else None
            if nxt is None or nxt[j] < 0:
                return
            k = int(nxt[j])
            arrival[k] = r.finished[j] + r.delay[k]
            deadline[k] = r.deadline[k] = arrival[k] + r.patience[k]
            heapq.heappush(pending, (float(arrival[k]), k))

        waiting: deque[int] = deque()
        running: list[tuple[int, int]] = []  # (decode step at which it finishes, request)
        live: dict[int, int] = {}  # running request → its finishing step
        gives_up: list[tuple[float, int]] = []  # (deadline, request) of running requests
        steps = 0  # decode steps so far; a running request's context grows by one per step
        sum_prompt = sum_admit = kv_blocks = 0
        blocks: dict[int, int] = {}
        while True:
            while pending and pending[0][0] <= t:
                i = heapq.heappop(pending)[1]
                if len(waiting) >= self.max_waiting:
                    r.outcome[i] = QUEUE_FULL
                    r.finished[i] = arrival[i]
                    settled(i)
                else:
                    waiting.append(i)
            b = len(running)
            new: list[int] = []
            while waiting and b + len(new) < self.max_num_seqs:
                j = waiting[0]
                if t >= deadline[j]:  # the client gave up while it waited
                    waiting.popleft()
                    r.outcome[j] = TIMED_OUT
                    r.finished[j] = deadline[j]
                    settled(j)
                    continue
                need = -(-(prompt[j] + target[j]) // BLOCK_TOKENS)
                if kv_blocks + need > self.kv_blocks_total and (b or new):
                    break
                waiting.popleft()
                blocks[j] = need
                kv_blocks += need
                new.append(j)
            context = sum_prompt + b * steps - sum_admit
            if new:  # prefill the new prompts, chunked, while the running requests decode
                todo = sum(prompt[j] for j in new)
                chunks = max(1, math.ceil((todo + b) / self.max_batched))
                sizes = [min(self.max_batched, todo + b - k * self.max_batched)
                         for k in range(chunks)]
                steps_dt = [self._step_s(x, context, b + len(new)) for x in sizes]
                dt = sum(steps_dt)
                share = todo / (todo + b)
                p_w = power(b + len(new), share)
                bins.add(t, t + dt, p_w - idle_w, context + todo)
                if truth is not None:  # each chunk carries every sequence's tokens pro rata
                    js = np.array([j for _, j in running] + new, dtype=np.int64)
                    own = np.array([1.0] * b + [float(prompt[j]) for j in new])
                    ctx = np.array([prompt[j] + 1 + steps - (d - target[j] + 1)
                                    for d, j in running] + [0.0] * len(new), dtype=float)
                    for x, x_dt in zip(sizes, steps_dt, strict=True):
                        truth.add(js, self._parts(own * x / (todo + b), ctx), x_dt, p_w)
                t += dt
                steps += chunks if b else 0
                for j in new:
                    r.scheduled[j] = t - dt
                    r.first_token[j] = t
                    if target[j] <= 1:
                        self._finish(r, j, t, min(1, target[j]))
                        settled(j)
                        kv_blocks -= blocks.pop(j)
                        continue
                    heapq.heappush(running, (steps + target[j] - 1, j))
                    live[j] = steps + target[j] - 1
                    if deadline[j] < math.inf:
                        heapq.heappush(gives_up, (deadline[j], j))
                    sum_prompt += prompt[j] + 1
                    sum_admit += steps
                continue
            if not running:
                if not pending:
                    return
                nxt = pending[0][0]
                if nxt - t >= MIN_GAP_S:
                    bins.mark(t)
                    bins.mark(nxt)
                t = max(t, nxt)
                continue
            # Decode until the next finish, the next arrival if a seat or queue slot is free,
            # or the next client of a running request giving up (the engine aborts it then).
            k = running[0][0] - steps
            tau = self._step_s(b, context + b * k / 2, b)
            if pending and pending[0][0] < t + k * tau:
                k = max(1, math.ceil((pending[0][0] - t) / tau))
            while gives_up and gives_up[0][1] not in live:
                heapq.heappop(gives_up)
            if gives_up and gives_up[0][0] < t + k * tau:
                k = max(1, math.ceil((gives_up[0][0] - t) / tau))
            bins.add(t, t + k * tau, power(b) - idle_w, context)
            if truth is not None:  # contexts at the middle of the k steps, as tau's
                js = np.array([j for _, j in running], dtype=np.int64)
                ctx = np.array([prompt[j] + 1 + steps + k / 2 - (d - target[j] + 1)
                                for d, j in running], dtype=float)
                truth.add(js, self._parts(np.ones(b), ctx), k * tau, power(b))
            t += k * tau
            steps += k
            while running and running[0][0] <= steps:
                done_at, j = heapq.heappop(running)
                end = t - (steps - done_at) * tau
                self._finish(r, j, end, target[j])
                settled(j)
                del live[j]
                kv_blocks -= blocks.pop(j)
                sum_prompt -= prompt[j] + 1
                sum_admit -= done_at - target[j] + 1
            gone = []
            while gives_up and gives_up[0][0] <= t:
                j = heapq.heappop(gives_up)[1]
                if j in live:
                    gone.append(j)
            for j in gone:  # timed out mid-reply: aborted with the tokens it had
                admitted = live.pop(j) - target[j] + 1
                r.generated[j] = min(target[j], steps - admitted + 1)
                r.finished[j] = deadline[j]
                r.outcome[j] = TIMED_OUT
                settled(j)
                kv_blocks -= blocks.pop(j)
                sum_prompt -= prompt[j] + 1
                sum_admit -= admitted
            if gone:
                running = [x for x in running if x[1] in live]
                heapq.heapify(running)

    @staticmethod
    def _finish(r: Requests, j: int, end: float, generated: int) -> None:
        """Record a reply; a client past its deadline or hanging up early shapes the outcome."""
        if end > r.deadline[j]:
            # The client gave up first: the engine aborted it then, with what it had so far.
            frac = (r.deadline[j] - r.first_token[j]) / max(end - r.first_token[j], 1e-9)
            r.generated[j] = max(0, int(generated * max(0.0, frac)))
            r.finished[j] = r.deadline[j]
            r.outcome[j] = TIMED_OUT
            return
        r.generated[j] = generated
        r.finished[j] = end
        if r.stop_after[j] < r.output[j]:
            r.outcome[j] = ABORTED
