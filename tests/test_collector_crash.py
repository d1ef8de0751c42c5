"""kill -9 at any moment loses no acknowledged span, and replays add no duplicates.

Real SDK exporters (OTLP/HTTP and OTLP/gRPC) send batches of spans with known ids, each batch
retried until the collector acknowledges it, while the collector process — compacting its
segments every 0.2 s — is SIGKILLed and restarted again and again mid-stream. Afterwards the
store holds exactly the acknowledged spans: none missing, none extra, each once after
deduplication.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time

import pytest
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExp
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExp
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from inferledger.procs import wait_for_port
from inferledger.store import DataDir
from tests.builders import stored
from tests.ports import free_block

pytestmark = pytest.mark.e2e

BATCHES, PER_BATCH = 150, 100


def _spans(tag: str) -> list[list]:
    """BATCHES batches of finished SDK spans, attributes like a real inference span."""
    mem = InMemorySpanExporter()
    tp = TracerProvider(resource=Resource.create({"service.name": f"crash-{tag}"}))
    tp.add_span_processor(SimpleSpanProcessor(mem))
    tracer = tp.get_tracer("crash")
    for i in range(BATCHES * PER_BATCH):
        with tracer.start_as_current_span(f"chat {tag}") as s:
            s.set_attributes({"inferledger.tenant": f"t{i % 7}", "gen_ai.usage.output_tokens": i,
                              "inferledger.request_id": f"{tag}-{i}"})
    spans = list(mem.get_finished_spans())
    return [spans[k:k + PER_BATCH] for k in range(0, len(spans), PER_BATCH)]


def _send(exporter, batches: list[list], acked: list[str], stop: threading.Event) -> None:
    for batch in batches:
        # The exporter retries by itself for 2 s; past that, the batch is sent again.
        while exporter.export(batch) != SpanExportResult.SUCCESS:
            assert not stop.is_set(), "gave up: the collector never came back"
        acked.extend(f"{s.context.trace_id:032x}:{s.context.span_id:016x}" for s in batch)


def test_kill_9_mid_stream_loses_nothing_acknowledged(tmp_path) -> None:
    data = tmp_path / "data"
    http = free_block(2)
    grpc_port = http + 1
    args = [sys.executable, "-m", "commands", "collector", "--data", str(data),
            "--http-port", str(http), "--grpc-port", str(grpc_port),
            "--compact-every", "0.2"]  # kills land mid-compaction too

    started: list[subprocess.Popen] = []

    def start() -> subprocess.Popen:
        started.append(subprocess.Popen(args, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL))
        wait_for_port("127.0.0.1", http, 30)
        wait_for_port("127.0.0.1", grpc_port, 30)
        assert started[-1].poll() is None
        return started[-1]

    proc = start()
    acked: list[str] = []
    stop = threading.Event()
    exporters = {"http": HttpExp(endpoint=f"http://127.0.0.1:{http}/v1/traces", timeout=2),
                 "grpc": GrpcExp(endpoint=f"127.0.0.1:{grpc_port}", insecure=True, timeout=2)}
    clients = [threading.Thread(target=_send, args=(e, _spans(tag), acked, stop))
               for tag, e in exporters.items()]
    for c in clients:
        c.start()
    kills, rng = 0, random.Random(7)
    try:
        while any(c.is_alive() for c in clients) and kills < 6:
            time.sleep(rng.uniform(0.1, 0.8))
            os.kill(proc.pid, signal.SIGKILL)  # at any moment: mid-request, mid-fsync, idle
            proc.wait()
            kills += 1
            proc = start()
        for c in clients:
            c.join(timeout=120)
        assert not any(c.is_alive() for c in clients)
    finally:
        stop.set()
        started[-1].send_signal(signal.SIGINT)
        started[-1].wait(timeout=30)
        for p in started:
            if p.poll() is None:
                p.kill()
    assert kills >= 3  # each while the clients were still sending
    assert len(acked) == 2 * BATCHES * PER_BATCH
    d = DataDir.at(data)
    keys = [r[0] for r in stored(d, "SELECT span_key FROM stg_spans")]
    assert len(keys) == len(set(keys))  # each span once
    assert set(keys) == set(acked)  # nothing lost, nothing invented
    assert not list(d.raw.glob("*/day=*/.*.tmp"))  # no half-written segment left behind
    assert list(d.raw.glob("spans/day=*/c-*.parquet"))  # compaction did run
