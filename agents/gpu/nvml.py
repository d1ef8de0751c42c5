"""GPU backend over NVML (``nvidia-ml-py``): real GPUs, or the simulator's stand-in library.

Energy comes from the cumulative counter (mJ, Volta+); power from field values — instant and
1-s average, each entry's own return code checked — with ``nvmlDeviceGetPowerUsage`` (mW) as
the fallback on drivers without them (before ≈ R535); memory from the v2 call (v1 counts
driver-reserved memory as used; falls back to v1 on drivers without v2); utilization is
NVML's time-based figure; temperature, SM clock and the clock event reasons (why clocks are
held down: idle, power cap, thermal; the call was named "throttle reasons" before driver 535)
come along. A value the device does not support is left ``None`` and not asked for again.
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
)

T = TypeVar("T")

_UNSUPPORTED = {pynvml.NVML_ERROR_NOT_SUPPORTED, pynvml.NVML_ERROR_FUNCTION_NOT_FOUND,
                pynvml.NVML_ERROR_NOT_FOUND, pynvml.NVML_ERROR_NO_PERMISSION}
_LOST = {pynvml.NVML_ERROR_GPU_IS_LOST, pynvml.NVML_ERROR_RESET_REQUIRED}
_UNAVAILABLE = {pynvml.NVML_ERROR_LIBRARY_NOT_FOUND, pynvml.NVML_ERROR_DRIVER_NOT_LOADED,
                pynvml.NVML_ERROR_UNINITIALIZED, pynvml.NVML_ERROR_LIB_RM_VERSION_MISMATCH}


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

    def _clock_events(self, h: Any) -> int:
        try:
            return self.nvml.nvmlDeviceGetCurrentClocksEventReasons(h)
        except (AttributeError, pynvml.NVMLError) as e:  # older library, or older driver
            if isinstance(e, pynvml.NVMLError) and not isinstance(translate(e), GpuUnsupported):
                raise
            return self.nvml.nvmlDeviceGetCurrentClocksThrottleReasons(h)

    def sample(self, index: int) -> GpuSample:
        h = self._handles[index]
        n = self.nvml
        ts = time.time_ns()
        mem = self._optional(index, "memory", lambda: self._memory(h))
        util = self._optional(index, "util", lambda: n.nvmlDeviceGetUtilizationRates(h))
        procs = self._optional(index, "procs", lambda: n.nvmlDeviceGetComputeRunningProcesses(h))
        power, power_avg = self._power(index, h)
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
            temperature_c=self._optional(index, "temperature", lambda: n.nvmlDeviceGetTemperature(
                h, n.NVML_TEMPERATURE_GPU)),
            sm_clock_mhz=self._optional(index, "sm_clock",
                                        lambda: n.nvmlDeviceGetClockInfo(h, n.NVML_CLOCK_SM)),
            clock_event_reasons=self._optional(index, "clock_events",
                                               lambda: self._clock_events(h)),
            processes=tuple(GpuProcess(int(p.pid), p.usedGpuMemory) for p in procs or ()),
        )

    def close(self) -> None:
        with contextlib.suppress(pynvml.NVMLError):
            self.nvml.nvmlShutdown()
