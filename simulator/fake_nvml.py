"""The part of ``pynvml`` the agent uses, answering from a simulated node's GPUs.

It behaves like the real library where the agent can tell: real ``pynvml`` structs and
error classes, mW / mJ / bytes units, energy that is exactly the integral of power, a
power reading that is the trailing average (as on Ampere+ boards), and utilization as the
busy fraction of the time since the previous query. The agent's NVML backend runs on it
unchanged, which is the point: the demo exercises the same code path as a real GPU.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

import pynvml

from simulator.gpu_state import NodeGpus


@dataclass(frozen=True)
class _Handle:
    index: int


_MAX_SM_MHZ = {"h100": 1980, "a100": 1410, "l4": 2040}
_IDLE_SM_MHZ = 345


class SimulatedNvml:
    NVMLError = pynvml.NVMLError
    nvmlMemory_v2 = pynvml.nvmlMemory_v2  # noqa: N815 - pynvml's name
    NVML_TEMPERATURE_GPU = pynvml.NVML_TEMPERATURE_GPU
    NVML_CLOCK_SM = pynvml.NVML_CLOCK_SM
    NVML_FI_DEV_POWER_INSTANT = pynvml.NVML_FI_DEV_POWER_INSTANT
    NVML_FI_DEV_POWER_AVERAGE = pynvml.NVML_FI_DEV_POWER_AVERAGE

    def __init__(self, state_path: str | Path) -> None:
        self._path = Path(state_path)
        self._node: NodeGpus | None = None
        self._last_util: dict[int, tuple[float, float]] = {}
        self._last_power: dict[int, tuple[float, float]] = {}
        self._lock = threading.Lock()

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

    def _gpus(self) -> NodeGpus:
        if self._node is None:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_UNINITIALIZED)
        return self._node

    def _gpu(self, handle: _Handle):
        gpus = self._gpus().gpus
        if not isinstance(handle, _Handle) or not 0 <= handle.index < len(gpus):
            raise pynvml.NVMLError(pynvml.NVML_ERROR_INVALID_ARGUMENT)
        return gpus[handle.index]

    # -- device queries ----------------------------------------------------------------
    def nvmlDeviceGetCount(self) -> int:  # noqa: N802
        return len(self._gpus().gpus)

    def nvmlDeviceGetHandleByIndex(self, index: int) -> _Handle:  # noqa: N802
        handle = _Handle(index)
        self._gpu(handle)
        return handle

    def nvmlDeviceGetUUID(self, handle: _Handle) -> str:  # noqa: N802
        return self._gpu(handle).uuid

    def nvmlDeviceGetName(self, handle: _Handle) -> str:  # noqa: N802
        return self._gpu(handle).model.name

    def nvmlDeviceGetTotalEnergyConsumption(self, handle: _Handle) -> int:  # noqa: N802
        self._gpu(handle)
        return int(self._gpus().read(handle.index).energy_j * 1000)

    def nvmlDeviceGetPowerUsage(self, handle: _Handle) -> int:  # noqa: N802
        self._gpu(handle)
        r = self._gpus().read(handle.index)
        with self._lock:
            prev = self._last_power.get(handle.index)
            self._last_power[handle.index] = (r.t, r.energy_j)
        if prev and 0.05 < r.t - prev[0] <= 1.5:
            return int((r.energy_j - prev[1]) / (r.t - prev[0]) * 1000)
        return int(r.power_w * 1000)

    def nvmlDeviceGetEnforcedPowerLimit(self, handle: _Handle) -> int:  # noqa: N802
        return int(self._gpu(handle).model.power_limit_w * 1000)

    def nvmlDeviceGetMemoryInfo(self, handle: _Handle, version: int | None = None):  # noqa: N802
        total = self._gpu(handle).model.memory_total_bytes
        used = self._gpus().read(handle.index).mem_used_bytes
        if version:
            reserved = 512 * 1024 * 1024
            return pynvml.c_nvmlMemory_v2_t(version=version, total=total, reserved=reserved,
                                            free=total - reserved - used, used=used)
        return pynvml.c_nvmlMemory_t(total=total, free=total - used, used=used)

    def nvmlDeviceGetUtilizationRates(self, handle: _Handle):  # noqa: N802
        self._gpu(handle)
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

    def nvmlDeviceGetComputeRunningProcesses(self, handle: _Handle) -> list:  # noqa: N802
        self._gpu(handle)
        r = self._gpus().read(handle.index)
        if not r.pid:
            return []
        info = pynvml.c_nvmlProcessInfo_v3_t(pid=r.pid, usedGpuMemory=r.mem_used_bytes,
                                             gpuInstanceId=0xFFFFFFFF,
                                             computeInstanceId=0xFFFFFFFF)
        return [pynvml.nvmlStructToFriendlyObject(info)]

    def nvmlDeviceGetTemperature(self, handle: _Handle, sensor: int) -> int:  # noqa: N802
        if sensor != pynvml.NVML_TEMPERATURE_GPU:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_INVALID_ARGUMENT)
        model = self._gpu(handle).model
        power = self._gpus().read(handle.index).power_w
        return round(32 + 45 * power / model.power_limit_w)  # °C: warmer with load

    def nvmlDeviceGetClockInfo(self, handle: _Handle, clock: int) -> int:  # noqa: N802
        if clock != pynvml.NVML_CLOCK_SM:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_NOT_SUPPORTED)
        model = self._gpu(handle).model
        busy = self._gpus().read(handle.index).power_w > model.idle_w
        return _MAX_SM_MHZ.get(model.key, 1500) if busy else _IDLE_SM_MHZ

    def nvmlDeviceGetCurrentClocksEventReasons(self, handle: _Handle) -> int:  # noqa: N802
        model = self._gpu(handle).model
        power = self._gpus().read(handle.index).power_w
        if power <= model.idle_w:
            return pynvml.nvmlClocksEventReasonGpuIdle
        if power >= 0.95 * model.power_limit_w:
            return pynvml.nvmlClocksEventReasonSwPowerCap
        return 0

    def nvmlDeviceGetFieldValues(self, handle: _Handle, field_ids: list) -> list:  # noqa: N802
        """Instant power, and the 1-s average NVML has on Ampere+ except GA100 (the A100):
        there that entry alone answers NOT_SUPPORTED, as the real call does."""
        model = self._gpu(handle).model
        r = self._gpus().read(handle.index)
        out = (pynvml.c_nvmlFieldValue_t * len(field_ids))()
        for v, fid in zip(out, field_ids, strict=True):
            v.fieldId, v.timestamp = fid, int(r.t * 1e6)
            v.valueType = pynvml.NVML_VALUE_TYPE_UNSIGNED_INT
            if fid == pynvml.NVML_FI_DEV_POWER_INSTANT:
                v.value.uiVal = int(r.power_w * 1000)
            elif fid == pynvml.NVML_FI_DEV_POWER_AVERAGE and model.key != "a100":
                v.value.uiVal = self.nvmlDeviceGetPowerUsage(handle)
            else:
                v.nvmlReturn = pynvml.NVML_ERROR_NOT_SUPPORTED
        return out
