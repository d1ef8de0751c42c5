"""vLLM's ``llm_request`` span, as ``OutputProcessor.do_tracing`` emits it.

Its start is the request's arrival at the frontend (wall clock, after HTTP parsing and the
chat template); TTFT and e2e are frontend wall-clock differences, queue, prefill, decode and
inference differences of the engine core's monotonic timestamps (stg_engine_spans reads them
so).
"""

from __future__ import annotations

import time

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import SpanKind
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from simulator.engine.core import SimRequest

_PROPAGATOR = TraceContextTextMapPropagator()


def emit_llm_request_span(provider: TracerProvider, r: SimRequest) -> None:
    """One SERVER span per finished request; parent from the request's W3C headers only."""
    tracer = provider.get_tracer("vllm.llm_engine")
    ctx = _PROPAGATOR.extract(r.trace_headers)
    span = tracer.start_span("llm_request", context=ctx, kind=SpanKind.SERVER,
                             start_time=int(r.arrival_wall * 1e9))
    now = time.time()
    attrs: dict[str, float | int | str] = {
        "gen_ai.latency.time_to_first_token": (r.first_token_wall or now) - r.arrival_wall,
        "gen_ai.latency.e2e": now - r.arrival_wall,
        "gen_ai.latency.time_in_queue": (r.scheduled_mono or r.queued_mono) - r.queued_mono,
        "gen_ai.latency.time_in_model_prefill": (r.first_token_mono or 0) - (r.scheduled_mono or 0),
        "gen_ai.latency.time_in_model_decode": (r.last_token_mono or 0) - (r.first_token_mono or 0),
        "gen_ai.latency.time_in_model_inference":
            (r.last_token_mono or 0) - (r.scheduled_mono or 0),
        "gen_ai.usage.prompt_tokens": r.prompt_tokens,
        "gen_ai.usage.completion_tokens": r.generated,
        "gen_ai.request.id": r.request_id,
    }
    # vLLM sets sampling params only when truthy (temperature=0 is omitted).
    for key in ("top_p", "max_tokens", "temperature", "n"):
        if r.sampling.get(key):
            attrs[f"gen_ai.request.{key}"] = r.sampling[key]
    span.set_attributes(attrs)
    span.end(end_time=int(now * 1e9))
