"""GPU backend over NVML (``nvidia-ml-py``): real GPUs, or the simulator's stand-in library.

Energy comes from the cumulative counter (mJ, Volta+); power from field values — instant and
1-s average, each entry's own return code checked — with ``nvmlDeviceGetPowerUsage`` (mW) as
the fallback on drivers without them (before ≈ R535); memory from the v2 call (v1 counts
driver-reserved memory as used; falls back to v1 on drivers without v2); utilization is
NVML's time-based figure; temperature, SM clock and the clock event reasons (why clocks are
held down: idle, power cap, thermal; the call was named "throttle reasons" before driver 535)
come along. On Hopper and newer, GPM adds what time-based utilization cannot say: the share
of SMs busy, their occupancy, tensor-core and DRAM-bandwidth activity, averaged between two
samples swapped each cycle. A MIG-partitioned GPU reports its instances (memory, processes)
under the parent, which keeps power and energy. A value the device does not support is left
``None`` and not asked for again; a newer call missing from an older driver falls back to
the call it replaced.
"""

from __future__ import annotations

import contextlib
import functools
import time
from collections.abc import Callable
from typing import Any, TypeVar

import pynvml

from agents.gpu.backend import (
    GpuBackend,
    GpuLost,
    GpuProcess,
    GpuSample,
    GpuUnavailable,
    GpuUnsupported,
    MigInstance,
)

T = TypeVar("T")

_UNSUPPORTED = {pynvml.NVML_ERROR_NOT_SUPPORTED, pynvml.NVML_ERROR_FUNCTION_NOT_FOUND,
                pynvml.NVML_ERROR_NOT_FOUND, pynvml.NVML_ERROR_NO_PERMISSION}
_LOST = {pynvml.NVML_ERROR_GPU_IS_LOST, pynvml.NVML_ERROR_RESET_REQUIRED}
_UNAVAILABLE = {pynvml.NVML_ERROR_LIBRARY_NOT_FOUND, pynvml.NVML_ERROR_DRIVER_NOT_LOADED,
                pynvml.NVML_ERROR_UNINITIALIZED, pynvml.NVML_ERROR_LIB_RM_VERSION_MISMATCH}

_GPM_METRICS = {  # NVML GPM metric id → GpuSample field
    pynvml.NVML_GPM_METRIC_SM_UTIL: "sm_active_pct",
    pynvml.NVML_GPM_METRIC_SM_OCCUPANCY: "sm_occupancy_pct",
    pynvml.NVML_GPM_METRIC_ANY_TENSOR_UTIL: "tensor_active_pct",
    pynvml.NVML_GPM_METRIC_DRAM_BW_UTIL: "dram_active_pct",
}
_GPM_MIN_INTERVAL_S = 0.1  # nvml.h: closer samples fall inside one internal refresh


def translate(err: pynvml.NVMLError) -> GpuLost | GpuUnavailable | GpuUnsupported:
    """Map an NVML error to one of the backend's three errors."""
    code = getattr(err, "value", None)
    if code in _UNSUPPORTED:
        return GpuUnsupported(str(err))
    if code in _UNAVAILABLE:
        return GpuUnavailable(
            f"NVML is not usable here ({err}); on a machine without NVIDIA GPUs use the "
            "simulated backend (--gpu-backend sim:PATH)")
    if code in _LOST:
        return GpuLost(str(err))
    return GpuLost(f"unexpected NVML error: {err}")


def _nvml_call(fn: Callable[..., T]) -> Callable[..., T]:
    @functools.wraps(fn)
    def wrapper(self: NvmlBackend, *args: Any, **kwargs: Any) -> T:
        try:
            return fn(self, *args, **kwargs)
        except pynvml.NVMLError as e:
            raise translate(e) from e

    return wrapper


