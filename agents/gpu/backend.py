"""One device interface for every GPU backend, and the three errors it may raise.

Vendor errors are translated once, at the backend boundary (Zeus's pattern, collapsed to
three types): the sampler only decides "skip this field", "this GPU is gone" or "no GPUs".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol


class GpuError(Exception):
    """Base of the errors a GPU backend raises."""


class GpuUnavailable(GpuError):
    """No GPU library or driver: nothing can be sampled on this host."""


class GpuUnsupported(GpuError):
    """This device or driver does not offer the requested value (report it absent)."""


class GpuLost(GpuError):
    """The device fell off the bus or needs a reset; the others continue."""


@dataclass(frozen=True)
class GpuProcess:
    pid: int  # host PID: NVML does not see PID namespaces
    used_memory_bytes: int | None
    mig_uuid: str | None = None  # the MIG instance it runs in, on a partitioned GPU


@dataclass(frozen=True)
class MigInstance:
    """One MIG instance of a partitioned GPU. Power and energy exist only for the parent."""

    uuid: str  # MIG-…
    gpu_instance_id: int
    memory_used_bytes: int | None = None
    memory_total_bytes: int | None = None


@dataclass(frozen=True)
class GpuSample:
    """One reading of one GPU. ``None`` means the device does not report it (not zero)."""

    uuid: str
    name: str
    index: int
    time_unix_nano: int
    energy_mj: int | None = None
    power_mw: int | None = None  # instantaneous where the driver has field values
    power_avg_mw: int | None = None  # NVML's 1-s average (Ampere+ except GA100)
    power_limit_mw: int | None = None
    memory_used_bytes: int | None = None
    memory_total_bytes: int | None = None
    utilization_pct: int | None = None
    temperature_c: int | None = None
    sm_clock_mhz: int | None = None
    clock_event_reasons: int | None = None  # NVML's bitmask: idle, power cap, thermal, …
    # GPM (Hopper+), averaged since the previous sample: what "utilization" cannot tell
    sm_active_pct: float | None = None  # share of SMs busy (cycles), not of time
    sm_occupancy_pct: float | None = None  # warps resident vs the maximum
    tensor_active_pct: float | None = None
    dram_active_pct: float | None = None  # memory bandwidth used vs peak
    mig: tuple[MigInstance, ...] = field(default_factory=tuple)
    processes: tuple[GpuProcess, ...] = field(default_factory=tuple)


class GpuBackend(Protocol):
    def device_count(self) -> int:
        """Number of GPUs visible to this backend."""

    def uuid(self, index: int) -> str:
        """UUID (``GPU-…``) of the device at ``index``."""

    def sample(self, index: int) -> GpuSample:
        """Read every supported field of the device at ``index`` now. May raise GpuLost."""

    def close(self) -> None:
        """Release the library."""
