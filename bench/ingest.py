"""Benchmark: OTLP/HTTP ingest into the queryable store, at, below and beyond saturation.

Client processes POST SDK-shaped ``ExportTraceServiceRequest`` batches (512 spans, 15
attributes each, protobuf, keep-alive) to a real ``inferledger collector`` process:

1. ceiling: ``ParseFromString`` of the same payloads in this process (decode only);
2. saturation: clients send as fast as acknowledgements come back; sustained spans/s is
   what was acknowledged *and* is visible to a DuckDB reader of the store (run once with
   no reader too, for how much a reader costs ingest);
3. below saturation: clients paced at half that rate; p99 acknowledgement latency;
4. 2× saturation: offered load twice the saturated rate; the collector must answer 503 +
   Retry-After, keep its memory bounded and lose nothing it acknowledged.

A reader (one DuckDB session on the store's views, as an SRE keeps open) queries the newest
span once a second throughout; the freshness of what it sees and its query time are
reported, and so is the collector's CPU time (its own and its workers') per span stored.
The collector runs with its default worker processes unless ``--workers`` says
otherwise. The last line is one JSON object.

    .venv/bin/python bench/ingest.py [--seconds 60] [--clients 3]
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import multiprocessing as mp
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from inferledger.procs import wait_for_port
from inferledger.store import DataDir, connect_readonly, retry_vanished

SPANS_PER_BATCH = 512


def template() -> tuple[bytes, list[int]]:
    """One serialized batch shaped like a Python SDK export, and where its trace ids sit."""
    req = ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    for k, v in (("service.name", "inferledger-middleware"), ("host.name", "bench-node"),
                 ("telemetry.sdk.name", "opentelemetry"), ("telemetry.sdk.language", "python"),
                 ("telemetry.sdk.version", "1.45.2")):
        rs.resource.attributes.add(key=k).value.string_value = v
    ss = rs.scope_spans.add()
    ss.scope.name = "inferledger.middleware"
    for i in range(SPANS_PER_BATCH):
        sp = ss.spans.add(trace_id=b"\xee" * 8 + i.to_bytes(8, "big"),
                          span_id=(i + 1).to_bytes(8, "big"), name="chat llama-3.1-8b-instruct",
                          kind=2, start_time_unix_nano=1_800_000_000_000_000_000 + i * 1000,
                          end_time_unix_nano=1_800_000_001_000_000_000 + i * 1000)
        attrs = {
            "inferledger.span.source": "middleware", "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": "vllm", "http.request.method": "POST",
            "url.path": "/v1/chat/completions", "inferledger.tenant": f"tenant-{i % 7}",
            "inferledger.route": "chat", "gen_ai.request.model": "llama-3.1-8b-instruct",
            "inferledger.outcome": "ok", "inferledger.request_id": f"{i:032x}",
            "inferledger.host": "bench-node"}
        for k, v in attrs.items():
            sp.attributes.add(key=k).value.string_value = v
        sp.attributes.add(key="http.response.status_code").value.int_value = 200
        sp.attributes.add(key="gen_ai.usage.input_tokens").value.int_value = 200 + i
        sp.attributes.add(key="gen_ai.usage.output_tokens").value.int_value = 100 + i
        sp.attributes.add(key="inferledger.ttft_s").value.double_value = 0.05
    body = req.SerializeToString()
    offsets = [body.index(b"\xee" * 8 + i.to_bytes(8, "big")) for i in range(SPANS_PER_BATCH)]
    return body, offsets


def batch(body: bytes, offsets: list[int], client: int, n: int) -> bytes:
    """The template with this batch's own trace ids (client, batch number, span)."""
    out = bytearray(body)
    prefix = client.to_bytes(2, "big") + n.to_bytes(6, "big")
    for off in offsets:
        out[off:off + 8] = prefix
    return bytes(out)


