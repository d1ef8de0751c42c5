"""The agent on a bad day: a hung NVML call, a GPU falling off the bus, MIG and GPM data,
all the way from the fake NVML through a real collector into the store's views."""

from __future__ import annotations

import subprocess
import sys
import time

from opentelemetry.sdk.metrics.export import MetricsData

from agents.gpu import NvmlBackend
from agents.node_agent import NodeAgent
from inferledger.otel import metric_exporter
from inferledger.procs import wait_for_port
from inferledger.store import DataDir
from simulator.fake_nvml import SimulatedNvml
from simulator.gpu_state import NodeGpus
from tests.builders import FlakyExporter, stored
from tests.ports import free_block


def _points(batches: list[MetricsData], name: str) -> list[tuple[dict, float]]:
    return [(dict(p.attributes), p.value)
            for b in batches for rm in b.resource_metrics for sm in rm.scope_metrics
            for m in sm.metrics if m.name == name for p in m.data.data_points]


def _until(predicate, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.05)


def test_a_hung_gpu_costs_only_its_own_samples(tmp_path) -> None:
    node = NodeGpus.create(tmp_path / "n.gpus", "n", ["h100", "h100"])
    nvml = SimulatedNvml(node.path)
    got = FlakyExporter()
    agent = NodeAgent(NvmlBackend(nvml), got, interval_s=0.2)
    u0, u1 = node.gpus[0].uuid, node.gpus[1].uuid
    try:
        _until(lambda: _points(got.got, "hw.power"))
        nvml.slow(0, 1.0)  # every call on GPU 0 now hangs for a second
        start = agent.samples_taken
        _until(lambda: agent.samples_taken >= start + 4)
        assert agent.late_samples.get(0, 0) >= 2  # cycles went on without it
        nvml.slow(0, 0)
        late = agent.late_samples[0]
        _until(lambda: agent.samples_taken >= start + 12)
        assert agent.late_samples[0] <= late + 1  # the hung call returned; back to normal
        agent.exporter.force_flush(5_000)
    finally:
        agent.shutdown()
        node.close()
    late_points = _points(got.got, "inferledger.agent.late_samples")
    assert {a["hw.id"] for a, v in late_points if v >= 2} == {u0}
    seen = [a["hw.id"] for a, _ in _points(got.got, "hw.power")]
    assert seen.count(u1) > seen.count(u0) > 0  # GPU 1 never missed a cycle; GPU 0 returned


def test_gpu_health_mig_and_gpm_reach_the_store(tmp_path) -> None:
    node = NodeGpus.create(tmp_path / "n.gpus", "node-m", ["h100", "a100", "h100"])
    nvml = SimulatedNvml(node.path, mig={1: ["3g.40gb", "3g.40gb"]})
    node.update(0, power_w=500.0, busy=True, mem_used_bytes=30 * 2**30, pid=1111)
    node.update(1, power_w=250.0, busy=True, mem_used_bytes=20 * 2**30, pid=2222)
    data = DataDir.at(tmp_path / "data")
    http = free_block(2)
    collector = subprocess.Popen(
        [sys.executable, "-m", "commands", "collector", "--data", str(data.root),
         "--http-port", str(http), "--grpc-port", str(http + 1)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for_port("127.0.0.1", http, 30)
    agent = NodeAgent(NvmlBackend(nvml), metric_exporter(f"http://127.0.0.1:{http}"),
                      host="node-m", interval_s=0.2)
    try:
        _until(lambda: agent.samples_taken >= 3)
        nvml.lose(2)  # GPU 2 falls off the bus mid-run
        _until(lambda: agent.samples_taken >= 8)
    finally:
        agent.shutdown()
        collector.terminate()
        collector.wait(30)
        node.close()
    h100, a100, gone = (g.uuid for g in node.gpus)
    sm = dict(stored(data, "SELECT gpu_uuid, max(sm_active) FROM stg_gpu_samples GROUP BY 1"))
    assert 0.5 < sm[h100] <= 1 and sm[a100] is None  # GPM on Hopper only
    mig = stored(data, "SELECT DISTINCT gpu_uuid, gpu_instance_id, memory_total_bytes "
                       "FROM stg_gpu_mig_instances ORDER BY 2")
    assert mig == [(a100, 1, 40 * 2**30), (a100, 2, 40 * 2**30)]
    procs = stored(data, "SELECT DISTINCT gpu_uuid, pid, mig_uuid IS NOT NULL "
                         "FROM stg_gpu_processes ORDER BY pid")
    assert procs == [(h100, 1111, False), (a100, 2222, True)]
    health = dict(stored(data, "SELECT gpu_uuid, arg_max(state, ts_s) FROM stg_gpu_health "
                               "WHERE state IS NOT NULL GROUP BY 1"))
    assert health == {h100: "ok", a100: "ok", gone: "failed"}
    after = stored(data, f"SELECT count(*) FROM stg_gpu_samples WHERE gpu_uuid = '{gone}' "
                         f"AND ts_s > (SELECT min(ts_s) FROM stg_gpu_health "
                         f"WHERE gpu_uuid = '{gone}' AND state = 'failed')")[0][0]
    assert after == 0  # reported lost, no longer sampled; the others carried on
