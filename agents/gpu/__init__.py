"""GPU backends behind one interface. ``open_backend`` picks one from a spec string.

``nvml``  real GPUs through nvidia-ml-py.
``NAME:ARG``  an NVML-compatible library another package registers under the entry-point
group ``inferledger_nvml`` (a callable taking ``ARG``), driven by the same backend code:
the simulator registers ``sim`` (``sim:PATH``, a simulated node's state file). The agent
never imports what stands in for the hardware; the stand-in hands itself over.
"""

from __future__ import annotations

from importlib.metadata import entry_points

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


NVML_PROVIDERS = "inferledger_nvml"


def open_backend(spec: str = "nvml") -> GpuBackend:
    if spec == "nvml":
        return NvmlBackend()
    name, sep, arg = spec.partition(":")
    found = entry_points(group=NVML_PROVIDERS, name=name) if sep else ()
    for provider in found:
        return NvmlBackend(provider.load()(arg))
    known = sorted(f"'{ep.name}:…'" for ep in entry_points(group=NVML_PROVIDERS))
    raise UserError(f"unknown GPU backend {spec!r}: use 'nvml' or " + (
        " or ".join(known) if known else "an NVML provider a package registers"))


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
