"""History as the collector would have received it: the same spans and GPU metrics, shaped
exactly as the live stack emits them, with timestamps from the virtual clock.

Spans: the tracing middleware's edge span (``agents/tracing/middleware.py``), vLLM's
``llm_request`` child (``simulator/engine/tracing.py``), for RAG and agent apps the app's own
root span over the answer with its retrieval or tool calls as children, and per engine its
start-up: the middleware's ``inferledger.engine.startup`` and vLLM's ``Overall Loading``.
Metrics: what the node agent exports per GPU (``agents/node_agent.py``), at the times
:mod:`simulator.history.generate` picks. Everything carries ``inferledger.simulated=true``.

Messages are built straight into OTLP's protobuf classes: the SDK's span encoder costs
~60 µs a span and an observable instrument cannot be given a timestamp; building the
request in place, with each engine's and app's constant attributes encoded once, costs
~15 µs, which is what lets a week of a fleet be sent in minutes.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, KeyValue
from opentelemetry.proto.metrics.v1.metrics_pb2 import AGGREGATION_TEMPORALITY_CUMULATIVE
from opentelemetry.proto.trace.v1.trace_pb2 import ScopeSpans, Span, Status

from simulator import SIMULATED_RESOURCE
from simulator.gpu_models import GpuModel
from simulator.scenario import App

_NS = 1_000_000_000
_PREFIX = {"chat": "chatcmpl-", "text_completion": "cmpl-", "embeddings": "embd-"}
STATUS = {"ok": 200, "client_abort": 200, "timeout": 504, "rejected": 503, "bad": 400}
_UNITS = {"hw.energy": "J", "hw.power": "W", "inferledger.gpu.power.limit": "W",
          "hw.gpu.memory.usage": "By", "hw.gpu.memory.limit": "By", "hw.temperature": "Cel",
          "inferledger.gpu.process.memory.usage": "By"}


def kv(key: str, v: Any) -> KeyValue:
    if isinstance(v, bool):
        return KeyValue(key=key, value=AnyValue(bool_value=v))
    if isinstance(v, int):
        return KeyValue(key=key, value=AnyValue(int_value=v))
    if isinstance(v, float):
        return KeyValue(key=key, value=AnyValue(double_value=v))
    if isinstance(v, tuple):
        return KeyValue(key=key, value=AnyValue(array_value=ArrayValue(
            values=[AnyValue(string_value=x) for x in v])))
    return KeyValue(key=key, value=AnyValue(string_value=str(v)))


def kvs(attrs: dict[str, Any]) -> list[KeyValue]:
    return [kv(k, v) for k, v in attrs.items()]


@dataclass(frozen=True)
class Engine:
    """One engine of the fleet as its telemetry names it."""

    node: str
    model: str
    gpu_uuids: tuple[str, ...]
    gpu: GpuModel
    pid: int

    @property
    def placement(self) -> dict[str, Any]:
        return {"inferledger.host": self.node, "inferledger.pid": self.pid,
                "inferledger.gpu_uuids": self.gpu_uuids}


@dataclass(frozen=True)
class Reply:
    """What happened to one request, on the virtual clock (epoch seconds)."""

    app: App
    outcome: str  # ok, client_abort, timeout, rejected, bad
    arrival: float
    scheduled: float | None
    first_token: float | None
    finished: float
    prompt: int
    generated: int
    max_tokens: int
    stream: bool


@dataclass(frozen=True)
class Trace:
    """The trace an app's answer is in, and its root span: its requests' parent."""

    trace_id: bytes
    root_id: bytes


@dataclass
class SpanBatch:
    """One OTLP trace export request, filled in place; spans are grouped by their process."""

    message: ExportTraceServiceRequest = field(default_factory=ExportTraceServiceRequest)
    scopes: dict[tuple[str, str, str], ScopeSpans] = field(default_factory=dict)
    count: int = 0

    def span(self, resource: tuple[tuple[str, Any], ...], scope: str, **fields: Any) -> Span:
        key = (str(resource), scope, "")
        ss = self.scopes.get(key)
        if ss is None:
            rs = self.message.resource_spans.add()
            rs.resource.attributes.extend(kvs(dict(resource)))
            ss = rs.scope_spans.add()
            ss.scope.name = scope
            self.scopes[key] = ss
        self.count += 1
        return ss.spans.add(**fields)


@cache
def _resource(service: str, host: str | None = None, pid: int | None = None
              ) -> tuple[tuple[str, Any], ...]:
    attrs: dict[str, Any] = {"service.name": service, **SIMULATED_RESOURCE}
    if host is not None:
        attrs["host.name"] = host
    if pid is not None:
        attrs["vllm.process_id"] = pid
    return tuple(attrs.items())


class SpanFactory:
    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self._const: dict[tuple[Engine, App], list[KeyValue]] = {}

    def _id(self, bits: int) -> bytes:
        return self.rng.getrandbits(bits).to_bytes(bits // 8, "big")

    def startup(self, batch: SpanBatch, e: Engine, start: float, end: float) -> None:
        s = batch.span(_resource("inferledger-middleware", e.node), "inferledger.middleware",
                       trace_id=self._id(128), span_id=self._id(64),
                       name="inferledger.engine.startup", kind=Span.SPAN_KIND_INTERNAL,
                       start_time_unix_nano=int(start * _NS), end_time_unix_nano=int(end * _NS))
        s.attributes.extend(kvs({"inferledger.span.source": "engine_startup", **e.placement}))
        # vLLM 0.32's own root span over its start-up, as the live engine emits it: here the
        # process starts loading at once, so both spans cover the same window.
        batch.span(_resource("vllm", e.node, e.pid), "vllm.v1.engine.core_client",
                   trace_id=self._id(128), span_id=self._id(64), name="Overall Loading",
                   kind=Span.SPAN_KIND_INTERNAL, start_time_unix_nano=int(start * _NS),
                   end_time_unix_nano=int(end * _NS))

    def _constant(self, e: Engine, app: App) -> list[KeyValue]:
        """The edge span's attributes that only depend on the engine and the app."""
        c = self._const.get((e, app))
        if c is None:
            c = self._const[(e, app)] = kvs({
                "inferledger.span.source": "middleware", "gen_ai.operation.name": app.operation,
                "gen_ai.provider.name": "vllm", "http.request.method": "POST",
                "url.path": app.path, "inferledger.tenant": app.tenant,
                "inferledger.route": app.name, **e.placement, "gen_ai.request.model": e.model})
        return c

    def answer(self, batch: SpanBatch, app: App, start: float, end: float,
               children: list[tuple[str, float, float, dict[str, Any]]]) -> Trace:
        """An app's root span over one answer (an agent's run: OTel GenAI's
        ``invoke_agent``), with its own steps (retrieval, tool calls) as children."""
        trace = Trace(self._id(128), self._id(64))
        res = _resource(f"{app.tenant}-{app.name}")
        attrs = {"inferledger.tenant": app.tenant}
        name = f"{app.name} answer"
        if app.kind == "agent":
            attrs |= {"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": app.name}
            name = f"invoke_agent {app.name}"
        batch.span(res, "inferledger.sim.app", trace_id=trace.trace_id, span_id=trace.root_id,
                   name=name, kind=Span.SPAN_KIND_SERVER,
                   start_time_unix_nano=int(start * _NS), end_time_unix_nano=int(end * _NS),
                   attributes=kvs(attrs))
        for child, a, b, child_attrs in children:
            batch.span(res, "inferledger.sim.app", trace_id=trace.trace_id,
                       span_id=self._id(64), parent_span_id=trace.root_id, name=child,
                       kind=Span.SPAN_KIND_CLIENT, start_time_unix_nano=int(a * _NS),
                       end_time_unix_nano=int(b * _NS), attributes=kvs(child_attrs))
        return trace

    def request(self, batch: SpanBatch, e: Engine, r: Reply, trace: Trace | None = None,
                extra: dict[str, Any] | None = None) -> str:
        """The spans of one request: the edge span (under its answer's root span, if the
        app traces one) and vLLM's ``llm_request``; returns the request's key in the store
        (its edge span's ``trace_id:span_id``). ``extra``: more edge attributes."""
        trace_id = trace.trace_id if trace else self._id(128)
        parent = trace.root_id if trace else b""
        start, end = r.arrival - 0.0004, r.finished + 0.0006
        app = r.app
        edge_id = self._id(64)
        key = edge_id.hex()
        op = app.operation
        status = STATUS[r.outcome]
        attrs: dict[str, Any] = {
            **(extra or {}), "inferledger.stream": r.stream, "inferledger.request_id": key,
            "http.response.status_code": status,
            "inferledger.outcome": "error" if r.outcome == "bad" else r.outcome}
        if op != "embeddings":
            attrs["gen_ai.request.max_tokens"] = r.max_tokens
        if r.stream and r.first_token is not None:
            attrs["inferledger.ttft_s"] = r.first_token - start
        if r.outcome == "ok":
            attrs["gen_ai.response.model"] = e.model
            if op != "embeddings":
                attrs["gen_ai.response.finish_reasons"] = (
                    "length" if r.generated >= r.max_tokens else "stop",)
            attrs["gen_ai.usage.input_tokens"] = r.prompt
            attrs["gen_ai.usage.output_tokens"] = r.generated
        elif r.outcome == "client_abort" and r.generated:
            attrs["gen_ai.usage.output_tokens"] = r.generated
            attrs["inferledger.usage.estimated"] = True
        s = batch.span(_resource("inferledger-middleware", e.node), "inferledger.middleware",
                       trace_id=trace_id, span_id=edge_id, parent_span_id=parent,
                       name=f"POST {app.path}", kind=Span.SPAN_KIND_SERVER,
                       start_time_unix_nano=int(start * _NS), end_time_unix_nano=int(end * _NS))
        s.attributes.extend(self._constant(e, app))
        s.attributes.extend(kvs(attrs))
        if r.outcome == "bad":
            s.status.code = Status.STATUS_CODE_ERROR
            s.status.message = f"HTTP {status}"
        # vLLM traces what it served, a reply cut short by a client going away included.
        if r.scheduled is None or r.outcome not in ("ok", "client_abort", "timeout"):
            return f"{trace_id.hex()}:{key}"
        first = r.first_token if r.first_token is not None else r.finished
        vllm = {
            "gen_ai.latency.time_to_first_token": first - r.arrival,
            "gen_ai.latency.e2e": r.finished - r.arrival,
            "gen_ai.latency.time_in_queue": r.scheduled - r.arrival,
            "gen_ai.latency.time_in_model_prefill": first - r.scheduled,
            "gen_ai.latency.time_in_model_decode": r.finished - first,
            "gen_ai.latency.time_in_model_inference": r.finished - r.scheduled,
            "gen_ai.usage.prompt_tokens": r.prompt,
            "gen_ai.usage.completion_tokens": r.generated,
            "gen_ai.request.id": _PREFIX[op] + key}
        if op != "embeddings":
            vllm["gen_ai.request.max_tokens"] = r.max_tokens
            vllm["gen_ai.request.temperature"] = 0.7
        batch.span(_resource("vllm", e.node, e.pid), "vllm.llm_engine", trace_id=trace_id,
                   span_id=self._id(64), parent_span_id=edge_id, name="llm_request",
                   kind=Span.SPAN_KIND_SERVER, start_time_unix_nano=int(r.arrival * _NS),
                   end_time_unix_nano=int(r.finished * _NS), attributes=kvs(vllm))
        return f"{trace_id.hex()}:{key}"


