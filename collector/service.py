"""Wires receivers → batcher → Parquet sink and runs them until stopped."""

from __future__ import annotations

import logging
import socket
import threading
from dataclasses import dataclass, field

from collector.batcher import DurableBatcher
from collector.compactor import Compactor
from collector.exporters.parquet import ParquetSegmentSink
from collector.processors.traces import warm_up
from collector.receivers.otlp_grpc import start_grpc
from collector.receivers.otlp_http import OtlpHttpServer
from collector.receivers.security import Security
from collector.telemetry import Telemetry
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

    def start(self) -> Collector:
        log.info("trace decoder ready in %.1f s", warm_up())
        write_catalog(self.data)
        self.batcher = DurableBatcher(ParquetSegmentSink(self.data))
        self.compactor = Compactor(self.data, self.retention_days,
                                   grace_s=self.compact_every_s).start()
        self.security.warn_if_exposed(self.host)
        self.telemetry = Telemetry(self.data, socket.gethostname(), self.telemetry_interval_s)
        self.http = OtlpHttpServer((self.host, self.http_port), self.batcher,
                                   security=self.security, telemetry=self.telemetry)
        self.http_port = self.http.server_address[1]
        self.telemetry.attach(self.batcher, lambda: self.http.throttled)
        self.http.start()
        self.grpc, self.grpc_port = start_grpc(f"{self.host}:{self.grpc_port}", self.batcher,
                                               self.security, self.telemetry)
        log.info("OTLP/gRPC on %s:%d, OTLP/HTTP on http://%s:%d, store %s",
                 self.host, self.grpc_port, self.host, self.http_port, self.data.root)
        return self

    def stop(self) -> None:
        """Stop accepting, finish in-flight requests, write what is pending."""
        self.grpc.stop(grace=5).wait()
        self.http.shutdown()
        self.http.server_close()
        self.telemetry.shutdown()  # its last export goes through the batcher
        self.batcher.close()
        self.compactor.stop()
        log.info("collector stopped; %d rows written", self.batcher.written_rows)

    def serve_until(self, stop: threading.Event) -> None:
        stop.wait()
        self.stop()
