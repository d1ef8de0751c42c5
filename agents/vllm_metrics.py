"""Scrapes each local vLLM engine's ``/metrics`` and exports the figures as OTLP metrics.

What is kept: requests running and waiting, KV-cache usage and capacity, prefix-cache queries
and hits, preemptions, prompt tokens (all, by source, and cached), generation tokens and
finished requests by reason — under vLLM's V1 names (as vLLM 0.32 serves them), with the older
V0 names accepted and renamed. Each point keeps the exposition's labels (``engine``,
``model_name``, ``finished_reason``, ``source``; of ``vllm:cache_config_info``'s dozens, only
the KV capacity) and adds the engine's placement: ``inferledger.engine`` (the scrape URL),
``inferledger.pid`` and ``inferledger.gpu_uuids``, which is how analytics puts recomputation
after preemption on GPUs.

Points are built as SDK ``MetricsData`` and handed to the OTLP exporter directly: the metric
names stay exactly vLLM's (the SDK's instruments would refuse the ``:``), and counters stay
cumulative as vLLM counts them. A target that does not answer within ``timeout_s`` is skipped
for that cycle, never stalling the others.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import httpx
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    Gauge,
    Metric,
    MetricExporter,
    MetricsData,
    NumberDataPoint,
    ResourceMetrics,
    ScopeMetrics,
    Sum,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from prometheus_client.parser import text_string_to_metric_families

log = logging.getLogger("inferledger.agent")

# Sample name in the exposition → (V1 name exported, "gauge" | "sum").
KEPT: dict[str, tuple[str, str]] = {
    "vllm:num_requests_running": ("vllm:num_requests_running", "gauge"),
    "vllm:num_requests_waiting": ("vllm:num_requests_waiting", "gauge"),
    "vllm:kv_cache_usage_perc": ("vllm:kv_cache_usage_perc", "gauge"),
    "vllm:gpu_cache_usage_perc": ("vllm:kv_cache_usage_perc", "gauge"),  # V0
    "vllm:prefix_cache_queries_total": ("vllm:prefix_cache_queries_total", "sum"),
    "vllm:gpu_prefix_cache_queries_total": ("vllm:prefix_cache_queries_total", "sum"),  # V0
    "vllm:prefix_cache_hits_total": ("vllm:prefix_cache_hits_total", "sum"),
    "vllm:gpu_prefix_cache_hits_total": ("vllm:prefix_cache_hits_total", "sum"),  # V0
    "vllm:num_preemptions_total": ("vllm:num_preemptions_total", "sum"),
    "vllm:prompt_tokens_total": ("vllm:prompt_tokens_total", "sum"),
    "vllm:generation_tokens_total": ("vllm:generation_tokens_total", "sum"),
    "vllm:prompt_tokens_by_source_total": ("vllm:prompt_tokens_by_source_total", "sum"),
    "vllm:prompt_tokens_cached_total": ("vllm:prompt_tokens_cached_total", "sum"),
    "vllm:request_success_total": ("vllm:request_success_total", "sum"),
    "vllm:cache_config_info": ("vllm:cache_config_info", "gauge"),
}


# Samples whose labels are mostly configuration: only these labels are kept.
LABELS_KEPT = {"vllm:cache_config_info": {"engine", "kv_cache_size_tokens", "num_gpu_blocks",
                                          "block_size"}}
_SAMPLE_NAME = re.compile(r"[^{\s]+")


def parse(exposition: str) -> list[tuple[str, str, dict[str, str], float]]:
    """The kept samples of a Prometheus exposition: (V1 name, kind, labels, value).

    Lines of other samples are dropped before parsing: the parser's cost is per line, and a
    vLLM exposition is mostly histogram buckets the agent does not export.
    """
    kept_lines = "\n".join(
        line for line in exposition.splitlines()
        if (m := _SAMPLE_NAME.match(line)) is not None and m.group() in KEPT)
    out = []
    for family in text_string_to_metric_families(kept_lines + "\n"):
        for s in family.samples:
            kept = KEPT.get(s.name)
            if kept is not None:
                only = LABELS_KEPT.get(s.name)
                labels = {k: v for k, v in s.labels.items() if only is None or k in only}
                out.append((kept[0], kept[1], labels, float(s.value)))
    return out


@dataclass
class Target:
    """One engine: where its /metrics is, and (once known) its process and GPUs."""

    url: str
    pid: int | None = None
    gpu_uuids: list[str] = field(default_factory=list)

    @property
    def port(self) -> int | None:
        return urlsplit(self.url).port


@dataclass
class EngineScraper:
    targets: list[Target]
    exporter: MetricExporter
    host: str
    interval_s: float = 5.0
    timeout_s: float = 2.0
    resource_attributes: dict[str, str] = field(default_factory=dict)
    # Called before each scrape to (re)find a target's PID and GPUs (engines restart).
    locate: Callable[[Target], None] | None = None
    scrapes: int = 0
    failures: int = 0

    def __post_init__(self) -> None:
        self._resource = Resource.create({"service.name": "inferledger-agent",
                                          "host.name": self.host, **self.resource_attributes})
        self._scope = InstrumentationScope("inferledger.agent.vllm")
        self._client = httpx.Client(timeout=self.timeout_s)
        self._start_ns = time.time_ns()
        self._down: set[str] = set()

    def scrape_once(self) -> MetricsData:
        """Scrape every target now; the points, ready to export."""
        by_name: dict[tuple[str, str], list[NumberDataPoint]] = {}
        for t in self.targets:
            if self.locate is not None:
                self.locate(t)
            try:
                r = self._client.get(t.url)
                r.raise_for_status()
                samples = parse(r.text)
            except (httpx.HTTPError, ValueError) as e:
                self.failures += 1
                if t.url not in self._down:
                    log.warning("cannot scrape %s: %s", t.url, e)
                    self._down.add(t.url)
                continue
            self._down.discard(t.url)
            now = time.time_ns()
            placement = {"inferledger.engine": t.url, "inferledger.gpu_uuids": t.gpu_uuids}
            if t.pid is not None:
                placement["inferledger.pid"] = str(t.pid)
            for name, kind, labels, value in samples:
                by_name.setdefault((name, kind), []).append(NumberDataPoint(
                    attributes={**labels, **placement}, start_time_unix_nano=self._start_ns,
                    time_unix_nano=now, value=value))
        self.scrapes += 1
        metrics = [Metric(name, None, None, Sum(points, AggregationTemporality.CUMULATIVE,
                                                 is_monotonic=True) if kind == "sum"
                          else Gauge(points)) for (name, kind), points in by_name.items()]
        return MetricsData([ResourceMetrics(self._resource, [
            ScopeMetrics(self._scope, metrics, "")], "")])

    def run_until(self, stop: threading.Event) -> None:
        while not stop.wait(self.interval_s):
            data = self.scrape_once()
            if data.resource_metrics[0].scope_metrics[0].metrics:
                self.exporter.export(data)

    def start(self, stop: threading.Event) -> threading.Thread:
        t = threading.Thread(target=self.run_until, args=(stop,), name="vllm-scrape",
                             daemon=True)
        t.start()
        return t


def local_locator(gpus_holding: Callable[[set[int]], list[str]]) -> Callable[[Target], None]:
    """Finds a local engine by its port: the listening process, its children (vLLM's engine
    core and workers, which hold the GPUs), and the GPUs NVML shows them on."""
    import psutil

    def locate(t: Target) -> None:
        try:
            pid = next((c.pid for c in psutil.net_connections("tcp")
                        if c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port == t.port
                        and c.pid), None)
            if pid is None:
                return
            family = {pid} | {p.pid for p in psutil.Process(pid).children(recursive=True)}
        except psutil.Error as e:
            log.debug("cannot locate %s: %s", t.url, e)
            return
        t.pid, t.gpu_uuids = pid, gpus_holding(family)

    return locate
