"""The node agent: samples every GPU through a backend and exports OTLP metrics.

The OTel metrics SDK drives sampling: each export cycle runs the observable callbacks, the
first of which reads every GPU once, so a data point's timestamp is its sampling time.
Metric names follow OTel's hardware conventions (``hw.energy``, ``hw.power``,
``hw.gpu.memory.*``, ``hw.gpu.utilization``); vendor extras are under ``inferledger.*``.
Each GPU is read on its own worker thread with a deadline (half the interval): an NVML call
that hangs, as one stuck in the driver's lock can, costs that GPU its sample and is counted
(``inferledger.agent.late_samples``) while the other GPUs and the export cycle go on.
A GPU that is lost is logged, reported as ``hw.status`` failed, and no longer sampled; the
others keep being sampled. Exports go
through a bounded buffer (:mod:`agents.buffered_exporter`), so a collector outage delays
samples instead of losing them, and what the buffer had to drop is itself a metric.
"""

from __future__ import annotations

import logging
import socket
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from pathlib import Path

from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import MetricExporter, PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource

from agents.buffered_exporter import BufferedExporter
from agents.gpu import GpuBackend, GpuLost, GpuSample, MigInstance
from agents.processes import ancestors_of, container_of
from inferledger.errors import UserError
from inferledger.locks import ProcessLock

log = logging.getLogger("inferledger.agent")


def agent_lock(backend_spec: str) -> ProcessLock:
    """One agent per node's GPUs: a second would report the same GPU UUIDs again, and two
    interleaved energy counters price as impossible joules. For a simulated node the lock
    lies beside its state file; for real GPUs, in this machine's temporary directory."""
    if backend_spec.startswith("sim:"):
        return ProcessLock(Path(backend_spec[4:] + ".agent.lock"),
                           f"the node agent of simulated node {backend_spec[4:]}")
    return ProcessLock(Path(tempfile.gettempdir()) / "inferledger-agent-nvml.lock",
                       "the node agent of this machine's GPUs")


