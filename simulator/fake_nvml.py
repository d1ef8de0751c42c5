"""The part of ``pynvml`` the agent uses, answering from a simulated node's GPUs.

It behaves like the real library where the agent can tell: real ``pynvml`` structs and
error classes, mW / mJ / bytes units, energy that is exactly the integral of power, a
power reading that is the trailing average (as on Ampere+ boards), and utilization as the
busy fraction of the time since the previous query. The agent's NVML backend runs on it
unchanged, which is the point: the demo exercises the same code path as a real GPU.

Tests drive the hardware's bad days through it as well: an older ``driver`` lacks the
functions that came later (``FunctionNotFound``), ``not_supported`` names calls a board
refuses, ``mig`` partitions GPUs into instances, and :meth:`lose`, :meth:`slow` and
:meth:`reset_energy` make a GPU fall off the bus, hang, or restart its energy counter.
"""

from __future__ import annotations

import ctypes
import functools
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pynvml

from simulator.gpu_state import NodeGpus, SimGpu

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class _Handle:
    index: int


@dataclass(frozen=True)
class _MigHandle:
    index: int  # the parent GPU
    slot: int


_MAX_SM_MHZ = {"h100": 1980, "a100": 1410, "l4": 2040}
_IDLE_SM_MHZ = 345
_MAX_MIG_DEVICES = 7
_GIB = 1024**3


def _api(since: int = 0) -> Callable[[F], F]:
    """An NVML entry point that first appeared in driver ``since`` (major version)."""

    def wrap(fn: F) -> F:
        @functools.wraps(fn)
        def call(self: SimulatedNvml, *args: Any, **kwargs: Any) -> Any:
            handle = args[0] if args and isinstance(args[0], (_Handle, _MigHandle)) else None
            self._check(fn.__name__, since, handle)
            return fn(self, *args, **kwargs)

        return call  # type: ignore[return-value]

    return wrap


