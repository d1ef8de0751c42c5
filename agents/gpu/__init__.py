"""GPU backends behind one interface. ``open_backend`` picks one from a spec string.

``nvml``  real GPUs through nvidia-ml-py.
``sim:PATH``  a simulated node's GPUs (the simulator's stand-in NVML, same backend code).
"""

from __future__ import annotations

from agents.gpu.backend import (
    GpuBackend,
    GpuError,
    GpuLost,
    GpuProcess,
    GpuSample,
    GpuUnavailable,
    GpuUnsupported,
    MigInstance,
)
from agents.gpu.nvml import NvmlBackend
from inferledger.errors import UserError

__all__ = ["GpuBackend", "GpuError", "GpuLost", "GpuProcess", "GpuSample", "GpuUnavailable",
           "GpuUnsupported", "MigInstance", "NvmlBackend", "open_backend",
           "resolve_visible_devices"]


def open_backend(spec: str = "nvml") -> GpuBackend:
    if spec == "nvml":
        return NvmlBackend()
    if spec.startswith("sim:"):
        from simulator.fake_nvml import SimulatedNvml

        return NvmlBackend(SimulatedNvml(spec[4:]))
    raise UserError(f"unknown GPU backend {spec!r}: use 'nvml' or 'sim:PATH'")


def resolve_visible_devices(backend: GpuBackend, visible: str | None) -> list[str]:
    """GPU UUIDs named by a ``CUDA_VISIBLE_DEVICES`` value (indices, UUIDs or UUID prefixes).

    Unset means every GPU; entries that match nothing are skipped, as CUDA does after the
    first invalid one.
    """
    all_uuids = [backend.uuid(i) for i in range(backend.device_count())]
    if visible is None:
        return all_uuids
    out: list[str] = []
    for entry in (e.strip() for e in visible.split(",")):
        if not entry:
            break
        if entry.isdigit():
            if int(entry) >= len(all_uuids):
                break
            out.append(all_uuids[int(entry)])
            continue
        hits = [u for u in all_uuids if u.startswith(entry) or u.startswith("GPU-" + entry)]
        if len(hits) != 1:
            break
        out.append(hits[0])
    return out
