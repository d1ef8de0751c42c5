"""The agent's vLLM scrape: V1 and V0 names, placement labels, through a real collector."""

from __future__ import annotations

import threading

from opentelemetry.sdk.metrics.export import MetricExportResult

from agents.vllm_metrics import EngineScraper, Target, parse
from inferledger.otel import metric_exporter
from simulator.gpu_state import NodeGpus, sim_uuid
from tests.builders import stored, stored_when
from tests.engine_server import MODEL, make_engine, serving

V0 = """# TYPE vllm:gpu_cache_usage_perc gauge
vllm:gpu_cache_usage_perc{model_name="m"} 0.25
# TYPE vllm:gpu_prefix_cache_hits_total counter
vllm:gpu_prefix_cache_hits_total{model_name="m"} 7.0
# TYPE vllm:time_to_first_token_seconds histogram
vllm:time_to_first_token_seconds_bucket{le="0.1",model_name="m"} 3.0
vllm:time_to_first_token_seconds_count{model_name="m"} 3.0
vllm:time_to_first_token_seconds_sum{model_name="m"} 0.2
# TYPE python_gc_objects_collected_total counter
python_gc_objects_collected_total{generation="0"} 12.0
"""


def test_v0_names_are_renamed_and_the_rest_is_left_out() -> None:
    assert parse(V0) == [("vllm:kv_cache_usage_perc", "gauge", {"model_name": "m"}, 0.25),
                         ("vllm:prefix_cache_hits_total", "sum", {"model_name": "m"}, 7.0)]


def test_unreachable_engines_are_skipped_not_fatal() -> None:
    class Never:
        def export(self, *_a, **_k) -> MetricExportResult:
            raise AssertionError("nothing to export")

    s = EngineScraper([Target("http://127.0.0.1:9/metrics")], Never(), "h", timeout_s=0.5)
    data = s.scrape_once()
    assert s.failures == 1 and data.resource_metrics[0].scope_metrics[0].metrics == []