class SimulatedNvml:
    NVMLError = pynvml.NVMLError
    nvmlMemory_v2 = pynvml.nvmlMemory_v2  # noqa: N815 - pynvml's name
    NVML_TEMPERATURE_GPU = pynvml.NVML_TEMPERATURE_GPU
    NVML_CLOCK_SM = pynvml.NVML_CLOCK_SM
    NVML_FI_DEV_POWER_INSTANT = pynvml.NVML_FI_DEV_POWER_INSTANT
    NVML_FI_DEV_POWER_AVERAGE = pynvml.NVML_FI_DEV_POWER_AVERAGE
    NVML_DEVICE_MIG_ENABLE = pynvml.NVML_DEVICE_MIG_ENABLE

    def __init__(self, state_path: str | Path, *, driver: str = "550.54.15",
                 mig: dict[int, list[str]] | None = None,
                 not_supported: Iterable[str] = ()) -> None:
        self._path = Path(state_path)
        self.driver = driver
        self._driver_major = int(driver.split(".")[0])
        self._mig = {i: list(profiles) for i, profiles in (mig or {}).items()}
        self._not_supported = set(not_supported)
        self._node: NodeGpus | None = None
        self._last_util: dict[int, tuple[float, float]] = {}
        self._last_power: dict[int, tuple[float, float]] = {}
        self._lost: set[int] = set()
        self._delay_s: dict[int, float] = {}
        self._energy_offset_j: dict[int, float] = {}
        self._gpm_samples: dict[int, tuple[ctypes.Array, list[float]]] = {}
        self._lock = threading.Lock()

    # -- what tests make go wrong ------------------------------------------------------
    def lose(self, index: int) -> None:
        """GPU ``index`` falls off the bus: every call on it answers GPU_IS_LOST."""
        self._lost.add(index)

    def slow(self, index: int, seconds: float) -> None:
        """Every call on GPU ``index`` takes ``seconds`` (a driver stuck in the RM lock)."""
        self._delay_s[index] = seconds

    def reset_energy(self, index: int) -> None:
        """The energy counter of GPU ``index`` restarts from zero, as on a driver reload."""
        self._energy_offset_j[index] = self._gpus().read(index).energy_j

    def _check(self, name: str, since: int, handle: _Handle | _MigHandle | None) -> None:
        if self._driver_major < since:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_FUNCTION_NOT_FOUND)
        if name in self._not_supported:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_NOT_SUPPORTED)
        if handle is not None:
            if handle.index in self._lost:
                raise pynvml.NVMLError(pynvml.NVML_ERROR_GPU_IS_LOST)
            if self._delay_s.get(handle.index):
                time.sleep(self._delay_s[handle.index])

    # -- library lifecycle -------------------------------------------------------------
    def nvmlInit(self) -> None:  # noqa: N802 - pynvml's names
        if not self._path.exists():
            raise pynvml.NVMLError(pynvml.NVML_ERROR_DRIVER_NOT_LOADED)
        if self._node is None:
            self._node = NodeGpus(self._path)

    def nvmlShutdown(self) -> None:  # noqa: N802
        if self._node is not None:
            self._node.close()
            self._node = None

    @_api()
    def nvmlSystemGetDriverVersion(self) -> str:  # noqa: N802
        return self.driver

    def _gpus(self) -> NodeGpus:
        if self._node is None:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_UNINITIALIZED)
        return self._node

    def _gpu(self, handle: _Handle) -> SimGpu:
        gpus = self._gpus().gpus
        if not isinstance(handle, _Handle) or not 0 <= handle.index < len(gpus):
            raise pynvml.NVMLError(pynvml.NVML_ERROR_INVALID_ARGUMENT)
        return gpus[handle.index]

    # -- device queries ----------------------------------------------------------------
    @_api()
    def nvmlDeviceGetCount(self) -> int:  # noqa: N802
        return len(self._gpus().gpus)

    @_api()
    def nvmlDeviceGetHandleByIndex(self, index: int) -> _Handle:  # noqa: N802
        handle = _Handle(index)
        self._gpu(handle)
        return handle

    @_api()
    def nvmlDeviceGetUUID(self, handle: _Handle | _MigHandle) -> str:  # noqa: N802
        if isinstance(handle, _MigHandle):
            parent = self._gpu(_Handle(handle.index)).uuid
            return "MIG-" + str(uuid.uuid5(uuid.NAMESPACE_URL, f"{parent}/{handle.slot}"))
        return self._gpu(handle).uuid

    @_api()
    def nvmlDeviceGetName(self, handle: _Handle) -> str:  # noqa: N802
        return self._gpu(handle).model.name

    @_api()
    def nvmlDeviceGetTotalEnergyConsumption(self, handle: _Handle) -> int:  # noqa: N802
        self._gpu(handle)
        energy = self._gpus().read(handle.index).energy_j
        return int((energy - self._energy_offset_j.get(handle.index, 0.0)) * 1000)

    @_api()
    def nvmlDeviceGetPowerUsage(self, handle: _Handle) -> int:  # noqa: N802
        self._gpu(handle)
        r = self._gpus().read(handle.index)
        with self._lock:
            prev = self._last_power.get(handle.index)
            self._last_power[handle.index] = (r.t, r.energy_j)
        if prev and 0.05 < r.t - prev[0] <= 1.5:
            return int((r.energy_j - prev[1]) / (r.t - prev[0]) * 1000)
        return int(r.power_w * 1000)

    @_api()
    def nvmlDeviceGetEnforcedPowerLimit(self, handle: _Handle) -> int:  # noqa: N802
        return int(self._gpu(handle).model.power_limit_w * 1000)

    @_api()
    def nvmlDeviceGetMemoryInfo(self, handle: _Handle | _MigHandle,  # noqa: N802
                                version: int | None = None) -> Any:
        if version and self._driver_major < 510:  # the v2 struct came with R510
            raise pynvml.NVMLError(pynvml.NVML_ERROR_FUNCTION_NOT_FOUND)
        if isinstance(handle, _MigHandle):
            total = int(self._mig_profile_gb(handle) * _GIB)
            used = min(total, self._mig_used(handle))
        else:
            total = self._gpu(handle).model.memory_total_bytes
            used = self._gpus().read(handle.index).mem_used_bytes
        if version:
            reserved = 512 * 1024 * 1024
            return pynvml.c_nvmlMemory_v2_t(version=version, total=total, reserved=reserved,
                                            free=total - reserved - used, used=used)
        return pynvml.c_nvmlMemory_t(total=total, free=total - used, used=used)

    @_api()
    def nvmlDeviceGetUtilizationRates(self, handle: _Handle) -> Any:  # noqa: N802
        self._gpu(handle)
        if handle.index in self._mig:  # nvml.h: not supported on MIG-enabled GPUs
            raise pynvml.NVMLError(pynvml.NVML_ERROR_NOT_SUPPORTED)
        r = self._gpus().read(handle.index)
        with self._lock:
            prev = self._last_util.get(handle.index)
            self._last_util[handle.index] = (r.t, r.busy_s)
        if prev and r.t > prev[0]:
            frac = (r.busy_s - prev[1]) / (r.t - prev[0])
        else:
            frac = 1.0 if r.power_w > self._gpu(handle).model.idle_w else 0.0
        pct = round(max(0.0, min(1.0, frac)) * 100)
        return pynvml.c_nvmlUtilization_t(gpu=pct, memory=round(pct * 0.6))

    @_api()
    def nvmlDeviceGetComputeRunningProcesses(self, handle: _Handle | _MigHandle) -> list:  # noqa: N802
        """The engine writing to the GPU; on a MIG GPU it runs in the first instance."""
        r = self._gpus().read(handle.index)
        if not r.pid or (isinstance(handle, _MigHandle) and handle.slot != 0):
            return []
        mig = handle.index in self._mig
        info = pynvml.c_nvmlProcessInfo_v3_t(
            pid=r.pid, usedGpuMemory=r.mem_used_bytes,
            gpuInstanceId=1 if mig else 0xFFFFFFFF, computeInstanceId=0 if mig else 0xFFFFFFFF)
        return [pynvml.nvmlStructToFriendlyObject(info)]

    @_api()
    def nvmlDeviceGetTemperature(self, handle: _Handle, sensor: int) -> int:  # noqa: N802
        return self._temperature(handle, sensor)

    @_api(since=570)
    def nvmlDeviceGetTemperatureV(self, handle: _Handle, sensor: int) -> int:  # noqa: N802
        return self._temperature(handle, sensor)

    def _temperature(self, handle: _Handle, sensor: int) -> int:
        if sensor != pynvml.NVML_TEMPERATURE_GPU:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_INVALID_ARGUMENT)
        model = self._gpu(handle).model
        power = self._gpus().read(handle.index).power_w
        return round(32 + 45 * power / model.power_limit_w)  # °C: warmer with load

    @_api()
    def nvmlDeviceGetClockInfo(self, handle: _Handle, clock: int) -> int:  # noqa: N802
        if clock != pynvml.NVML_CLOCK_SM:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_NOT_SUPPORTED)
        model = self._gpu(handle).model
        busy = self._gpus().read(handle.index).power_w > model.idle_w
        return _MAX_SM_MHZ.get(model.key, 1500) if busy else _IDLE_SM_MHZ

    @_api()
    def nvmlDeviceGetCurrentClocksThrottleReasons(self, handle: _Handle) -> int:  # noqa: N802
        return self._clock_reasons(handle)

    @_api(since=535)
    def nvmlDeviceGetCurrentClocksEventReasons(self, handle: _Handle) -> int:  # noqa: N802
        return self._clock_reasons(handle)

    def _clock_reasons(self, handle: _Handle) -> int:
        model = self._gpu(handle).model
        power = self._gpus().read(handle.index).power_w
        if power <= model.idle_w:
            return pynvml.nvmlClocksEventReasonGpuIdle
        if power >= 0.95 * model.power_limit_w:
            return pynvml.nvmlClocksEventReasonSwPowerCap
        return 0

    @_api()
    def nvmlDeviceGetFieldValues(self, handle: _Handle, field_ids: list) -> Any:  # noqa: N802
        """Instant power, and the 1-s average NVML has on Ampere+ except GA100 (the A100):
        there that entry alone answers NOT_SUPPORTED, as the real call does. Drivers before
        R535 know neither field id."""
        model = self._gpu(handle).model
        r = self._gpus().read(handle.index)
        out = (pynvml.c_nvmlFieldValue_t * len(field_ids))()
        for v, fid in zip(out, field_ids, strict=True):
            v.fieldId, v.timestamp = fid, int(r.t * 1e6)
            v.valueType = pynvml.NVML_VALUE_TYPE_UNSIGNED_INT
            if self._driver_major < 535:
                v.nvmlReturn = pynvml.NVML_ERROR_NOT_SUPPORTED
            elif fid == pynvml.NVML_FI_DEV_POWER_INSTANT:
                v.value.uiVal = int(r.power_w * 1000)
            elif fid == pynvml.NVML_FI_DEV_POWER_AVERAGE and model.key != "a100":
                v.value.uiVal = self.nvmlDeviceGetPowerUsage(handle)
            else:
                v.nvmlReturn = pynvml.NVML_ERROR_NOT_SUPPORTED
        return out

    # -- MIG ---------------------------------------------------------------------------
    @_api()
    def nvmlDeviceGetMigMode(self, handle: _Handle) -> list[int]:  # noqa: N802
        if self._gpu(handle).model.arch not in ("ampere", "hopper"):
            raise pynvml.NVMLError(pynvml.NVML_ERROR_NOT_SUPPORTED)
        mode = 1 if handle.index in self._mig else 0
        return [mode, mode]

    @_api()
    def nvmlDeviceGetMaxMigDeviceCount(self, handle: _Handle) -> int:  # noqa: N802
        return _MAX_MIG_DEVICES if handle.index in self._mig else 0

    @_api()
    def nvmlDeviceGetMigDeviceHandleByIndex(self, handle: _Handle, index: int) -> _MigHandle:  # noqa: N802
        if index >= len(self._mig.get(handle.index, [])):
            raise pynvml.NVMLError(pynvml.NVML_ERROR_NOT_FOUND)  # an empty slot
        return _MigHandle(handle.index, index)

    @_api()
    def nvmlDeviceGetGpuInstanceId(self, handle: _MigHandle) -> int:  # noqa: N802
        if not isinstance(handle, _MigHandle):
            raise pynvml.NVMLError(pynvml.NVML_ERROR_INVALID_ARGUMENT)
        return handle.slot + 1

    def _mig_profile_gb(self, handle: _MigHandle) -> float:
        profile = self._mig[handle.index][handle.slot]  # e.g. "3g.40gb"
        return float(profile.split(".")[1].removesuffix("gb"))

    def _mig_used(self, handle: _MigHandle) -> int:
        return self._gpus().read(handle.index).mem_used_bytes if handle.slot == 0 else 0

    # -- GPM (Hopper+) -----------------------------------------------------------------
    @_api(since=520)
    def nvmlGpmQueryDeviceSupport(self, handle: _Handle) -> Any:  # noqa: N802
        support = pynvml.c_nvmlGpmSupport_t()
        support.version = pynvml.NVML_GPM_SUPPORT_VERSION
        support.isSupportedDevice = int(self._gpu(handle).model.arch == "hopper")
        return support

    @_api(since=520)
    def nvmlGpmSampleAlloc(self) -> Any:  # noqa: N802
        buf = ctypes.create_string_buffer(16)
        sample = ctypes.cast(buf, pynvml.c_nvmlGpmSample_t)
        self._gpm_samples[ctypes.addressof(buf)] = (buf, [])
        return sample

    @_api(since=520)
    def nvmlGpmSampleFree(self, sample: Any) -> None:  # noqa: N802
        self._gpm_samples.pop(ctypes.cast(sample, ctypes.c_void_p).value or 0, None)

    def _gpm_state(self, sample: Any) -> list[float]:
        entry = self._gpm_samples.get(ctypes.cast(sample, ctypes.c_void_p).value or 0)
        if entry is None:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_INVALID_ARGUMENT)
        return entry[1]

    @_api(since=520)
    def nvmlGpmSampleGet(self, handle: _Handle, sample: Any) -> Any:  # noqa: N802
        if self._gpu(handle).model.arch != "hopper":
            raise pynvml.NVMLError(pynvml.NVML_ERROR_NOT_SUPPORTED)
        r = self._gpus().read(handle.index)
        self._gpm_state(sample)[:] = [handle.index, r.t, r.busy_s, r.energy_j]
        return sample

    @_api(since=520)
    def nvmlGpmMetricsGet(self, request: Any) -> Any:  # noqa: N802
        """SM activity from the simulated GPU's busy time and energy over the interval."""
        first, second = self._gpm_state(request.sample1), self._gpm_state(request.sample2)
        if not first or not second or first[0] != second[0] or second[1] <= first[1]:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_INVALID_ARGUMENT)
        model = self._gpus().gpus[int(first[0])].model
        dt = second[1] - first[1]
        sm, occupancy, tensor, dram = model.gpm_activity((second[2] - first[2]) / dt,
                                                         (second[3] - first[3]) / dt)
        values = {pynvml.NVML_GPM_METRIC_SM_UTIL: sm,
                  pynvml.NVML_GPM_METRIC_SM_OCCUPANCY: occupancy,
                  pynvml.NVML_GPM_METRIC_ANY_TENSOR_UTIL: tensor,
                  pynvml.NVML_GPM_METRIC_DRAM_BW_UTIL: dram}
        for m in request.metrics[:request.numMetrics]:
            if m.metricId in values:
                m.value, m.nvmlReturn = values[m.metricId], pynvml.NVML_SUCCESS
            else:
                m.nvmlReturn = pynvml.NVML_ERROR_NOT_SUPPORTED
        return request