class NodeAgent:
    def __init__(self, backend: GpuBackend, exporter: MetricExporter, *,
                 host: str | None = None, interval_s: float = 1.0,
                 resource_attributes: dict[str, str] | None = None,
                 buffer_bytes: int = 64 * 1024 * 1024, buffer_age_s: float = 3600.0) -> None:
        if not 0.1 <= interval_s <= 60:
            raise UserError("sampling interval must be between 0.1 s (10 Hz) and 60 s")
        self.backend = backend
        self.host = host or socket.gethostname()
        self.interval_s = interval_s
        self.sample_deadline_s = interval_s / 2
        self._lost: set[int] = set()
        self._lock = threading.Lock()
        self._snapshot: tuple[float, list[GpuSample]] = (0.0, [])
        self._workers = ThreadPoolExecutor(max(1, backend.device_count()),
                                           thread_name_prefix="gpu-sample")
        self._in_flight: dict[int, Future[GpuSample]] = {}
        self.late_samples: dict[int, int] = {}  # GPU index → samples missed by a slow call
        self.samples_taken = 0
        # service.instance.id names this agent process: analytics quarantines the intervals
        # of a GPU two agents report at once rather than adding their counters up.
        resource = Resource.create({"service.name": "inferledger-agent", "host.name": self.host,
                                    "service.instance.id": uuid.uuid4().hex,
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
        for name, field, what in (
                ("sm.active", lambda s: s.sm_active_pct, "share of SMs busy"),
                ("sm.occupancy", lambda s: s.sm_occupancy_pct, "warps resident vs maximum"),
                ("tensor.active", lambda s: s.tensor_active_pct, "tensor-core activity"),
                ("dram.active", lambda s: s.dram_active_pct, "DRAM bandwidth vs peak")):
            gauge(f"inferledger.gpu.{name}", [self._cb(field, 0.01)], unit="1",
                  description=f"GPM (Hopper+): {what}, averaged since the previous sample")
        gauge("inferledger.gpu.mig.memory.usage", [self._mig(lambda m: m.memory_used_bytes)],
              unit="By", description="memory used in each MIG instance (hw.parent_id: its GPU)")
        gauge("inferledger.gpu.mig.memory.limit", [self._mig(lambda m: m.memory_total_bytes)],
              unit="By")
        gauge("inferledger.gpu.process.memory.usage", [self._processes], unit="By")
        meter.create_observable_up_down_counter(
            "hw.status", [self._status], unit="1",
            description="1 for the GPU's current state (ok or failed), 0 for the other")
        meter.create_observable_counter(
            "inferledger.agent.late_samples", [self._late_counts], unit="{sample}",
            description="GPU samples skipped because an NVML call overran its deadline")
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
            samples = self._read_all()
            self._snapshot = (time.monotonic(), samples)
            self.samples_taken += 1
            return samples

    def _read_all(self) -> list[GpuSample]:
        """Read every GPU in parallel; a GPU whose previous read still hangs is not asked
        again, and one that misses the deadline is left out of this cycle."""
        started: dict[int, Future[GpuSample]] = {}
        for i in range(self.backend.device_count()):
            if i in self._lost:
                continue
            if i in self._in_flight and not self._in_flight[i].done():
                self._count_late(i)
                continue
            started[i] = self._in_flight[i] = self._workers.submit(self.backend.sample, i)
        wait(started.values(), timeout=self.sample_deadline_s)
        samples = []
        for i, future in started.items():
            if not future.done():
                self._count_late(i)
                log.warning("GPU %d (%s): NVML did not answer within %.2fs; sample skipped",
                            i, self.backend.uuid(i), self.sample_deadline_s)
                continue
            try:
                samples.append(future.result())
            except GpuLost as e:
                self._lost.add(i)
                log.error("GPU %d (%s) lost, no longer sampled: %s", i,
                          self.backend.uuid(i), e)
        return samples

    def _count_late(self, index: int) -> None:
        self.late_samples[index] = self.late_samples.get(index, 0) + 1

    def _late_counts(self, options: CallbackOptions) -> Iterable[Observation]:
        return [Observation(n, {"hw.id": self.backend.uuid(i), "hw.type": "gpu"})
                for i, n in sorted(self.late_samples.items())]

    def _status(self, options: CallbackOptions) -> Iterable[Observation]:
        for i in range(self.backend.device_count()):
            lost = i in self._lost
            attrs = {"hw.id": self.backend.uuid(i), "hw.type": "gpu"}
            yield Observation(0 if lost else 1, {**attrs, "hw.state": "ok"})
            yield Observation(1 if lost else 0, {**attrs, "hw.state": "failed"})

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

    def _mig(self, field: Callable[[MigInstance], int | None],
             ) -> Callable[[CallbackOptions], Iterable[Observation]]:
        def callback(options: CallbackOptions) -> Iterable[Observation]:
            for s in self._samples():
                for m in s.mig:
                    value = field(m)
                    if value is not None:
                        yield Observation(value, {
                            "hw.id": m.uuid, "hw.parent_id": s.uuid, "hw.type": "gpu",
                            "inferledger.gpu.instance_id": str(m.gpu_instance_id)})

        return callback

    def _processes(self, options: CallbackOptions) -> Iterable[Observation]:
        for s in self._samples():
            for p in s.processes:
                if p.used_memory_bytes is not None:
                    mig = {"inferledger.gpu.mig_id": p.mig_uuid} if p.mig_uuid else {}
                    owners = ancestors_of(p.pid)
                    up = {"inferledger.process.ancestor_pids": ",".join(map(str, owners))
                          } if owners else {}
                    yield Observation(p.used_memory_bytes, {
                        **self._attrs(s), "process.pid": str(p.pid), **mig, **up,
                        **dict(container_of(p.pid))})

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
        self._workers.shutdown(wait=False, cancel_futures=True)  # a hung call is abandoned
        self.backend.close()