class NvmlBackend(GpuBackend):
    def __init__(self, nvml: Any = pynvml) -> None:
        self.nvml = nvml
        self._unsupported: set[tuple[int, str]] = set()
        self._missing: set[str] = set()  # newer calls this library or driver lacks
        self._gpm_pairs: dict[int, list[Any]] = {}  # index → [last sample, spare, taken at]
        self._init()
        self._handles = [self._handle(i) for i in range(self._count())]
        self._names = [self._name(i) for i in range(len(self._handles))]
        self._uuids = [self._uuid(i) for i in range(len(self._handles))]

    @_nvml_call
    def _init(self) -> None:
        self.nvml.nvmlInit()

    @_nvml_call
    def _count(self) -> int:
        return self.nvml.nvmlDeviceGetCount()

    @_nvml_call
    def _handle(self, i: int) -> Any:
        return self.nvml.nvmlDeviceGetHandleByIndex(i)

    @_nvml_call
    def _name(self, i: int) -> str:
        return self.nvml.nvmlDeviceGetName(self._handles[i])

    @_nvml_call
    def _uuid(self, i: int) -> str:
        return self.nvml.nvmlDeviceGetUUID(self._handles[i])

    def device_count(self) -> int:
        return len(self._handles)

    def uuid(self, index: int) -> str:
        return self._uuids[index]

    def _optional(self, index: int, field: str, read: Callable[[], T]) -> T | None:
        """Read one field; ``None`` (remembered) when the device does not support it."""
        if (index, field) in self._unsupported:
            return None
        try:
            return read()
        except pynvml.NVMLError as e:
            err = translate(e)
            if not isinstance(err, GpuUnsupported):
                raise err from e
            self._unsupported.add((index, field))
            return None

    def _memory(self, h: Any) -> Any:
        try:
            return self.nvml.nvmlDeviceGetMemoryInfo(h, version=self.nvml.nvmlMemory_v2)
        except pynvml.NVMLError as e:
            if isinstance(translate(e), GpuUnsupported):
                return self.nvml.nvmlDeviceGetMemoryInfo(h)
            raise

    def _power(self, index: int, h: Any) -> tuple[int | None, int | None]:
        """(instant, 1-s average) power in mW."""
        n = self.nvml
        instant = average = None
        fields = self._optional(index, "power_fields", lambda: n.nvmlDeviceGetFieldValues(
            h, [n.NVML_FI_DEV_POWER_INSTANT, n.NVML_FI_DEV_POWER_AVERAGE]))
        for v in fields or ():
            if v.nvmlReturn != pynvml.NVML_SUCCESS:  # one field unsupported, not the call
                continue
            if v.fieldId == n.NVML_FI_DEV_POWER_INSTANT:
                instant = int(v.value.uiVal)
            elif v.fieldId == n.NVML_FI_DEV_POWER_AVERAGE:
                average = int(v.value.uiVal)
        if instant is None:
            instant = self._optional(index, "power", lambda: n.nvmlDeviceGetPowerUsage(h))
        return instant, average

    def _newer_or_older(self, name: str, newer: Callable[[], T], older: Callable[[], T]) -> T:
        """The current NVML call, or the deprecated one it replaced where the library or
        driver predates it (FunctionNotFound; remembered, so it is tried once)."""
        if name not in self._missing:
            try:
                return newer()
            except (AttributeError, pynvml.NVMLError) as e:
                if isinstance(e, pynvml.NVMLError) and (
                        getattr(e, "value", None) != pynvml.NVML_ERROR_FUNCTION_NOT_FOUND):
                    raise
                self._missing.add(name)
        return older()

    def _gpm(self, index: int, h: Any) -> dict[str, float]:
        """GPM metrics between this cycle's sample and the previous one ({} on the first)."""
        n = self.nvml
        pair = self._gpm_pairs.get(index)
        if pair is None:
            if not n.nvmlGpmQueryDeviceSupport(h).isSupportedDevice:  # before Hopper
                raise pynvml.NVMLError(pynvml.NVML_ERROR_NOT_SUPPORTED)
            pair = self._gpm_pairs[index] = [n.nvmlGpmSampleAlloc(), n.nvmlGpmSampleAlloc(), None]
        last, spare, taken_at = pair
        now = time.monotonic()
        if taken_at is not None and now - taken_at < _GPM_MIN_INTERVAL_S:
            return {}
        n.nvmlGpmSampleGet(h, spare)
        pair[:] = [spare, last, now]
        if taken_at is None:
            return {}
        request = pynvml.c_nvmlGpmMetricsGet_t()
        request.version = pynvml.NVML_GPM_METRICS_GET_VERSION
        request.numMetrics = len(_GPM_METRICS)
        request.sample1, request.sample2 = last, spare
        for slot, metric_id in zip(request.metrics, _GPM_METRICS, strict=False):
            slot.metricId = metric_id
        n.nvmlGpmMetricsGet(request)
        return {_GPM_METRICS[m.metricId]: float(m.value)
                for m in request.metrics[:request.numMetrics]
                if m.nvmlReturn == pynvml.NVML_SUCCESS and m.metricId in _GPM_METRICS}

    def _mig(self, h: Any) -> tuple[tuple[MigInstance, ...], tuple[GpuProcess, ...]]:
        """MIG instances of a partitioned GPU and the processes in each. Enumerated every
        time: nvml.h warns that MIG handles are reused when the GPU is repartitioned."""
        n = self.nvml
        if n.nvmlDeviceGetMigMode(h)[0] != n.NVML_DEVICE_MIG_ENABLE:
            return (), ()
        instances: list[MigInstance] = []
        procs: list[GpuProcess] = []
        for slot in range(n.nvmlDeviceGetMaxMigDeviceCount(h)):
            try:
                mh = n.nvmlDeviceGetMigDeviceHandleByIndex(h, slot)
            except pynvml.NVMLError as e:
                if getattr(e, "value", None) == pynvml.NVML_ERROR_NOT_FOUND:
                    continue  # an empty slot
                raise
            mig_uuid = n.nvmlDeviceGetUUID(mh)
            mem = self._memory(mh)
            instances.append(MigInstance(mig_uuid, int(n.nvmlDeviceGetGpuInstanceId(mh)),
                                         int(mem.used), int(mem.total)))
            procs += [GpuProcess(int(p.pid), p.usedGpuMemory, mig_uuid)
                      for p in n.nvmlDeviceGetComputeRunningProcesses(mh)]
        return tuple(instances), tuple(procs)

    def sample(self, index: int) -> GpuSample:
        h = self._handles[index]
        n = self.nvml
        ts = time.time_ns()
        mem = self._optional(index, "memory", lambda: self._memory(h))
        util = self._optional(index, "util", lambda: n.nvmlDeviceGetUtilizationRates(h))
        procs = self._optional(index, "procs", lambda: n.nvmlDeviceGetComputeRunningProcesses(h))
        power, power_avg = self._power(index, h)
        gpm = self._optional(index, "gpm", lambda: self._gpm(index, h)) or {}
        mig, mig_procs = self._optional(index, "mig", lambda: self._mig(h)) or ((), ())
        in_mig = {p.pid for p in mig_procs}  # the instance is the more precise placement
        processes = mig_procs + tuple(GpuProcess(int(p.pid), p.usedGpuMemory)
                                      for p in procs or () if int(p.pid) not in in_mig)
        return GpuSample(
            uuid=self._uuids[index],
            name=self._names[index],
            index=index,
            time_unix_nano=ts,
            energy_mj=self._optional(index, "energy",
                                     lambda: n.nvmlDeviceGetTotalEnergyConsumption(h)),
            power_mw=power,
            power_avg_mw=power_avg,
            power_limit_mw=self._optional(index, "power_limit",
                                          lambda: n.nvmlDeviceGetEnforcedPowerLimit(h)),
            memory_used_bytes=None if mem is None else int(mem.used),
            memory_total_bytes=None if mem is None else int(mem.total),
            utilization_pct=None if util is None else int(util.gpu),
            temperature_c=self._optional(index, "temperature", lambda: self._newer_or_older(
                "temperature", lambda: n.nvmlDeviceGetTemperatureV(h, n.NVML_TEMPERATURE_GPU),
                lambda: n.nvmlDeviceGetTemperature(h, n.NVML_TEMPERATURE_GPU))),
            sm_clock_mhz=self._optional(index, "sm_clock",
                                        lambda: n.nvmlDeviceGetClockInfo(h, n.NVML_CLOCK_SM)),
            clock_event_reasons=self._optional(index, "clock_events", lambda: self._newer_or_older(
                "clock_events", lambda: n.nvmlDeviceGetCurrentClocksEventReasons(h),
                lambda: n.nvmlDeviceGetCurrentClocksThrottleReasons(h))),
            **gpm,
            mig=mig,
            processes=processes,
        )

    def close(self) -> None:
        with contextlib.suppress(pynvml.NVMLError):
            for last, spare, _ in self._gpm_pairs.values():
                self.nvml.nvmlGpmSampleFree(last)
                self.nvml.nvmlGpmSampleFree(spare)
            self.nvml.nvmlShutdown()
