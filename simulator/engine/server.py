"""Runs one simulated engine process: its GPUs, its tracer and its HTTP server."""

from __future__ import annotations

import logging
import os
import socket
from pathlib import Path

import uvicorn
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from inferledger.errors import UserError
from inferledger.otel import span_exporter
from inferledger.ports import ensure_free
from inferledger.procs import install_stop_handlers
from simulator import SIMULATED_RESOURCE
from simulator.engine.app import build_app
from simulator.engine.core import EngineCore
from simulator.engine.profiles import MODEL_PROFILES
from simulator.gpu_state import NodeGpus

log = logging.getLogger("inferledger.sim.engine")


def visible_gpu_indices(count: int) -> list[int]:
    """The node GPUs this process may use, from CUDA_VISIBLE_DEVICES (indices), like CUDA."""
    raw = os.environ.get("CUDA_VISIBLE_DEVICES")
    if raw is None:
        return list(range(count))
    out = [int(x) for x in raw.split(",") if x.strip()]
    if not out or any(not 0 <= i < count for i in out):
        raise UserError(f"CUDA_VISIBLE_DEVICES={raw!r} does not name GPUs 0..{count - 1}")
    return out


def serve_engine(*, model: str, state: Path, host: str, port: int, otlp_endpoint: str | None,
                 otlp_protocol: str = "grpc", middleware: list[str] = (),
                 max_num_seqs: int = 64, seed: int | None = None,
                 load_s: float | None = None) -> None:
    """Serve ``model`` like ``vllm serve``: load the weights (``load_s``, default at 8 GB/s
    per GPU), then answer HTTP."""
    profile = MODEL_PROFILES.get(model)
    if profile is None:
        raise UserError(f"unknown simulated model {model!r}; known: {sorted(MODEL_PROFILES)}")
    ensure_free(host, [(port, f"the simulated engine of {model}")])
    gpus = NodeGpus(state)
    indices = visible_gpu_indices(len(gpus.gpus))
    core = EngineCore(profile, gpus, indices, max_num_seqs=max_num_seqs)
    provider = None
    if otlp_endpoint or os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
        # What vLLM's tracer carries: its module name and process id
        # (vllm.instrumenting_module_name, vllm.process_id).
        resource = Resource.create({
            "service.name": "vllm", "host.name": gpus.node or socket.gethostname(),
            "vllm.instrumenting_module_name": "vllm.llm_engine",
            "vllm.process_id": os.getpid(), **SIMULATED_RESOURCE})
        provider = TracerProvider(resource=resource)
        provider.add_span_processor(BatchSpanProcessor(span_exporter(otlp_endpoint,
                                                                     otlp_protocol)))
    # vLLM 0.32 spans its own start-up ("Overall Loading", a root span of the API server's
    # process): the model-loading window's start, which the process start is not.
    loading = provider.get_tracer("vllm.v1.engine.core_client").start_span(
        "Overall Loading") if provider is not None else None
    core.load_weights(profile.weight_bytes / (8e9 * len(indices)) if load_s is None else load_s)
    if loading is not None:
        loading.end()
    app = build_app(core, model, provider, list(middleware), seed=seed)
    log.info("engine %s on %s GPU(s) %s, pid %d: http://%s:%d/v1", model, gpus.node, indices,
             os.getpid(), host, port)
    config = uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False)
    # uvicorn re-raises the stop signal after its graceful shutdown, restoring the handlers it
    # found: with ours in place that re-raise is harmless and the spans still get flushed.
    install_stop_handlers(lambda: None)
    try:
        uvicorn.Server(config).run()
    finally:
        if provider is not None:
            provider.shutdown()
        gpus.close()
