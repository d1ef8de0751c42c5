"""Raw store rows for tests, shaped exactly as the collector writes them."""

from __future__ import annotations

import json
import re
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pyarrow as pa
from opentelemetry.sdk.metrics.export import MetricExporter, MetricExportResult, MetricsData

from analytics.compute import compute
from analytics.pricing import Pricing, load_pricing
from analytics.settings import Settings
from inferledger.store import DataDir, connect_readonly, write_catalog, write_parquet_atomic
from inferledger.store.catalog import staging_sql
from inferledger.store.raw_schema import METRIC_POINTS, SPANS

H100 = "NVIDIA H100 80GB HBM3"


def _attrs(d: dict) -> list[tuple[str, str]]:
    """As the collector stores them: text values; an attribute set to None is not sent."""
    return [(k, v if isinstance(v, str) else json.dumps(v)) for k, v in d.items()
            if v is not None]


def _span(trace_id, span_id, parent, name, kind, start_s, end_s, attrs, resource) -> dict:
    return {
        "trace_id": trace_id, "span_id": span_id, "parent_span_id": parent, "name": name,
        "kind": kind, "start_time_unix_nano": int(start_s * 1e9),
        "end_time_unix_nano": int(end_s * 1e9), "status_code": 0, "status_message": None,
        "service_name": resource.get("service.name"), "host_name": resource.get("host.name"),
        "scope_name": "test", "resource_attributes": _attrs(resource),
        "attributes": _attrs(attrs), "events_json": None, "received_at_unix_nano": 0,
    }


