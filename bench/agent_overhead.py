"""Benchmark: the node agent's CPU cost per sampling cycle (8 GPUs) and per vLLM scrape.

The real agent code runs against a simulated node of 8 H100s through the NVML backend (the
fake NVML replaces only the library): each cycle reads every GPU, builds the OTLP points,
queues them and delivers them with the real OTLP/HTTP exporter to a sink in another process
(its CPU is not counted; the agent's, all threads, is). The scrape fetches and parses a
vLLM-sized ``/metrics`` exposition (the simulated engine's families plus the V1 histograms a
real engine exposes, ≈ 400 lines) over loopback HTTP, counted on the scraping thread only.
The last line is one JSON object.

    .venv/bin/python bench/agent_overhead.py [--cycles 300]
"""

from __future__ import annotations

import argparse
import http.server
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from opentelemetry.sdk.metrics.export import MetricExporter, MetricExportResult, MetricsData

from agents.gpu import open_backend
from agents.node_agent import NodeAgent
from agents.vllm_metrics import EngineScraper, Target
from simulator.gpu_state import NodeGpus

BUCKETS = (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5,
           10, 20, 40, 80, 160, 640, 2560)
HISTOGRAMS = ("time_to_first_token_seconds", "inter_token_latency_seconds",
              "e2e_request_latency_seconds", "request_queue_time_seconds",
              "request_prefill_time_seconds", "request_decode_time_seconds",
              "request_inference_time_seconds", "request_time_per_output_token_seconds",
              "request_prompt_tokens", "request_generation_tokens", "iteration_tokens_total",
              "request_params_max_tokens", "request_max_num_generation_tokens")


def exposition() -> str:
    """What a vLLM V1 engine serving one model exposes, give or take."""
    from simulator.engine.core import EngineCore
    from simulator.engine.metrics import exposition as sim_exposition
    from simulator.engine.profiles import MODEL_PROFILES

    state = Path(tempfile.mkdtemp()) / "one.gpus"
    NodeGpus.create(state, "bench", ["h100"]).close()
    core = EngineCore(MODEL_PROFILES["llama-3.1-8b-instruct"], NodeGpus(state), [0])
    lines = [sim_exposition(core, "llama-3.1-8b-instruct").decode()]
    labels = 'engine="0",model_name="llama-3.1-8b-instruct"'
    for h in HISTOGRAMS:
        lines.append(f"# HELP vllm:{h} Histogram.\n# TYPE vllm:{h} histogram")
        lines += [f'vllm:{h}_bucket{{{labels},le="{b}"}} {i * 3.0}'
                  for i, b in enumerate(BUCKETS)]
        lines += [f'vllm:{h}_bucket{{{labels},le="+Inf"}} 70.0', f"vllm:{h}_count{{{labels}}} 70.0",
                  f"vllm:{h}_sum{{{labels}}} 123.4", f"vllm:{h}_created{{{labels}}} 1.7e9"]
    return "\n".join(lines) + "\n"


class _Null(MetricExporter):
    def export(self, metrics_data: MetricsData, timeout_millis: float = 10_000,
               **_: object) -> MetricExportResult:
        return MetricExportResult.SUCCESS

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return True

    def shutdown(self, timeout_millis: float = 30_000, **_: object) -> None:
        return None


_SINK = """
import http.server, sys
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_POST(self):
        self.rfile.read(int(self.headers["Content-Length"]))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()
    def log_message(self, *a):
        pass
s = http.server.HTTPServer(("127.0.0.1", 0), H)
print(s.server_address[1], flush=True)
s.serve_forever()
"""


def sampling_cpu_s(cycles: int) -> float:
    from inferledger.otel import metric_exporter

    sink = subprocess.Popen([sys.executable, "-c", _SINK], stdout=subprocess.PIPE, text=True)
    port = int(sink.stdout.readline())
    state = Path(tempfile.mkdtemp()) / "node.gpus"
    NodeGpus.create(state, "bench", ["h100"] * 8).close()
    agent = NodeAgent(open_backend(f"sim:{state}"),
                      metric_exporter(f"http://127.0.0.1:{port}"), interval_s=60)
    agent._reader.collect()  # warm-up
    agent.exporter.force_flush()
    started = time.process_time()
    for _ in range(cycles):
        agent._snapshot = (0.0, [])  # force a fresh read of every GPU, as each cycle does
        agent._reader.collect()
        agent.exporter.force_flush()  # delivered, as at 1 Hz it would be before the next
    cost = (time.process_time() - started) / cycles
    agent.shutdown()
    sink.terminate()
    return cost


def scrape_cpu_s(cycles: int) -> tuple[float, int]:
    body = exposition().encode()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_: object) -> None:
            return None

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/metrics"
    scraper = EngineScraper([Target(url, 1, ["GPU-x"])], _Null(), "bench")
    scraper.scrape_once()
    started = time.thread_time()
    for _ in range(cycles):
        scraper.scrape_once()
    cost = (time.thread_time() - started) / cycles
    server.shutdown()
    return cost, body.count(b"\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cycles", type=int, default=300)
    args = ap.parse_args()
    sample = sampling_cpu_s(args.cycles)
    scrape, lines = scrape_cpu_s(args.cycles)
    print(f"sampling cycle, 8 GPUs: {sample * 1e3:.2f} ms CPU")
    print(f"vLLM scrape ({lines} lines of exposition): {scrape * 1e3:.2f} ms CPU")
    fraction = sample + scrape  # both once a second
    print(f"at 1 Hz, sampling and one scrape: {fraction:.2%} of one core (goal ≤ 1%)")
    print(json.dumps({
        "cpu_fraction_of_core_1hz": round(fraction, 5),
        "sampling_cycle_ms": round(sample * 1e3, 3), "scrape_ms": round(scrape * 1e3, 3),
        "gpus": 8, "exposition_lines": lines,
        "machine": f"{platform.machine()} {os.cpu_count()} CPUs",
    }))


if __name__ == "__main__":
    main()
