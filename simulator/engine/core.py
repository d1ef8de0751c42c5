"""Continuous batching over simulated GPUs, with vLLM's timestamps.

Each step admits waiting requests while the batch and KV cache allow, gives every running
request either a chunk of prefill (from a per-step token budget, as chunked prefill does)
or one decode token, runs until the step's modelled deadline, and publishes the GPU's power and
memory for that step to the node's shared GPU state. Timestamps follow vLLM: arrival on the
frontend wall clock; queued / scheduled / first / last token on the engine's monotonic clock.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from simulator.engine.profiles import ModelProfile
from simulator.gpu_state import NodeGpus

log = logging.getLogger("inferledger.sim.engine")

BLOCK_TOKENS = 16


@dataclass
class EngineStats:
    """What vLLM counts for its /metrics (simulator/engine/metrics.py exposes them)."""

    prompt_tokens: int = 0  # a prompt counts once, at its first scheduling (as in vLLM)
    generation_tokens: int = 0
    finished: dict[str, int] = field(default_factory=dict)  # finish reason → requests
    preemptions: int = 0  # one per request preempted, as vLLM counts them

    def finish(self, reason: str) -> None:
        self.finished[reason] = self.finished.get(reason, 0) + 1


class QueueFull(RuntimeError):
    """The waiting queue is at its limit (the engine answers 503)."""


@dataclass
class SimRequest:
    request_id: str
    prompt_tokens: int
    max_tokens: int
    target_tokens: int  # where the "model" stops on its own (≤ max_tokens)
    trace_headers: dict[str, str] = field(default_factory=dict)
    sampling: dict[str, Any] = field(default_factory=dict)
    arrival_wall: float = field(default_factory=time.time)
    queued_mono: float = field(default_factory=time.monotonic)
    scheduled_mono: float | None = None
    first_token_mono: float | None = None
    first_token_wall: float | None = None
    last_token_mono: float | None = None
    prefilled: int = 0
    generated: int = 0
    prefill_target: int = -1  # tokens to prefill: the prompt, or after preemption prompt + output
    recomputing: bool = False
    finish_reason: str | None = None
    aborted: bool = False
    out: asyncio.Queue = field(default_factory=asyncio.Queue)

    def __post_init__(self) -> None:
        if self.prefill_target < 0:
            self.prefill_target = self.prompt_tokens

    @property
    def kv_blocks(self) -> int:
        return math.ceil((self.prompt_tokens + self.generated + 1) / BLOCK_TOKENS)


class EngineCore:
    def __init__(self, profile: ModelProfile, gpus: NodeGpus, gpu_indices: list[int], *,
                 max_num_seqs: int = 64, max_num_batched_tokens: int = 2048,
                 max_waiting: int = 128, gpu_memory_utilization: float = 0.9,
                 on_finish: Any = None) -> None:
        self.profile = profile
        self.gpus = gpus
        self.gpu_indices = gpu_indices
        self.tp = len(gpu_indices)
        self.gpu_model = gpus.gpus[gpu_indices[0]].model
        self.max_num_seqs = max_num_seqs
        self.max_num_batched_tokens = max_num_batched_tokens
        self.max_waiting = max_waiting
        self.gpu_memory_utilization = gpu_memory_utilization
        kv_bytes = (self.gpu_model.memory_total_bytes * gpu_memory_utilization * self.tp
                    - profile.weight_bytes)
        if kv_bytes <= 0:
            raise ValueError(f"{profile.name} does not fit on {self.tp}× {self.gpu_model.name}")
        self.kv_blocks_total = int(kv_bytes / (profile.kv_bytes_per_token * BLOCK_TOKENS))
        self.waiting: deque[SimRequest] = deque()
        self.running: list[SimRequest] = []
        self.on_finish = on_finish
        self.stats = EngineStats()
        self.pid = os.getpid()
        self._wake = asyncio.Event()

    # -- API used by the HTTP layer ----------------------------------------------------
    def add(self, req: SimRequest) -> None:
        if len(self.waiting) >= self.max_waiting:
            raise QueueFull(f"{len(self.waiting)} requests waiting")
        req.queued_mono = time.monotonic()
        self.waiting.append(req)
        self._wake.set()

    def abort(self, req: SimRequest) -> None:
        """Client went away: drop the request; vLLM emits no span for it."""
        if req.finish_reason is None:
            req.aborted = True
            req.finish_reason = "abort"
            self.stats.finish("abort")
            if req in self.waiting:
                self.waiting.remove(req)
            if req in self.running:
                self.running.remove(req)

    def load_weights(self, seconds: float, steps: int = 10) -> None:
        """Start-up as vLLM does it before its server listens: weights fill GPU memory while
        the GPUs work at a light load (copies, CUDA graph capture)."""
        power = self.gpu_model.serving_power_w(1)
        for k in range(1, steps + 1):
            mem = int(self.profile.weight_bytes * k / steps / self.tp)
            for i in self.gpu_indices:
                self.gpus.update(i, power_w=power, busy=True, mem_used_bytes=mem, pid=self.pid)
            time.sleep(seconds / steps)

    # -- the loop ----------------------------------------------------------------------
    def _publish(self, batch: int, prefill_share: float) -> None:
        kv_used = sum(r.kv_blocks for r in self.running) * BLOCK_TOKENS
        per_gpu_mem = int((self.profile.weight_bytes + kv_used * self.profile.kv_bytes_per_token)
                          / self.tp)
        power = self.gpu_model.serving_power_w(batch, prefill_share)
        for i in self.gpu_indices:
            self.gpus.update(i, power_w=power, busy=batch > 0, mem_used_bytes=per_gpu_mem,
                             pid=self.pid)

    @property
    def kv_cache_usage(self) -> float:
        return sum(r.kv_blocks for r in self.running) / self.kv_blocks_total

    def _admit(self) -> None:
        used = sum(r.kv_blocks for r in self.running)
        while self.waiting and len(self.running) < self.max_num_seqs:
            nxt = self.waiting[0]
            if used + nxt.kv_blocks > self.kv_blocks_total:
                break
            self.waiting.popleft()
            nxt.scheduled_mono = time.monotonic()
            self.running.append(nxt)
            used += nxt.kv_blocks

    def _plan(self) -> tuple[dict[int, int], int, int]:
        """Tokens per running request this step: 1 to decode, or a prefill chunk."""
        budget = self.max_num_batched_tokens
        plan: dict[int, int] = {}
        prefill = 0
        for r in self.running:
            if r.prefilled >= r.prefill_target and budget >= 1:
                plan[id(r)] = 1
                budget -= 1
        for r in self.running:
            if r.prefilled < r.prefill_target and budget > 0:
                chunk = min(r.prefill_target - r.prefilled, budget)
                plan[id(r)] = chunk
                budget -= chunk
                prefill += chunk
        context = sum(r.prefilled + r.generated for r in self.running if id(r) in plan)
        return plan, prefill, context

    def next_step(self) -> tuple[dict[int, int], float, int, float] | None:
        """Admit what fits and plan one step: (plan, step seconds, batch, prefill share of
        its tokens), or ``None`` when nothing runs. The loop and the virtual-clock
        calibration (bench/sim_calibration.py) share it."""
        self._admit()
        if not self.running:
            return None
        plan, prefill_tokens, context = self._plan()
        tokens = sum(plan.values())
        step_s = self.profile.step_time_s(self.gpu_model, self.tp, tokens, context, len(plan))
        return plan, step_s, len(plan), prefill_tokens / max(tokens, 1)

    async def run(self) -> None:
        """Steps back to back at the model's pace: each step ends at its deadline, the
        previous one's plus its modelled time, so the Python work between steps (admitting,
        planning, publishing, answering) is inside a step's time, not added to it."""
        loop = asyncio.get_running_loop()
        self._publish(0, 0.0)
        deadline: float | None = None
        while True:
            step = self.next_step()
            if step is None:
                self._publish(0, 0.0)
                self._wake.clear()
                await self._wake.wait()
                deadline = None  # idle: the next step starts when work arrives
                continue
            plan, step_s, batch, prefill_share = step
            self._publish(batch, prefill_share)
            now = loop.time()
            # Late by less than a step (a timer wakes a little after its time): the next
            # deadline still follows the last one, so lateness does not add up.
            behind = deadline is None or now - deadline >= step_s
            deadline = (now if behind else deadline) + step_s
            await asyncio.sleep(max(0.0, deadline - loop.time()))
            self.advance(plan)

    def advance(self, plan: dict[int, int]) -> None:
        now_mono, now_wall = time.monotonic(), time.time()
        for r in list(self.running):
            n = plan.get(id(r))
            if n is None or r.aborted:
                continue
            if r.prefilled < r.prefill_target:
                r.prefilled += n
                if not r.recomputing:
                    self.stats.prompt_tokens += n
                if r.prefilled < r.prefill_target:
                    continue  # more prefill chunks to go; no token yet
                r.recomputing = False
            r.generated += 1  # the step that completes prefill samples the first token
            self.stats.generation_tokens += 1
            if r.first_token_mono is None:
                r.first_token_mono, r.first_token_wall = now_mono, now_wall
            r.last_token_mono = now_mono
            done = r.generated >= r.target_tokens
            if done:
                r.finish_reason = "length" if r.generated >= r.max_tokens else "stop"
                self.stats.finish(r.finish_reason)
                self.running.remove(r)
                if self.on_finish:
                    self.on_finish(r)
            r.out.put_nowait(done)
        self._preempt_if_full()

    def _preempt_if_full(self) -> None:
        """KV cache full: preempt the latest-admitted requests, as vLLM V1 does by recompute —
        their blocks are freed, and when scheduled again they prefill prompt and output so far
        anew (vLLM counts the preemption, not the tokens recomputed)."""
        used = sum(r.kv_blocks for r in self.running)
        while used > self.kv_blocks_total and len(self.running) > 1:
            victim = self.running.pop()
            used -= victim.kv_blocks
            victim.prefill_target = victim.prompt_tokens + victim.generated
            victim.prefilled, victim.recomputing = 0, True
            self.waiting.appendleft(victim)
            self.stats.preemptions += 1