def client(port: int, cid: int, seconds: float, rate: float | None, conns: int,
           out: mp.Queue) -> None:
    """POST batches for ``seconds`` over ``conns`` connections (paced at ``rate`` batches/s
    when given, else each as fast as acknowledgements come); report back."""
    body, offsets = template()
    headers = {"Content-Type": "application/x-protobuf"}
    lock = threading.Lock()
    tally = {"acked": 0, "throttled": 0, "errors": 0, "lat": [], "next": 0}
    start = time.monotonic()

    def take() -> int | None:
        with lock:
            n = tally["next"]
            tally["next"] += 1
        while (elapsed := time.monotonic() - start) < seconds:
            if rate is None or n <= rate * elapsed:
                return n
            time.sleep(min(0.01, n / rate - elapsed))
        return None

    def worker() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        while (n := take()) is not None:
            payload = batch(body, offsets, cid, n)
            while True:  # the same batch until acknowledged, as an exporter retries
                t = time.monotonic()
                try:
                    conn.request("POST", "/v1/traces", body=payload, headers=headers)
                    r = conn.getresponse()
                    r.read()
                except OSError:
                    with lock:
                        tally["errors"] += 1
                    conn.close()
                    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
                    time.sleep(0.1)
                    continue
                with lock:
                    if r.status == 200:
                        tally["lat"].append(time.monotonic() - t)
                        tally["acked"] += SPANS_PER_BATCH
                    else:
                        tally["throttled"] += 1
                if r.status == 200:
                    break
                time.sleep(float(r.getheader("Retry-After", "1")) / 10)  # soon, not at once

    threads = [threading.Thread(target=worker) for _ in range(conns)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    del tally["next"]
    out.put(tally)


def ceiling(body: bytes, offsets: list[int], seconds: float = 3.0) -> float:
    """Spans/s of protobuf decoding alone, on one core."""
    payloads = [batch(body, offsets, 999, n) for n in range(50)]
    done, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        for p in payloads:
            ExportTraceServiceRequest().ParseFromString(p)
        done += len(payloads) * SPANS_PER_BATCH
    return done / (time.perf_counter() - start)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rss_peak_mb(pid: int) -> float:
    """Peak RSS of the collector and its worker processes, summed (an upper bound of the
    peak of the sum)."""
    total = 0.0
    for p in (pid, *(c.pid for c in psutil.Process(pid).children(recursive=True))):
        for line in Path(f"/proc/{p}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                total += int(line.split()[1]) / 1024
    return total


def _cpu_s(pid: int) -> float:
    """CPU seconds used so far by the collector and its worker processes."""
    total = 0.0
    for p in (psutil.Process(pid), *psutil.Process(pid).children(recursive=True)):
        with contextlib.suppress(psutil.NoSuchProcess):
            t = p.cpu_times()
            total += t.user + t.system
    return total


def phase(name: str, clients: int, seconds: float, rate: float | None, conns: int = 1,
          reader: bool = True, workers: int | None = None) -> dict:
    """One collector, fresh store; ``rate`` is the offered load in spans/s (None: flat out)."""
    root = Path(tempfile.mkdtemp(prefix=f"ingest-{name}-"))
    data = DataDir.at(root / "data")
    http_port, grpc_port = _free_port(), _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "commands", "collector", "--data", str(data.root),
         "--http-port", str(http_port), "--grpc-port", str(grpc_port), "--compact-every", "5",
         *([] if workers is None else ["--workers", str(workers)])],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for_port("127.0.0.1", http_port, 30)
    fresh: list[float] = []
    query_ms: list[float] = []
    stop = threading.Event()

    def read() -> None:  # an SRE's session: how recent is the newest span it sees?
        con = connect_readonly(data)
        try:
            while not stop.wait(1.0):
                started = time.perf_counter()
                (newest,) = retry_vanished(lambda: con.execute(
                    "SELECT max(received_at_unix_nano) FROM raw_spans").fetchone())
                query_ms.append(1000 * (time.perf_counter() - started))
                if newest:
                    fresh.append(time.time() - newest / 1e9)
        finally:
            con.close()

    watcher = threading.Thread(target=read, daemon=True)
    if reader:
        watcher.start()
    q: mp.Queue = mp.Queue()
    per_client = None if rate is None else rate / SPANS_PER_BATCH / clients
    procs = [mp.Process(target=client, args=(http_port, i, seconds, per_client, conns, q))
             for i in range(1, clients + 1)]  # client 0 would make an all-zero (invalid) id
    started, cpu_before = time.monotonic(), _cpu_s(proc.pid)
    for p in procs:
        p.start()
    results = [q.get() for _ in procs]
    elapsed = time.monotonic() - started
    for p in procs:
        p.join()
    stop.set()
    if reader:
        watcher.join()
    rss, cpu = _rss_peak_mb(proc.pid), _cpu_s(proc.pid) - cpu_before
    proc.send_signal(signal.SIGINT)
    proc.wait(timeout=60)
    con = connect_readonly(data)
    try:
        (stored,) = con.execute("SELECT count(DISTINCT (trace_id, span_id)) FROM raw_spans"
                                ).fetchone()
    finally:
        con.close()
    shutil.rmtree(root)
    lat = sorted(x for r in results for x in r["lat"])
    acked = sum(r["acked"] for r in results)
    return {
        "acked": acked, "stored": stored, "lost": max(0, acked - stored),
        "spans_per_s": min(acked, stored) / elapsed,
        "p50_ack_ms": 1000 * lat[len(lat) // 2] if lat else float("nan"),
        "p99_ack_ms": 1000 * lat[int(len(lat) * 0.99)] if lat else float("nan"),
        "throttled": sum(r["throttled"] for r in results),
        "errors": sum(r["errors"] for r in results), "rss_mb": rss,
        "cpu_us_per_span": 1e6 * cpu / max(1, min(acked, stored)),
        "collector_cores": cpu / elapsed,
        "max_staleness_s": max(fresh) if fresh else float("nan"),
        "reader_query_ms": sorted(query_ms)[len(query_ms) // 2] if query_ms else float("nan"),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=60.0, help="length of the saturation run")
    ap.add_argument("--clients", type=int, default=3, help="client processes")
    ap.add_argument("--workers", type=int, help="collector worker processes (default: the "
                    "collector's own default, one per core)")
    args = ap.parse_args()
    w = args.workers
    body, offsets = template()
    print(f"payload: {SPANS_PER_BATCH} spans, {len(body):,} bytes; {os.cpu_count()} CPUs")
    ceil = ceiling(body, offsets)
    print(f"ceiling (protobuf decode only, one core): {ceil:,.0f} spans/s")
    alone = phase("saturation-no-reader", args.clients, args.seconds / 2, None, reader=False,
                  workers=w)
    print(f"saturation, no reader: {alone['spans_per_s']:,.0f} spans/s")
    one = phase("saturation-one-process", args.clients, args.seconds / 2, None, workers=0)
    print(f"saturation, everything in one process (--workers 0): "
          f"{one['spans_per_s']:,.0f} spans/s")
    sat = phase("saturation", args.clients, args.seconds, None, workers=w)
    print(f"saturation: {sat['spans_per_s']:,.0f} spans/s stored and visible "
          f"({sat['spans_per_s'] / ceil:.1%} of the decode ceiling); p99 ack "
          f"{sat['p99_ack_ms']:.0f} ms; peak RSS {sat['rss_mb']:.0f} MB; reader saw data at most "
          f"{sat['max_staleness_s']:.1f} s old (a query a second, median "
          f"{sat['reader_query_ms']:.0f} ms; ingest at "
          f"{sat['spans_per_s'] / alone['spans_per_s']:.0%} of its rate without the reader); "
          f"{sat['spans_per_s'] / one['spans_per_s']:.2f}× the one-process rate; collector CPU "
          f"{sat['cpu_us_per_span']:.1f} µs a span ({sat['collector_cores']:.2f} cores; one "
          f"process: {one['cpu_us_per_span']:.1f} µs); lost {sat['lost']}")
    half = phase("below", args.clients, args.seconds / 2, sat["spans_per_s"] * 0.5, workers=w)
    print(f"at 50% of saturation: {half['spans_per_s']:,.0f} spans/s; p50 ack "
          f"{half['p50_ack_ms']:.0f} ms, p99 ack {half['p99_ack_ms']:.0f} ms; "
          f"reader staleness ≤ {half['max_staleness_s']:.1f} s")
    # Open loop: more connections than the collector takes at once, offering twice its rate.
    over = phase("overload", args.clients, args.seconds / 2, sat["spans_per_s"] * 2, conns=8,
                 workers=w)
    print(f"at 2× saturation: {over['spans_per_s']:,.0f} spans/s stored; {over['throttled']} "
          f"batches throttled (503 + Retry-After); peak RSS {over['rss_mb']:.0f} MB; "
          f"acknowledged but not stored: {over['lost']}")
    print(json.dumps({
        "spans_per_s": round(sat["spans_per_s"]), "p99_ack_ms": round(half["p99_ack_ms"], 1),
        "p99_ack_ms_saturated": round(sat["p99_ack_ms"], 1),
        "ceiling_spans_per_s": round(ceil),
        "ratio_to_ceiling": round(sat["spans_per_s"] / ceil, 4),
        "rss_mb": round(max(sat["rss_mb"], over["rss_mb"]), 1),
        "overload_lost": over["lost"], "overload_throttled": over["throttled"],
        "max_staleness_s": round(max(sat["max_staleness_s"], half["max_staleness_s"]), 2),
        "with_reader_over_without": round(sat["spans_per_s"] / alone["spans_per_s"], 3),
        "one_process_spans_per_s": round(one["spans_per_s"]),
        "over_one_process": round(sat["spans_per_s"] / one["spans_per_s"], 3),
        "reader_query_ms": round(sat["reader_query_ms"], 1),
        "cpu_us_per_span": round(sat["cpu_us_per_span"], 2),
        "one_process_cpu_us_per_span": round(one["cpu_us_per_span"], 2),
        "machine": f"{platform.machine()} {os.cpu_count()} CPUs",
    }))


if __name__ == "__main__":
    main()
