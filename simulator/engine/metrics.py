"""The simulated engine's ``/metrics``: the families, names and label sets vLLM 0.32 serves
(``tests/fixtures/vllm-0.32/metrics.txt`` is a real 0.32.0 exposition; a test holds every
family here to it).

Rendered with prometheus_client, the library vLLM itself exposes them with, so scrapers see
the same exposition text. Only what the simulator models is served: no histogram it does not
keep, and no counter vLLM lacks (0.32 has no recomputed-token counter: preemptions are
counted, the tokens they cost are not).
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from simulator.engine.core import BLOCK_TOKENS, EngineCore

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
FINISH_REASONS = ("stop", "length", "abort", "error", "repetition")  # vLLM 0.32 lists all
PROMPT_SOURCES = ("local_compute", "local_cache_hit", "external_kv_transfer")
# vllm:cache_config_info's labels in 0.32; the simulator sets the ones it models.
CACHE_CONFIG_LABELS = (
    "_block_size_resolved", "block_size", "cache_dtype", "cache_hit_alignment_tokens",
    "effective_attention_block_size", "enable_mamba_shared_prefix_checkpoint",
    "enable_prefix_caching", "engine", "gpu_memory_utilization", "hash_block_size",
    "is_attention_free", "kv_cache_dtype_skip_layers", "kv_cache_layout",
    "kv_cache_max_concurrency", "kv_cache_memory_bytes", "kv_cache_size_tokens",
    "kv_offloading_backend", "kv_offloading_size", "kv_sharing_fast_prefill",
    "mamba_block_size", "mamba_cache_dtype", "mamba_cache_mode", "mamba_page_size_padded",
    "mamba_ssm_cache_dtype", "num_cpu_blocks", "num_gpu_blocks", "num_gpu_blocks_override",
    "prefix_cache_retention_interval", "prefix_caching_hash_algo", "prefix_match_unit",
    "replayssm_buffer_len", "skip_page_size_padded", "sliding_window", "swa_bounded_replay",
    "use_kda_recoverssm", "use_replayssm", "user_specified_block_size")


class _EngineCollector(Collector):
    def __init__(self, core: EngineCore, model: str) -> None:
        self.core, self.model = core, model

    def _cache_config(self) -> dict[str, str]:
        core = self.core
        set_ = {"block_size": str(BLOCK_TOKENS), "engine": "0",
                "effective_attention_block_size": str(BLOCK_TOKENS),
                "enable_prefix_caching": "False", "cache_dtype": "auto",
                "gpu_memory_utilization": str(core.gpu_memory_utilization),
                "num_gpu_blocks": str(core.kv_blocks_total),
                "kv_cache_size_tokens": str(core.kv_blocks_total * BLOCK_TOKENS),
                "kv_cache_memory_bytes": str(core.kv_blocks_total * BLOCK_TOKENS
                                             * core.profile.kv_bytes_per_token)}
        return {k: set_.get(k, "None") for k in CACHE_CONFIG_LABELS}

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
        config = self._cache_config()
        info = GaugeMetricFamily("vllm:cache_config_info", "Information of the LLMEngine "
                                 "CacheConfig", labels=list(config))
        info.add_metric(list(config.values()), 1.0)
        yield info
        for name, doc, value in (
                ("vllm:num_preemptions", "Cumulative number of preemption from the engine.",
                 stats.preemptions),
                ("vllm:prompt_tokens", "Number of prefill tokens processed.",
                 stats.prompt_tokens),
                ("vllm:prompt_tokens_cached", "Number of cached prompt tokens (local + "
                 "external).", 0),
                ("vllm:generation_tokens", "Number of generation tokens processed.",
                 stats.generation_tokens),
                # the simulator has no prefix cache (enable_prefix_caching False)
                ("vllm:prefix_cache_queries", "Prefix cache queries, in terms of number of "
                 "queried tokens.", 0),
                ("vllm:prefix_cache_hits", "Prefix cache hits, in terms of number of cached "
                 "tokens.", 0)):
            c = CounterMetricFamily(name, doc, labels=labels)
            c.add_metric(values, value)
            yield c
        by_source = CounterMetricFamily("vllm:prompt_tokens_by_source", "Number of prompt "
                                        "tokens by source.", labels=[*labels, "source"])
        for source in PROMPT_SOURCES:  # no prefix cache: every prompt token is computed
            by_source.add_metric([*values, source],
                                 stats.prompt_tokens if source == "local_compute" else 0)
        yield by_source
        done = CounterMetricFamily("vllm:request_success", "Count of successfully processed "
                                   "requests.", labels=["engine", "finished_reason", "model_name"])
        for reason in FINISH_REASONS:
            done.add_metric(["0", reason, self.model], stats.finished.get(reason, 0))
        yield done


def exposition(core: EngineCore, model: str) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_EngineCollector(core, model))
    return generate_latest(registry)
