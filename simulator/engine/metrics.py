"""The simulated engine's ``/metrics``: vLLM V1's names, labels and types (research/vllm.md §2).

Rendered with prometheus_client, the library vLLM itself exposes them with, so scrapers see
the same exposition text (``*_total`` counters, ``engine`` and ``model_name`` labels).
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from simulator.engine.core import EngineCore

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class _EngineCollector(Collector):
    def __init__(self, core: EngineCore, model: str) -> None:
        self.core, self.model = core, model

    def collect(self) -> Iterator[Metric]:
        labels, values = ["engine", "model_name"], ["0", self.model]
        stats = self.core.stats
        for name, doc, value in (
                ("vllm:num_requests_running", "Number of requests in model execution batches.",
                 len(self.core.running)),
                ("vllm:num_requests_waiting", "Number of requests waiting to be processed.",
                 len(self.core.waiting)),
                ("vllm:kv_cache_usage_perc", "KV-cache usage. 1 means 100 percent usage.",
                 self.core.kv_cache_usage)):
            g = GaugeMetricFamily(name, doc, labels=labels)
            g.add_metric(values, value)
            yield g
        for name, doc, value in (
                ("vllm:num_preemptions", "Cumulative number of preemption from the engine.",
                 stats.preemptions),
                ("vllm:prompt_tokens", "Number of prefill tokens processed.",
                 stats.prompt_tokens),
                ("vllm:prompt_tokens_recomputed", "Prompt tokens recomputed after preemption.",
                 stats.recomputed_prompt_tokens),
                ("vllm:generation_tokens", "Number of generation tokens processed.",
                 stats.generation_tokens)):
            c = CounterMetricFamily(name, doc, labels=labels)
            c.add_metric(values, value)
            yield c
        done = CounterMetricFamily("vllm:request_success", "Count of successfully processed "
                                   "requests.", labels=["engine", "finished_reason", "model_name"])
        for reason, n in sorted(stats.finished.items()):
            done.add_metric(["0", reason, self.model], n)
        yield done


def exposition(core: EngineCore, model: str) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_EngineCollector(core, model))
    return generate_latest(registry)
