"""The agent keeps its samples while the collector is away and delivers them afterwards."""

from __future__ import annotations

import subprocess
import sys
import time

from opentelemetry.sdk.metrics.export import MetricExportResult, MetricsData

from agents.buffered_exporter import BufferedExporter
from agents.gpu import open_backend
from agents.node_agent import NodeAgent
from inferledger.otel import metric_exporter
from inferledger.procs import wait_for_port
from inferledger.store import DataDir
from simulator.gpu_state import NodeGpus
from tests.builders import FlakyExporter, stored
from tests.ports import free_block


def _agent_batches(n: int) -> list[MetricsData]:
    """Real MetricsData from a real agent over a simulated node."""
    import tempfile
    from pathlib import Path

    state = Path(tempfile.mkdtemp()) / "n.gpus"
    NodeGpus.create(state, "n", ["h100"]).close()
    inner = FlakyExporter()
    agent = NodeAgent(open_backend(f"sim:{state}"), inner, interval_s=60)
    for _ in range(n):
        agent._reader.collect()
    agent.exporter.force_flush(5_000)
    agent.shutdown()
    return inner.got


def test_batches_wait_in_order_while_the_collector_is_down() -> None:
    batches = _agent_batches(3)
    inner = FlakyExporter()
    inner.down.set()
    buf = BufferedExporter(inner, retry_s=0.05)
    for b in batches:
        assert buf.export(b) == MetricExportResult.SUCCESS  # never blocks sampling
    time.sleep(0.2)
    assert inner.got == [] and buf.queued_points > 0
    inner.down.clear()
    assert buf.force_flush(5_000)
    assert inner.got == batches and buf.dropped_points == 0
    buf.shutdown()


def _points(data: MetricsData) -> int:
    return sum(len(m.data.data_points) for rm in data.resource_metrics
               for sm in rm.scope_metrics for m in sm.metrics)


def test_past_its_bounds_the_buffer_drops_the_oldest_and_counts_them() -> None:
    from opentelemetry.exporter.otlp.proto.common.metrics_encoder import encode_metrics

    batches = _agent_batches(4)
    inner = FlakyExporter()
    inner.down.set()
    room = sum(encode_metrics(b).ByteSize() for b in batches[2:])  # the two newest fit
    buf = BufferedExporter(inner, max_bytes=room, retry_s=0.05)
    for b in batches:
        buf.export(b)
    assert buf.dropped_points == _points(batches[0]) + _points(batches[1])
    aged = BufferedExporter(inner, max_age_s=0.0, retry_s=0.05)
    aged.export(batches[0])
    time.sleep(0.2)
    assert aged.dropped_points == _points(batches[0])  # too old to be worth keeping
    inner.down.clear()
    assert buf.force_flush(5_000) and inner.got == batches[2:]
    buf.shutdown()
    aged.shutdown()


def test_samples_taken_during_an_outage_reach_the_store_after_it(tmp_path) -> None:
    state = tmp_path / "n.gpus"
    NodeGpus.create(state, "node-b", ["h100"]).close()
    data = DataDir.at(tmp_path / "data")
    http = free_block(2)
    args = [sys.executable, "-m", "commands", "collector", "--data", str(data.root),
            "--http-port", str(http), "--grpc-port", str(http + 1)]

    def collector() -> subprocess.Popen:
        p = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for_port("127.0.0.1", http, 30)
        return p

    proc = collector()
    agent = NodeAgent(open_backend(f"sim:{state}"),
                      metric_exporter(f"http://127.0.0.1:{http}"), host="node-b",
                      interval_s=0.2)
    try:
        time.sleep(1.0)
        proc.terminate()
        proc.wait(30)
        outage = time.time()
        time.sleep(2.0)  # ≈ 10 samples taken while nobody listens
        back = time.time()
        proc = collector()
        time.sleep(1.5)
    finally:
        agent.shutdown()
        proc.terminate()
        proc.wait(30)
    during = stored(data, f"SELECT count(*) FROM stg_gpu_samples WHERE ts_s > {outage} "
                          f"AND ts_s < {back}")[0][0]
    assert during >= 5  # sampled in the outage, delivered after it
    assert agent.exporter.dropped_points == 0
