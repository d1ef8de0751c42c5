"""The wire contract: every span, metric and attribute name InferLedger sends or reads.

A source other than ours (another gateway, a DCGM-based agent, a new engine) needs only this
to be understood: what each name means, its type and unit, and which are required. The
middleware, gateway, node agent, simulator and the staging SQL use no name that is not here
(``tests/test_contract.py`` reads their source and fails on one), and ``docs/CONTRACT.md``
documents every name here (the same test checks it). Names follow OpenTelemetry's semantic
conventions where one exists (``gen_ai.*``, ``hw.*``, ``http.*``); ours are ``inferledger.*``.
Values travel as OTLP attributes; the collector stores them as text, so a list is its JSON.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Name:
    """One name on the wire: what it carries, and whether InferLedger needs it."""

    name: str
    type: str  # string, int, double, bool, string[] (a JSON list as text)
    meaning: str
    unit: str = ""
    required: bool = False


# What the edge spans (middleware, gateway) carry, beyond OTel's own.
SOURCE = "inferledger.span.source"
SPAN_SOURCES = {"middleware": "the middleware inside an engine's server: one SERVER span per "
                              "inference request",
                "gateway": "the gateway in front of engines: one SERVER span per request",
                "engine_startup": "the middleware's span of an engine's start-up"}

# An edge span's verdict on a request, and the work class its GPU time is booked to.
OUTCOMES = {"ok": "useful", "error": "failed", "rejected": "failed", "timeout": "timed_out",
            "client_abort": "aborted"}

SPAN_NAMES = (
    Name("llm_request", "span", "vLLM's span of one choice of a request (SERVER); n > 1 "
         "choices are n spans with one gen_ai.request.id under one parent", required=True),
    Name("inferledger.engine.startup", "span", "an engine's start-up: process start → ready "
         "(the middleware, at the server's lifespan start-up)"),
    Name("Overall Loading", "span", "vLLM's own start-up span (a root span of the API "
         "server's process): when model loading began"),
)

SPAN_ATTRIBUTES = (
    Name(SOURCE, "string", "which InferLedger component made the span: "
         + ", ".join(SPAN_SOURCES), required=True),
    Name("inferledger.request_id", "string", "the request's id, also sent to vLLM as "
         "x-request-id: joins the edge span to vLLM's when no trace context reached vLLM"),
    Name("inferledger.tenant", "string", "who the request is for: the tenant header, else a "
         "keyed hash of the API key (key-…), else unknown"),
    Name("inferledger.route", "string", "the app or route: the route header, else the path"),
    Name("inferledger.stream", "bool", "the client asked for a stream"),
    Name("inferledger.outcome", "string", "the request's verdict: " + ", ".join(OUTCOMES),
         required=True),
    Name("inferledger.ttft_s", "double", "time to first token as the edge saw it (streams)",
         "s"),
    Name("inferledger.usage.estimated", "bool", "output tokens counted from stream chunks "
         "(no usage: an aborted stream), not reported by vLLM"),
    Name("inferledger.host", "string", "the host the engine runs on (placement)"),
    Name("inferledger.pid", "int", "the engine server's process id (placement by the agent's "
         "GPU process samples and their ancestors)"),
    Name("inferledger.gpu_uuids", "string[]", "the GPUs the engine uses "
         "(CUDA_VISIBLE_DEVICES resolved through NVML); empty when unknown"),
    Name("inferledger.upstream", "string", "the engine a gateway sent the request to"),
    Name("inferledger.answer_id", "string", "the answer a request serves "
         "(X-InferLedger-Answer-Id)"),
    Name("inferledger.retry_key", "string", "a hash of the Idempotency-Key header (never the "
         "key): attempts at the same work"),
    Name("inferledger.retry_attempt", "int", "the attempt number (X-Stainless-Retry-Count)"),
    Name("inferledger.usage.context_tokens", "int", "prompt tokens that are added context "
         "(X-InferLedger-Context-Tokens)", "{token}"),
    Name("inferledger.usage.user_tokens", "int", "prompt tokens that are the user's own "
         "(X-InferLedger-User-Tokens)", "{token}"),
    Name("inferledger.context_tokens", "int", "on a retrieval or tool span: the context it "
         "added to the next request's prompt", "{token}"),
    # OpenTelemetry's GenAI and HTTP conventions, as the edge spans set them
    Name("gen_ai.operation.name", "string", "chat, text_completion, embeddings (invoke_agent, "
         "execute_tool: not requests)"),
    Name("gen_ai.provider.name", "string", "vllm"),
    Name("gen_ai.request.model", "string", "the model asked for", required=True),
    Name("gen_ai.request.max_tokens", "int", "the reply's token limit", "{token}"),
    Name("gen_ai.request.temperature", "double", "sampling temperature (vLLM's span, where "
         "not 0)"),
    Name("gen_ai.request.top_p", "double", "nucleus sampling (vLLM's span)"),
    Name("gen_ai.request.n", "int", "choices asked for (vLLM's span)"),
    Name("gen_ai.response.model", "string", "the model that answered"),
    Name("gen_ai.response.finish_reasons", "string[]", "why each choice ended"),
    Name("gen_ai.usage.input_tokens", "int", "prompt tokens", "{token}"),
    Name("gen_ai.usage.output_tokens", "int", "output tokens, every choice's", "{token}"),
    Name("gen_ai.usage.cache_read.input_tokens", "int", "prompt tokens read from the prefix "
         "cache", "{token}"),
    Name("gen_ai.usage.prompt_tokens", "int", "older name of input_tokens (vLLM)", "{token}"),
    Name("gen_ai.usage.completion_tokens", "int", "older name of output_tokens (vLLM)",
         "{token}"),
    Name("gen_ai.usage.cached_tokens", "int", "vLLM's prefix-cache hits", "{token}"),
    Name("gen_ai.agent.name", "string", "an agent run's name (an app's root span)"),
    Name("gen_ai.tool.name", "string", "a tool call's tool (a tool span)"),
    Name("http.request.method", "string", "POST"),
    Name("http.response.status_code", "int", "the HTTP status returned"),
    Name("http.route", "string", "the route template (a proxy's span)"),
    Name("url.path", "string", "the request path"),
    Name("error.type", "string", "why a proxy's request failed (any value: failed)"),
    # vLLM's llm_request span (read, never written by us)
    Name("gen_ai.request.id", "string", "vLLM's request id: chatcmpl-<id>, cmpl-<id>-<n>, "
         "embd-<id> around the x-request-id it was given", required=True),
    Name("gen_ai.latency.time_in_queue", "double", "waiting for the scheduler", "s"),
    Name("gen_ai.latency.time_to_first_token", "double", "arrival → first token", "s"),
    Name("gen_ai.latency.time_in_model_prefill", "double", "scheduled → first token", "s"),
    Name("gen_ai.latency.time_in_model_decode", "double", "first token → last", "s"),
    Name("gen_ai.latency.time_in_model_inference", "double", "scheduled → last token", "s"),
    Name("gen_ai.latency.e2e", "double", "arrival → last token", "s"),
)

RESOURCE_ATTRIBUTES = (
    Name("service.name", "string", "the sending service (vLLM: set OTEL_SERVICE_NAME)"),
    Name("host.name", "string", "the sending host (vLLM: set OTEL_RESOURCE_ATTRIBUTES="
         "host.name=…; without it vLLM's spans cannot be placed)"),
    Name("service.instance.id", "string", "one agent process: a GPU two agents report at "
         "once is quarantined, not added up"),
    Name("vllm.process_id", "int", "vLLM's process (the API server's for llm_request)"),
    Name("vllm.instrumenting_module_name", "string", "vLLM's tracer module"),
    Name("process.pid", "int", "the sending process (the simulated engine)"),
    Name("inferledger.simulated", "bool", "sent by the simulator"),
)

METRICS = (
    Name("hw.energy", "sum", "energy used since the driver loaded (a counter)", "J",
         required=True),
    Name("hw.power", "gauge", "power now", "W", required=True),
    Name("hw.gpu.memory.usage", "gauge", "memory used", "By"),
    Name("hw.gpu.memory.limit", "gauge", "memory in all", "By"),
    Name("hw.gpu.utilization", "gauge", "share of time a kernel ran (0–1)", "1"),
    Name("hw.temperature", "gauge", "temperature", "Cel"),
    Name("hw.status", "up_down_counter", "1 for the GPU's state (hw.state ok or failed), 0 for "
         "the other", "1"),
    Name("inferledger.gpu.power.average", "gauge", "NVML's 1-s average power", "W"),
    Name("inferledger.gpu.power.limit", "gauge", "the power cap", "W"),
    Name("inferledger.gpu.clock.sm", "gauge", "SM clock", "MHz"),
    Name("inferledger.gpu.clock_event_reasons", "gauge", "NVML's clock event reasons bitmask",
         "1"),
    Name("inferledger.gpu.sm.active", "gauge", "GPM: share of SMs busy (0–1)", "1"),
    Name("inferledger.gpu.sm.occupancy", "gauge", "GPM: warps resident vs maximum (0–1)", "1"),
    Name("inferledger.gpu.tensor.active", "gauge", "GPM: tensor-core activity (0–1)", "1"),
    Name("inferledger.gpu.dram.active", "gauge", "GPM: DRAM bandwidth vs peak (0–1)", "1"),
    Name("inferledger.gpu.mig.memory.usage", "gauge", "memory used in a MIG instance", "By"),
    Name("inferledger.gpu.mig.memory.limit", "gauge", "memory of a MIG instance", "By"),
    Name("inferledger.gpu.process.memory.usage", "gauge", "memory a process holds on a GPU: "
         "placement by process", "By"),
    Name("inferledger.agent.late_samples", "sum", "GPU samples skipped: NVML overran its "
         "deadline", "{sample}"),
    Name("inferledger.agent.dropped_points", "sum", "points dropped: the collector was away "
         "too long", "{point}"),
    # vLLM's /metrics, as the agent scrapes and forwards them (V1 names; V0's renamed)
    Name("vllm:num_requests_running", "gauge", "requests in the batch"),
    Name("vllm:num_requests_waiting", "gauge", "requests queued"),
    Name("vllm:kv_cache_usage_perc", "gauge", "KV cache used (0–1)", "1"),
    Name("vllm:prefix_cache_queries_total", "sum", "prefix-cache lookups", "{token}"),
    Name("vllm:prefix_cache_hits_total", "sum", "prefix-cache hits", "{token}"),
    Name("vllm:num_preemptions_total", "sum", "requests preempted"),
    Name("vllm:prompt_tokens_total", "sum", "prompt tokens", "{token}"),
    Name("vllm:generation_tokens_total", "sum", "generated tokens", "{token}"),
    Name("vllm:prompt_tokens_by_source_total", "sum", "prompt tokens by source", "{token}"),
    Name("vllm:prompt_tokens_cached_total", "sum", "prompt tokens from cache", "{token}"),
    Name("vllm:request_success_total", "sum", "requests finished, by finished_reason"),
    Name("vllm:cache_config_info", "gauge", "KV cache configuration (labels)"),
    Name("vllm:gpu_cache_usage_perc", "gauge", "V0's name of vllm:kv_cache_usage_perc "
         "(renamed by the agent)", "1"),
    Name("vllm:gpu_prefix_cache_queries_total", "sum", "V0's name of "
         "vllm:prefix_cache_queries_total (renamed)", "{token}"),
    Name("vllm:gpu_prefix_cache_hits_total", "sum", "V0's name of vllm:prefix_cache_hits_total "
         "(renamed)", "{token}"),
    # the collector's own telemetry, stored beside what it receives
    Name("inferledger.collector.items", "sum", "items received, by signal and outcome "
         "(accepted, rejected)", "{item}"),
    Name("inferledger.collector.throttled", "sum", "requests refused under back-pressure",
         "{request}"),
    Name("inferledger.collector.duplicate_spans", "sum", "spans delivered again (retries)",
         "{span}"),
    Name("inferledger.collector.flush.duration", "sum", "time writing segments (count: "
         "flushes)", "s"),
    Name("inferledger.collector.queue.rows", "gauge", "rows waiting to be written", "{row}"),
    Name("inferledger.collector.store.size", "gauge", "bytes in the store", "By"),
    Name("inferledger.collector.store.files", "gauge", "files in the store", "{file}"),
)

METRIC_ATTRIBUTES = (
    Name("hw.id", "string", "the GPU's UUID (of a MIG instance: its own)", required=True),
    Name("hw.model", "string", "the GPU's model name: pricing matches on it", required=True),
    Name("hw.type", "string", "gpu"),
    Name("hw.state", "string", "ok or failed (hw.status)"),
    Name("hw.parent_id", "string", "a MIG instance's GPU"),
    Name("process.pid", "string", "the process holding GPU memory (text)"),
    Name("inferledger.process.ancestor_pids", "string", "that process's parent, grandparent, "
         "… (comma-separated): vLLM's API server is its worker's"),
    Name("container.id", "string", "the process's container"),
    Name("k8s.pod.uid", "string", "the process's Kubernetes pod"),
    Name("inferledger.gpu.mig_id", "string", "the MIG instance a process runs in"),
    Name("inferledger.gpu.instance_id", "string", "a MIG instance's GPU instance id"),
    Name("inferledger.engine", "string", "the engine's /metrics URL"),
    Name("inferledger.pid", "string", "the engine server's process id"),
    Name("inferledger.gpu_uuids", "string[]", "the GPUs the engine's processes hold"),
    Name("model_name", "string", "vLLM's label: the served model"),
    Name("engine", "string", "vLLM's label: the engine index"),
    Name("finished_reason", "string", "vLLM's label: stop, length, abort, …"),
    Name("source", "string", "vLLM's label of prompt_tokens_by_source"),
    Name("kv_cache_size_tokens", "string", "vLLM's cache_config_info label: KV capacity"),
    Name("num_gpu_blocks", "string", "vLLM's cache_config_info label"),
    Name("block_size", "string", "vLLM's cache_config_info label: tokens per block"),
    Name("signal", "string", "the collector's items: traces or metrics"),
    Name("outcome", "string", "the collector's items: accepted or rejected"),
)

ALL = (*SPAN_NAMES, *SPAN_ATTRIBUTES, *RESOURCE_ATTRIBUTES, *METRICS, *METRIC_ATTRIBUTES)


def defined() -> set[str]:
    """Every name the contract defines."""
    return {n.name for n in ALL}
