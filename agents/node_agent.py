"""The node agent: samples every GPU through a backend and exports OTLP metrics.

The OTel metrics SDK drives sampling: each export cycle runs the observable callbacks, the
first of which reads every GPU once, so a data point's timestamp is its sampling time.
Metric names follow OTel's hardware conventions (``hw.energy``, ``hw.power``,
``hw.gpu.memory.*``, ``hw.gpu.utilization``); vendor extras are under ``inferledger.*``.
A GPU that is lost is reported once and skipped; the others keep being sampled. Exports go
through a bounded buffer (:mod:`agents.buffered_exporter`), so a collector outage delays
samples instead of losing them, and what the buffer had to drop is itself a metric.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable, Iterable

from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import MetricExporter, PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource

from agents.buffered_exporter import BufferedExporter
from agents.containers import container_of
from agents.gpu import GpuBackend, GpuLost, GpuSample

log = logging.getLogger("inferledger.agent")


class NodeAgent:
    def __init__(self, backend: GpuBackend, exporter: MetricExporter, *,
                 host: str | None = None, interval_s: float = 1.0,
                 resource_attributes: dict[str, str] | None = None,
                 buffer_bytes: int = 64 * 1024 * 1024, buffer_age_s: float = 3600.0) -> None:
        if not 0.1 <= interval_s <= 60:
            raise ValueError("sampling interval must be between 0.1 s (10 Hz) and 60 s")
        self.backend = backend
        self.host = host or socket.gethostname()
        self.interval_s = interval_s
        self._lost: set[int] = set()
        self._lock = threading.Lock()
        self._snapshot: tuple[float, list[GpuSample]] = (0.0, [])
        self.samples_taken = 0
        resource = Resource.create({"service.name": "inferledger-agent", "host.name": self.host,
                                    **(resource_attributes or {})})
        self.exporter = BufferedExporter(exporter, max_bytes=buffer_bytes,
                                         max_age_s=buffer_age_s)
        self._reader = PeriodicExportingMetricReader(
            self.exporter, export_interval_millis=interval_s * 1000)
        self._provider = MeterProvider(resource=resource, metric_readers=[self._reader])
        meter = self._provider.get_meter("inferledger.agent")
        gauge = meter.create_observable_gauge
        meter.create_observable_counter(
            "hw.energy", [self._cb(lambda s: s.energy_mj, 1e-3)], unit="J",
            description="Energy consumed by the GPU since the driver loaded")
        gauge("hw.power", [self._cb(lambda s: s.power_mw, 1e-3)], unit="W")
        gauge("inferledger.gpu.power.average", [self._cb(lambda s: s.power_avg_mw, 1e-3)],
              unit="W", description="NVML's 1-s average power, where the GPU has it")
        gauge("inferledger.gpu.power.limit", [self._cb(lambda s: s.power_limit_mw, 1e-3)],
              unit="W")
        gauge("hw.gpu.memory.usage", [self._cb(lambda s: s.memory_used_bytes, 1)], unit="By")
        gauge("hw.gpu.memory.limit", [self._cb(lambda s: s.memory_total_bytes, 1)], unit="By")
        gauge("hw.gpu.utilization", [self._cb(lambda s: s.utilization_pct, 0.01)], unit="1")
        gauge("hw.temperature", [self._cb(lambda s: s.temperature_c, 1)], unit="Cel")
        gauge("inferledger.gpu.clock.sm", [self._cb(lambda s: s.sm_clock_mhz, 1)], unit="MHz")
        gauge("inferledger.gpu.clock_event_reasons",
              [self._cb(lambda s: s.clock_event_reasons, 1)], unit="1",
              description="NVML clock event reasons bitmask (1 idle, 4 power cap, …)")
        gauge("inferledger.gpu.process.memory.usage", [self._processes], unit="By")
        meter.create_observable_counter(
            "inferledger.agent.dropped_points",
            [lambda _: [Observation(self.exporter.dropped_points)]], unit="{point}",
            description="data points dropped because the collector was away too long")

    def _samples(self) -> list[GpuSample]:
        """All GPUs, read once per export cycle (the first callback of the cycle reads)."""
        with self._lock:
            taken_at, samples = self._snapshot
            if time.monotonic() - taken_at < self.interval_s / 2:
                return samples
            samples = []
            for i in range(self.backend.device_count()):
                if i in self._lost:
                    continue
                try:
                    samples.append(self.backend.sample(i))
                except GpuLost as e:
                    self._lost.add(i)
                    log.error("GPU %d (%s) lost, no longer sampled: %s", i,
                              self.backend.uuid(i), e)
            self._snapshot = (time.monotonic(), samples)
            self.samples_taken += 1
            return samples

    @staticmethod
    def _attrs(s: GpuSample) -> dict[str, str]:
        return {"hw.id": s.uuid, "hw.model": s.name, "hw.type": "gpu"}

    def _cb(self, field: Callable[[GpuSample], float | None],
            scale: float) -> Callable[[CallbackOptions], Iterable[Observation]]:
        def callback(options: CallbackOptions) -> Iterable[Observation]:
            for s in self._samples():
                value = field(s)
                if value is not None:  # unsupported fields are absent, not zero
                    yield Observation(value * scale, self._attrs(s))

        return callback

    def _processes(self, options: CallbackOptions) -> Iterable[Observation]:
        for s in self._samples():
            for p in s.processes:
                if p.used_memory_bytes is not None:
                    yield Observation(p.used_memory_bytes, {
                        **self._attrs(s), "process.pid": str(p.pid), **dict(container_of(p.pid))})

    def gpus_holding(self, pids: set[int]) -> list[str]:
        """UUIDs of the GPUs on which any of ``pids`` holds memory (engine placement)."""
        return [s.uuid for s in self._samples() if any(p.pid in pids for p in s.processes)]

    def run_until(self, stop: threading.Event) -> None:
        log.info("agent on %s sampling %d GPU(s) every %.1fs", self.host,
                 self.backend.device_count(), self.interval_s)
        stop.wait()
        self.shutdown()

    def shutdown(self) -> None:
        self._provider.shutdown()
        self.backend.close()