def test_scraped_engine_metrics_reach_the_store_with_their_placement(tmp_path, collector,
                                                                       data) -> None:
    state = tmp_path / "n.gpus"
    NodeGpus.create(state, "node-s", ["h100", "h100"]).close()
    gpus = [sim_uuid("node-s", 1)]
    with serving(make_engine(state, [1], None)) as url:
        import httpx

        httpx.post(f"{url}/v1/chat/completions", timeout=30, json={
            "model": MODEL, "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]})
        scraper = EngineScraper([Target(f"{url}/metrics", 4242, gpus)],
                                metric_exporter(f"http://127.0.0.1:{collector.http_port}"),
                                "node-s", interval_s=0.1)
        stop = threading.Event()
        thread = scraper.start(stop)
        while scraper.scrapes < 3:
            stop.wait(0.05)
        stop.set()
        thread.join()
    rows = stored(data, "SELECT counter, model, pid, gpu_uuids, max(value) FROM "
                        "stg_engine_counters GROUP BY ALL ORDER BY counter")
    by_name = {r[0]: r for r in rows}
    assert by_name["vllm:prompt_tokens_total"][1:] == (MODEL, 4242, gpus, 5.0)
    assert by_name["vllm:request_success_total"][4] == 1
    assert by_name["vllm:num_preemptions_total"][4] == 0
    config = stored(data, "SELECT kv_cache_size_tokens, block_size FROM stg_engine_config "
                          "LIMIT 1")
    assert config[0][0] > 0 and config[0][1] == 16
    gauges = stored(data, "SELECT DISTINCT metric_name FROM raw_metric_points "
                          "WHERE metric_type = 'gauge'")
    assert {g[0] for g in gauges} >= {"vllm:num_requests_running", "vllm:kv_cache_usage_perc"}


def test_a_local_engine_is_found_by_its_port(tmp_path) -> None:
    """The process listening on the engine's port, and the GPUs its family holds."""
    import os

    from agents.vllm_metrics import local_locator

    state = tmp_path / "n.gpus"
    NodeGpus.create(state, "node-s", ["h100"]).close()
    asked: list[set[int]] = []

    def gpus_holding(pids: set[int]) -> list[str]:
        asked.append(pids)
        return ["GPU-x"] if os.getpid() in pids else []

    with serving(make_engine(state, [0], None)) as url:  # served by this very process
        t = Target(f"{url}/metrics")
        local_locator(gpus_holding)(t)
    assert t.pid == os.getpid() and t.gpu_uuids == ["GPU-x"] and os.getpid() in asked[0]


def test_recomputation_after_preemption_is_priced_as_preempted(tmp_path, collector,
                                                               data) -> None:
    """Engine with a KV cache too small for its load → vLLM-style recompute → the agent's
    scrape → the collector → analytics books those GPU-seconds as ``preempted``."""
    import asyncio

    import httpx

    from agents.gpu import open_backend
    from agents.node_agent import NodeAgent
    from analytics.pipeline import run

    state = tmp_path / "n.gpus"
    NodeGpus.create(state, "node-p", ["h100"]).close()
    otlp = f"http://127.0.0.1:{collector.http_port}"
    agent = NodeAgent(open_backend(f"sim:{state}"), metric_exporter(otlp), host="node-p",
                      interval_s=0.2)
    engine = make_engine(state, [0], None, gpu_memory_utilization=0.19)
    with serving(engine) as url:
        scraper = EngineScraper([Target(f"{url}/metrics", 1, [sim_uuid("node-p", 0)])],
                                metric_exporter(otlp), "node-p", interval_s=0.2)
        stop = threading.Event()
        thread = scraper.start(stop)

        async def load() -> None:
            async with httpx.AsyncClient(timeout=60) as c:
                await asyncio.gather(*(c.post(f"{url}/v1/chat/completions", json={
                    "model": MODEL, "max_tokens": 600,
                    "messages": [{"role": "user", "content": "w " * 296}]}) for _ in range(4)))

        asyncio.run(load())
        stop.wait(0.5)
        stop.set()
        thread.join()
    agent.shutdown()
    assert engine.state.core.stats.preemptions > 0
    result = run(data)
    assert result.conservation_max_rel_error <= 1e-9
    (preempted_s, measured_s), = stored(data, "SELECT sum(preempted_s), sum(measured_s) "
                                              "FROM gpu_time")
    assert 0 < preempted_s < measured_s


def _families(text: str) -> dict[str, tuple[str, frozenset[str]]]:
    """vLLM sample name → (family type, label names), as an exposition serves them."""
    from prometheus_client.parser import text_string_to_metric_families

    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            if s.name.startswith("vllm:") and not s.name.endswith("_created"):
                out[s.name] = (fam.type, frozenset(s.labels))
    return out


def test_the_simulated_engine_serves_vllm_032s_names_and_labels(tmp_path) -> None:
    """Pinned to a real vLLM 0.32.0 /metrics: every family the simulator serves exists there
    with the same type and labels, and every figure the agent keeps that 0.32 serves, the
    simulator serves too."""
    from pathlib import Path

    from agents.vllm_metrics import KEPT
    from simulator.engine.metrics import exposition

    real = _families((Path(__file__).parent / "fixtures/vllm-0.32/metrics.txt").read_text())
    state = tmp_path / "n.gpus"
    NodeGpus.create(state, "node-s", ["h100"]).close()
    core = make_engine(state, [0], None).state.core
    sim = _families(exposition(core, MODEL).decode())
    assert {n: sim[n] for n in sim if n not in real or real[n] != sim[n]} == {}
    assert {n for n in KEPT if n in real} <= set(sim)
    assert "vllm:prompt_tokens_recomputed_total" not in sim  # vLLM 0.32 has none
    # The agent keeps what 0.32 serves, and only the capacity of cache_config_info's labels.
    kept = parse((Path(__file__).parent / "fixtures/vllm-0.32/metrics.txt").read_text())
    names = {k[0] for k in kept}
    assert {"vllm:num_preemptions_total", "vllm:kv_cache_usage_perc",
            "vllm:prompt_tokens_by_source_total", "vllm:cache_config_info"} <= names
    [info] = [k for k in kept if k[0] == "vllm:cache_config_info"]
    assert info[2] == {"engine": "0", "kv_cache_size_tokens": "524288", "num_gpu_blocks": "4096",
                       "block_size": "128"}


def test_the_agent_scrapes_engines_on_a_node_whose_gpus_another_agent_reads(
        tmp_path, collector, data) -> None:
    """``--gpu-backend none`` (GPUs read by DCGM, say): no NVML, no GPU sampling, the engines'
    /metrics still exported with the engine's process; without an engine it is a one-line
    error, since it would have nothing to do."""
    import signal
    import subprocess
    import sys

    state = tmp_path / "n.gpus"
    NodeGpus.create(state, "node-s", ["h100"]).close()
    cmd = [sys.executable, "-m", "commands", "agent", "--gpu-backend", "none",
           "--host", "node-d", "--otlp-endpoint", f"http://127.0.0.1:{collector.http_port}"]
    alone = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    lines = alone.stderr.strip().splitlines()
    assert alone.returncode == 2 and len(lines) == 1, alone.stderr
    assert lines[0].endswith("--gpu-backend none samples no GPU: name an engine with --vllm")
    with serving(make_engine(state, [0], None)) as url:
        proc = subprocess.Popen([*cmd, "--vllm", url, "--vllm-interval", "0.2"],
                                stderr=subprocess.PIPE, text=True)
        try:
            got = stored_when(data, "SELECT DISTINCT host_name, counter FROM stg_engine_counters "
                                    "WHERE counter = 'vllm:prompt_tokens_total'", bool, 60)
        finally:
            proc.send_signal(signal.SIGTERM)
            err = proc.communicate(timeout=60)[1]
    assert got == [("node-d", "vllm:prompt_tokens_total")], err
    assert proc.returncode == 0, err
    gpu_points = stored(data, "SELECT count(*) FROM raw_metric_points "
                              "WHERE metric_name LIKE 'hw.%'")
    assert gpu_points == [(0,)]