@dataclass
class GpuReading:
    """One agent sample of one GPU; power and utilization describe the interval it closes."""

    t: float
    energy_j: float  # the counter since the history began
    power_w: float
    busy: float  # share of the interval a batch ran
    memory_used_bytes: int


def gpu_metrics(node: str, samples: Iterable[tuple[Engine, int, list[GpuReading]]]
                ) -> tuple[ExportMetricsServiceRequest, int]:
    """The node agent's export of some samples of one node's GPUs (engine, GPU index,
    readings), and its number of points."""
    by_name: dict[str, list[tuple[list[KeyValue], float, float]]] = {}

    def point(name: str, attrs: list[KeyValue], t: float, value: float) -> None:
        by_name.setdefault(name, []).append((attrs, t, value))

    for e, k, minutes in samples:
        g = e.gpu
        attrs = kvs({"hw.id": e.gpu_uuids[k], "hw.model": g.name, "hw.type": "gpu"})
        proc = [*attrs, kv("process.pid", str(e.pid))]
        for m in minutes:
            point("hw.energy", attrs, m.t, m.energy_j)
            point("hw.power", attrs, m.t, m.power_w)
            point("inferledger.gpu.power.limit", attrs, m.t, g.power_limit_w)
            point("hw.gpu.memory.usage", attrs, m.t, m.memory_used_bytes)
            point("hw.gpu.memory.limit", attrs, m.t, g.memory_total_bytes)
            point("hw.gpu.utilization", attrs, m.t, m.busy)
            point("hw.temperature", attrs, m.t, round(30 + 45 * m.power_w / g.power_limit_w))
            point("inferledger.gpu.process.memory.usage", proc, m.t, m.memory_used_bytes)
            if g.arch == "hopper":
                sm, occupancy, tensor, dram = g.gpm_activity(m.busy, m.power_w)
                point("inferledger.gpu.sm.active", attrs, m.t, sm / 100)
                point("inferledger.gpu.sm.occupancy", attrs, m.t, occupancy / 100)
                point("inferledger.gpu.tensor.active", attrs, m.t, tensor / 100)
                point("inferledger.gpu.dram.active", attrs, m.t, dram / 100)
    req = ExportMetricsServiceRequest()
    rm = req.resource_metrics.add()
    rm.resource.attributes.extend(kvs(dict(_resource("inferledger-agent", node))))
    rm.resource.attributes.append(kv("service.instance.id", f"history-agent-{node}"))
    sm_ = rm.scope_metrics.add()
    sm_.scope.name = "inferledger.agent"
    n = 0
    for name, points in by_name.items():
        m = sm_.metrics.add(name=name, unit=_UNITS.get(name, "1"))
        if name == "hw.energy":
            m.sum.aggregation_temporality = AGGREGATION_TEMPORALITY_CUMULATIVE
            m.sum.is_monotonic = True
            dps = m.sum.data_points
        else:
            dps = m.gauge.data_points
        for attrs, t, value in points:
            dps.add(time_unix_nano=int(t * _NS), as_double=float(value), attributes=attrs)
        n += len(points)
    return req, n
