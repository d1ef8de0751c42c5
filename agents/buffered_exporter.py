"""Keeps the agent's samples while the collector is away, and delivers them when it is back.

``export`` only queues (so sampling never waits on the network); a sender thread delivers
the oldest batch first through the real OTLP exporter, which retries on its own, and keeps
a batch until the collector acknowledges it. The queue is bounded by encoded size and by
age: past either bound the oldest batches are dropped, and every dropped data point is
counted (``dropped_points``, exported by the agent as ``inferledger.agent.dropped_points``)
and logged — never silent.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from dataclasses import dataclass

from opentelemetry.exporter.otlp.proto.common.metrics_encoder import encode_metrics
from opentelemetry.sdk.metrics.export import MetricExporter, MetricExportResult, MetricsData

log = logging.getLogger("inferledger.agent")


@dataclass
class _Batch:
    data: MetricsData
    points: int
    size: int
    queued_at: float


def _points(data: MetricsData) -> int:
    return sum(len(m.data.data_points) for rm in data.resource_metrics
               for sm in rm.scope_metrics for m in sm.metrics)


class BufferedExporter(MetricExporter):
    def __init__(self, inner: MetricExporter, *, max_bytes: int = 64 * 1024 * 1024,
                 max_age_s: float = 3600.0, retry_s: float = 1.0) -> None:
        super().__init__(preferred_temporality=inner._preferred_temporality,
                         preferred_aggregation=inner._preferred_aggregation)
        self.inner, self.max_bytes, self.max_age_s, self.retry_s = (inner, max_bytes,
                                                                    max_age_s, retry_s)
        self._queue: deque[_Batch] = deque()
        self._bytes = 0
        self._cond = threading.Condition()
        self._closed = False
        self.delivered_points = 0
        self.dropped_points = 0
        self._failing = False
        self._sender = threading.Thread(target=self._send_loop, name="agent-export",
                                        daemon=True)
        self._sender.start()

    @property
    def queued_points(self) -> int:
        with self._cond:
            return sum(b.points for b in self._queue)

    def export(self, metrics_data: MetricsData, timeout_millis: float = 10_000,
               **_: object) -> MetricExportResult:
        batch = _Batch(metrics_data, _points(metrics_data),
                       encode_metrics(metrics_data).ByteSize(), time.monotonic())
        with self._cond:
            self._queue.append(batch)
            self._bytes += batch.size
            self._evict()
            self._cond.notify()
        return MetricExportResult.SUCCESS  # ours now: kept until delivered or counted dropped

    def _evict(self) -> None:
        now = time.monotonic()
        while self._queue and (self._bytes > self.max_bytes
                               or now - self._queue[0].queued_at > self.max_age_s):
            old = self._queue.popleft()
            self._bytes -= old.size
            self.dropped_points += old.points
            log.error("collector unreachable too long: dropped %d data points (%d in all)",
                      old.points, self.dropped_points)

    def _send_loop(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._closed:
                    self._cond.wait()
                if not self._queue:
                    return
                batch = self._queue[0]
            if self.inner.export(batch.data) == MetricExportResult.SUCCESS:
                with self._cond:
                    if self._queue and self._queue[0] is batch:
                        self._queue.popleft()
                        self._bytes -= batch.size
                    self.delivered_points += batch.points
                if self._failing:
                    log.info("collector back: delivering the %d buffered data points",
                             self.queued_points)
                    self._failing = False
                continue
            if not self._failing:
                log.warning("collector unreachable: keeping samples (up to %d MiB, %.0f s)",
                            self.max_bytes // (1024 * 1024), self.max_age_s)
                self._failing = True
            with self._cond:
                self._evict()
                if self._closed:
                    return  # shutting down with the collector away: what is left is counted
                self._cond.wait(self.retry_s)

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        deadline = time.monotonic() + timeout_millis / 1000
        while time.monotonic() < deadline:
            with self._cond:
                if not self._queue:
                    return True
            time.sleep(0.02)
        return False

    def shutdown(self, timeout_millis: float = 30_000, **_: object) -> None:
        self.force_flush(min(timeout_millis, 5_000))
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._sender.join(timeout_millis / 1000)
        with self._cond:
            left = sum(b.points for b in self._queue)
            self.dropped_points += left
            self._queue.clear()
        if left:
            log.error("agent stopped with the collector away: %d data points not delivered",
                      left)
        self.inner.shutdown()