@dataclass
class Fleet:
    """Builds spans and GPU samples; ``con()`` runs the analytics on them in memory."""

    spans: list[dict] = field(default_factory=list)
    points: list[dict] = field(default_factory=list)

    def request(self, *, scheduled: float, first_token: float, finished: float,
                gpus: list[str], input_tokens: int = 0, output_tokens: int = 1,
                outcome: str = "ok", model: str = "m", tenant: str = "t", host: str = "node",
                engine_span: bool = True, queue: float = 0.0,
                ttft: float | None = None, status: int = 200, choices: int = 1,
                cached_tokens: int = 0, trace: str | None = None, parent: str | None = None,
                attrs: dict | None = None, route: str | None = None,
                engine_id: str = "chatcmpl-{}", engine_child: bool = True,
                edge_span: bool = True) -> str:
        """A request whose engine phases land exactly on the given wall-clock times; with
        ``choices`` > 1, vLLM's one ``llm_request`` span per choice (same request id and
        parent), each of ``output_tokens``, the edge counting them all. ``cached_tokens`` of
        the prompt were prefix-cache hits (not prefilled). ``trace`` and ``parent`` put it
        under a caller's span; ``attrs`` are more attributes of its edge span.
        ``engine_id``: vLLM's request id around the middleware's (``cmpl-{}-0`` for text
        completions); ``engine_child=False``: vLLM's span is not the edge span's child (no
        trace context reached it), so only the request id joins them. ``edge_span=False``:
        no middleware, vLLM's span straight under ``parent`` (a proxy's, say)."""
        trace = trace or secrets.token_hex(16)
        edge_id, eng_id = secrets.token_hex(8), secrets.token_hex(8)
        arrival = scheduled - queue
        extra = dict(attrs or {})
        if route is not None:
            extra["inferledger.route"] = route
        (self.spans if edge_span else []).append(_span(
            trace, edge_id, parent, f"chat {model}", 2, arrival - 0.001, finished + 0.001,
            extra | {
            "inferledger.span.source": "middleware", "inferledger.tenant": tenant,
            "gen_ai.request.model": model, "inferledger.outcome": outcome,
            "inferledger.request_id": eng_id, "http.response.status_code": status,
            "gen_ai.usage.input_tokens": input_tokens,
            "gen_ai.usage.output_tokens": output_tokens * choices,
            "inferledger.host": host, "inferledger.pid": 42, "inferledger.gpu_uuids": gpus,
            "inferledger.stream": True,
            "inferledger.ttft_s": first_token - arrival if ttft is None else ttft,
        }, {"service.name": "inferledger-middleware", "host.name": host}))
        for k in range(choices if engine_span else 0):
            span_id = eng_id if k == 0 else secrets.token_hex(8)
            under = edge_id if edge_span else parent
            self.spans.append(_span(trace if engine_child else secrets.token_hex(16), span_id,
                                    under if engine_child else None, "llm_request", 2,
                                    arrival, finished, {
                "gen_ai.latency.time_in_queue": queue,
                "gen_ai.latency.time_to_first_token": first_token - arrival,
                "gen_ai.latency.time_in_model_prefill": first_token - scheduled,
                "gen_ai.latency.time_in_model_decode": finished - first_token,
                "gen_ai.latency.time_in_model_inference": finished - scheduled,
                "gen_ai.latency.e2e": finished - arrival,
                "gen_ai.usage.prompt_tokens": input_tokens,
                "gen_ai.usage.completion_tokens": output_tokens,
                "gen_ai.usage.cached_tokens": cached_tokens,
                "gen_ai.request.id": engine_id.format(eng_id),
            }, {"service.name": "vllm", "host.name": host, "vllm.process_id": 42}))
        return f"{trace}:{edge_id}"

    def span(self, trace: str, name: str, start: float, end: float, *,
             parent: str | None = None, attrs: dict | None = None, kind: int = 1) -> str:
        """A span of a caller (an app's root span, an agent run, a retrieval or tool call;
        ``kind=2``, SERVER: a proxy's); returns its span id."""
        span_id = secrets.token_hex(8)
        self.spans.append(_span(trace, span_id, parent, name, kind, start, end, attrs or {},
                                {"service.name": "app"}))
        return span_id

    def _point(self, name: str, t: float, value: float, attrs: dict, *, host: str,
               kind: str = "gauge", source: str | None = None, received_at: int = 0) -> None:
        resource = {"service.name": "inferledger-agent", "host.name": host}
        if source is not None:
            resource["service.instance.id"] = source
        self.points.append({
            "metric_name": name, "unit": None, "metric_type": kind,
            "is_monotonic": True if kind == "sum" else None,
            "time_unix_nano": int(t * 1e9), "start_time_unix_nano": None,
            "value": float(value), "count": None, "service_name": "inferledger-agent",
            "host_name": host, "scope_name": "test",
            "resource_attributes": _attrs(resource),
            "attributes": _attrs(attrs), "received_at_unix_nano": received_at})

    def sample(self, gpu: str, t: float, *, energy_j: float | None, power_w: float = 100.0,
               utilization: float = 0.0, host: str = "node", model: str = H100,
               power_limit_w: float | None = None, source: str | None = None,
               received_at: int = 0) -> None:
        """One agent sample of ``gpu`` at ``t``; ``source`` names the agent (its
        service.instance.id), ``received_at`` when the collector got it."""
        attrs = {"hw.id": gpu, "hw.model": model, "hw.type": "gpu"}
        for name, value in (("hw.energy", energy_j), ("hw.power", power_w),
                            ("hw.gpu.utilization", utilization),
                            ("inferledger.gpu.power.limit", power_limit_w)):
            if value is not None:
                self._point(name, t, value, attrs, host=host,
                            kind="sum" if name == "hw.energy" else "gauge", source=source,
                            received_at=received_at)

    def process(self, gpu: str, t: float, pid: int, *, host: str = "node",
                ancestors: list[int] | None = None) -> None:
        """The agent saw ``pid`` (child of ``ancestors[0]``, …) holding memory on ``gpu``."""
        up = {"inferledger.process.ancestor_pids": ",".join(map(str, ancestors))
              } if ancestors else {}
        self._point("inferledger.gpu.process.memory.usage", t, 1e9,
                    {"hw.id": gpu, "process.pid": str(pid), **up}, host=host)

    def engine_counter(self, name: str, t: float, value: float, *, gpus: list[str],
                       pid: int = 42, host: str = "node", model: str = "m",
                       kind: str = "sum", labels: dict | None = None) -> None:
        """A vLLM counter (or, with ``kind="gauge"``, gauge) as the agent scrapes it from the
        /metrics of the engine with process ``pid``."""
        self._point(name, t, value, {"model_name": model, "engine": "0",
                                     "inferledger.engine": f"http://127.0.0.1:{pid}/metrics",
                                     "inferledger.pid": str(pid), "inferledger.gpu_uuids": gpus,
                                     **(labels or {})},
                    host=host, kind=kind)

    def engine_scrape(self, t: float, *, preemptions: float, kv_usage: float, running: float,
                      kv_cache_size_tokens: int, gpus: list[str], pid: int = 42) -> None:
        """One scrape of the figures the preempted bucket is estimated from (vLLM 0.32)."""
        self.engine_counter("vllm:num_preemptions_total", t, preemptions, gpus=gpus, pid=pid)
        for name, value in (("vllm:kv_cache_usage_perc", kv_usage),
                            ("vllm:num_requests_running", running)):
            self.engine_counter(name, t, value, gpus=gpus, pid=pid, kind="gauge")
        self.engine_counter("vllm:cache_config_info", t, 1.0, gpus=gpus, pid=pid, kind="gauge",
                            labels={"kv_cache_size_tokens": str(kv_cache_size_tokens)})

    def startup(self, start: float, end: float, *, gpus: list[str], pid: int = 42,
                host: str = "node") -> None:
        """An engine starting up, as the middleware records it once the server is ready."""
        self.spans.append(_span(secrets.token_hex(16), secrets.token_hex(8), None,
                                "inferledger.engine.startup", 1, start, end, {
            "inferledger.span.source": "engine_startup", "inferledger.host": host,
            "inferledger.pid": pid, "inferledger.gpu_uuids": gpus,
        }, {"service.name": "inferledger-middleware", "host.name": host}))

    def tables(self) -> tuple[pa.Table, pa.Table]:
        return (pa.Table.from_pylist(self.spans, schema=SPANS),
                pa.Table.from_pylist(self.points, schema=METRIC_POINTS))

    def write(self, data: DataDir) -> DataDir:
        """Store the rows as collector segments under ``data``."""
        spans, points = self.tables()
        for name, table in (("spans", spans), ("metric_points", points)):
            write_parquet_atomic(table, data.raw_table(name) / "day=2027-01-15" / "t.parquet")
        return data

    def con(self, settings: Settings | None = None,
            pricing: Pricing | None = None) -> duckdb.DuckDBPyConnection:
        con = staged(*self.tables())
        compute(con, pricing or load_pricing(), settings or Settings())
        return con


