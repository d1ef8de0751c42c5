"""The collector's own metrics, written into its own store as OTLP like any other client's.

Accepted, rejected, throttled and duplicate items, the write queue's depth, how long each
durable flush took, and the raw store's size. The OpenTelemetry SDK aggregates them; every
``interval_s`` its exporter encodes them with the standard OTLP encoder and hands them to
the same ingest the receivers use (no network hop, no second store). Counters are
cumulative, so an export refused under overload loses nothing: the next one carries the
totals. Query them as ``stg_collector_metrics``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import numpy as np
from opentelemetry.exporter.otlp.proto.common.metrics_encoder import encode_metrics
from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    MetricExporter,
    MetricExportResult,
    MetricsData,
    PeriodicExportingMetricReader,
)
from opentelemetry.sdk.resources import Resource

from collector import jobs
from inferledger.store import DataDir
from inferledger.store.layout import file_sizes

if TYPE_CHECKING:
    from collector.workers import Ingest

log = logging.getLogger("inferledger.collector")

SERVICE = "inferledger-collector"


class RecentKeys:
    """Recently seen span keys (64-bit hashes), to count exporter retries that repeat spans.

    A direct-mapped table of ``2**bits`` keys (32 MB): a new key takes its slot from
    whichever key had it, so a span is still recognised after N later spans with probability
    ≈ exp(-N / 2**bits) — 96% after 1 s at 150k spans/s, 78% after a million. Whole requests
    go in at once with numpy: this runs on the reply's path, where a Python set of the last
    200k keys cost ≈ 200 µs a request of 512 spans (now ≈ 20) and forgot a retry after 1.3 s
    at that rate. A 64-bit collision can only make the count one too high.
    """

    def __init__(self, bits: int = 22) -> None:
        self._table = np.zeros(1 << bits, np.uint64)
        self._mask = np.uint64((1 << bits) - 1)
        self._lock = threading.Lock()

    def duplicates(self, keys: np.ndarray) -> int:
        """How many of ``keys`` were seen before (or earlier in ``keys``); remember them."""
        unique, counts = np.unique(keys, return_counts=True)
        slots = unique & self._mask
        with self._lock:
            seen = self._table[slots] == unique
            self._table[slots] = unique
        return int(counts[seen].sum() + (counts[~seen] - 1).sum())


class Telemetry:
    def __init__(self, data: DataDir, host: str, interval_s: float = 10.0) -> None:
        self.data = data
        self.recent = RecentKeys()
        self.ingest: Ingest | None = None
        self.http_throttled: Callable[[], int] = lambda: 0
        self.refused = 0  # outcomes UNAVAILABLE: the ingest was full or could not write
        reader = PeriodicExportingMetricReader(_IngestExporter(self),
                                               export_interval_millis=interval_s * 1000)
        self.provider = MeterProvider(
            resource=Resource.create({"service.name": SERVICE, "host.name": host}),
            metric_readers=[reader])
        meter = self.provider.get_meter("inferledger.collector")
        self.items = meter.create_counter(
            "inferledger.collector.items", unit="{item}",
            description="spans and data points by signal and outcome (accepted, rejected)")
        meter.create_observable_counter(
            "inferledger.collector.throttled", [self._throttled], unit="{request}",
            description="requests answered 503 / UNAVAILABLE (retry later)")
        self.duplicate_spans = meter.create_counter(
            "inferledger.collector.duplicate_spans", unit="{span}",
            description="spans received again (exporter retries); stg_spans keeps one")
        self.flush_duration = meter.create_histogram(
            "inferledger.collector.flush.duration", unit="s",
            description="one group commit: segment written and fsynced")
        meter.create_observable_gauge("inferledger.collector.queue.rows", [self._queue],
                                      unit="{row}", description="rows waiting to be written")
        meter.create_observable_gauge("inferledger.collector.store.size", [self._store_size],
                                      unit="By", description="bytes of raw segments")
        meter.create_observable_gauge("inferledger.collector.store.files", [self._store_files],
                                      unit="{file}", description="raw segment files")

    def attach(self, ingest: Ingest, http_throttled: Callable[[], int]) -> None:
        """The ingest (where exports go, whose queue is measured) and the HTTP receiver's
        count of requests refused for lack of a slot."""
        self.ingest, self.http_throttled = ingest, http_throttled

    def record(self, signal: str, outcome: jobs.Outcome) -> None:
        """Count one request's outcome (every receiver calls this)."""
        if outcome.accepted:
            self.items.add(outcome.accepted, {"signal": signal, "outcome": "accepted"})
        if outcome.rejected:
            self.items.add(outcome.rejected, {"signal": signal, "outcome": "rejected"})
        if outcome.status == jobs.UNAVAILABLE:
            self.refused += 1
        if outcome.span_keys:
            dups = self.recent.duplicates(np.frombuffer(outcome.span_keys, np.uint64))
            if dups:
                self.duplicate_spans.add(dups)
        for seconds in outcome.flushes:
            self.flush_duration.record(seconds)

    def _queue(self, _: CallbackOptions) -> Sequence[Observation]:
        return [Observation(self.ingest.pending_rows if self.ingest else 0)]

    def _throttled(self, _: CallbackOptions) -> Sequence[Observation]:
        return [Observation(self.refused + self.http_throttled())]

    def _segments(self) -> list[int]:
        return file_sizes(self.data.raw, "*/day=*/*.parquet")

    def _store_size(self, _: CallbackOptions) -> Sequence[Observation]:
        return [Observation(sum(self._segments()))]

    def _store_files(self, _: CallbackOptions) -> Sequence[Observation]:
        return [Observation(len(self._segments()))]

    def shutdown(self) -> None:
        """Export one last time, then stop."""
        self.provider.shutdown()


class _IngestExporter(MetricExporter):
    def __init__(self, telemetry: Telemetry) -> None:
        super().__init__()
        self.telemetry = telemetry

    def export(self, metrics_data: MetricsData, timeout_millis: float = 10_000,
               **_: object) -> MetricExportResult:
        ingest = self.telemetry.ingest
        if ingest is None:
            return MetricExportResult.FAILURE
        body = encode_metrics(metrics_data).SerializeToString()
        outcome = ingest.submit(jobs.Job("metrics", body))
        self.telemetry.record("metrics", outcome)
        if outcome.status != jobs.OK:
            log.info("own metrics not written this round (%s); totals follow next time",
                     outcome.message)
            return MetricExportResult.FAILURE
        return MetricExportResult.SUCCESS

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return True

    def shutdown(self, timeout_millis: float = 30_000, **_: object) -> None:
        return None
