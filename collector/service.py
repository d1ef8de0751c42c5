"""Wires receivers → jobs (in worker processes or in this one) → Parquet segments, and runs
them until stopped."""

from __future__ import annotations

import logging
import socket
import threading
from dataclasses import dataclass, field

from collector.compactor import Compactor
from collector.exporters.parquet import recover
from collector.receivers.otlp_grpc import start_grpc
from collector.receivers.otlp_http import OtlpHttpServer
from collector.receivers.security import Security
from collector.telemetry import Telemetry
from collector.workers import Ingest, InProcess, WorkerPool, default_workers
from inferledger.ports import ensure_free
from inferledger.store import DataDir, write_catalog

log = logging.getLogger("inferledger.collector")


@dataclass
class Collector:
    data: DataDir
    host: str = "127.0.0.1"
    grpc_port: int = 4317
    http_port: int = 4318
    compact_every_s: float = 30.0
    retention_days: dict[str, int] = field(default_factory=dict)
    security: Security = field(default_factory=Security)
    telemetry_interval_s: float = 10.0
    # Worker processes decoding and writing; 0: in this process; None: one per core (≤ 4).
    workers: int | None = 0

    def start(self) -> Collector:
        """Check the ports are free and take the store's collector lock (one writer per data
        directory, refused in one line otherwise) before anything is created or started."""
        ensure_free(self.host, [(self.grpc_port, "the collector's OTLP/gRPC"),
                                (self.http_port, "the collector's OTLP/HTTP")])
        self.lock = self.data.collector_lock().acquire(
            hint="one collector per data directory; stop it or give another --data")
        if self.workers is None:
            self.workers = default_workers()
        write_catalog(self.data)
        recover(self.data)  # before any worker writes
        self.ingest: Ingest = (WorkerPool(self.data, self.workers) if self.workers
                                   else InProcess.open(self.data))
        self.compactor = Compactor(self.data, self.retention_days,
                                   grace_s=self.compact_every_s).start()
        self.security.warn_if_exposed(self.host)
        self.telemetry = Telemetry(self.data, socket.gethostname(), self.telemetry_interval_s)
        self.http = OtlpHttpServer((self.host, self.http_port), self.ingest,
                                   security=self.security, telemetry=self.telemetry)
        self.http_port = self.http.server_address[1]
        self.telemetry.attach(self.ingest, lambda: self.http.throttled)
        self.http.start()
        self.grpc, self.grpc_port = start_grpc(f"{self.host}:{self.grpc_port}", self.ingest,
                                               self.security, self.telemetry)
        log.info("OTLP/gRPC on %s:%d, OTLP/HTTP on http://%s:%d, %s, store %s",
                 self.host, self.grpc_port, self.host, self.http_port,
                 f"{self.workers} worker processes" if self.workers else "no worker processes",
                 self.data.root)
        return self

    def stop(self) -> None:
        """Stop accepting, finish in-flight requests, write what is pending."""
        self.grpc.stop(grace=5).wait()
        self.http.shutdown()
        self.http.server_close()
        self.telemetry.shutdown()  # its last export goes through the ingest
        self.ingest.close()
        self.compactor.stop()
        self.lock.release()
        log.info("collector stopped")

    def serve_until(self, stop: threading.Event) -> None:
        stop.wait()
        self.stop()