def staged(spans: pa.Table, points: pa.Table) -> duckdb.DuckDBPyConnection:
    """An in-memory connection with raw views over ``spans`` and ``points`` (as over the
    store's segments) and the staging layer on top: what the analytics steps read."""
    con = duckdb.connect()
    for name, table in (("spans", spans), ("metric_points", points)):
        con.register(f"rows_{name}", table)
        con.execute(f"CREATE VIEW raw_{name} AS SELECT * FROM rows_{name}").fetchall()
    con.execute(staging_sql()).fetchall()
    return con


class FlakyExporter(MetricExporter):
    """Refuses while ``down`` is set, like an OTLP exporter whose collector is away."""

    def __init__(self) -> None:
        super().__init__()
        self.down = threading.Event()
        self.got: list[MetricsData] = []

    def export(self, metrics_data: MetricsData, timeout_millis: float = 10_000,
               **_: object) -> MetricExportResult:
        if self.down.is_set():
            return MetricExportResult.FAILURE
        self.got.append(metrics_data)
        return MetricExportResult.SUCCESS

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return True

    def shutdown(self, timeout_millis: float = 30_000, **_: object) -> None:
        return None


def stored(data: DataDir, sql: str) -> list[tuple]:
    """Run ``sql`` on the store's views, as any reader would (no lock, read-only)."""
    if not data.views_sql.exists():  # the test wrote segments itself, in a collector's place
        write_catalog(data)
    con = connect_readonly(data)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def stored_when(data: DataDir, sql: str, ok: Callable[[list[tuple]], bool],
                timeout_s: float = 10.0) -> list[tuple]:
    """``stored`` once ``ok`` holds: a busy collector publishes acknowledged rows from its
    write-ahead file within a second, so a reader may not see them at once."""
    deadline = time.monotonic() + timeout_s
    while not ok(got := stored(data, sql)) and time.monotonic() < deadline:
        time.sleep(0.05)
    return got


def rows(con: duckdb.DuckDBPyConnection, sql: str) -> list[dict]:
    cur = con.execute(sql)
    names = [d[0] for d in cur.description]
    return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


def places(folder: Path) -> list[str]:
    """A table's files by their places: the names without the generation that wrote them."""
    return sorted(re.sub(r"\.g\d+\.parquet$", ".parquet", p.name)
                  for p in folder.glob("*.parquet"))

