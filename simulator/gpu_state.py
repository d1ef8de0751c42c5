"""Shared state of one simulated node's GPUs, in a small memory-mapped file.

Engines (separate processes, as on a real node) write what their GPU is doing; the fake NVML
in the node agent reads it. Each slot keeps the energy and busy-time integrals at the last
update plus the power and busy flag in force since then, so a reader at any instant gets
energy = ∫ power dt exactly, and a GPU nobody writes to keeps drawing its idle power.
A sequence counter (seqlock) makes reads consistent without locks. One writer per slot.
"""

from __future__ import annotations

import json
import mmap
import os
import struct
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from simulator.gpu_models import GPU_MODELS, GpuModel

# seq, t_update, energy_j, power_w, busy_s, busy, mem_used_bytes, pid
_SLOT = struct.Struct("<Q d d d d d Q q")


@dataclass(frozen=True)
class SimGpu:
    index: int
    uuid: str
    model_key: str

    @property
    def model(self) -> GpuModel:
        return GPU_MODELS[self.model_key]


@dataclass(frozen=True)
class Reading:
    t: float
    energy_j: float
    power_w: float
    busy_s: float
    mem_used_bytes: int
    pid: int


def sim_uuid(node: str, index: int) -> str:
    """A stable, GPU-shaped UUID for a simulated device."""
    import uuid

    return "GPU-" + str(uuid.uuid5(uuid.NAMESPACE_DNS, f"{node}.gpu{index}.inferledger.sim"))


class NodeGpus:
    """The GPUs of one simulated node, backed by ``<path>`` and ``<path>.json``."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        meta = json.loads(self.path.with_suffix(".json").read_text())
        self.node: str = meta["node"]
        self.gpus = [SimGpu(**g) for g in meta["gpus"]]
        self._fd = os.open(self.path, os.O_RDWR)
        self._mm = mmap.mmap(self._fd, _SLOT.size * len(self.gpus))

    @classmethod
    def create(cls, path: Path, node: str, model_keys: list[str]) -> NodeGpus:
        """Create the node's state: every GPU idle, energy counters at zero, now."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        gpus = [SimGpu(i, sim_uuid(node, i), k) for i, k in enumerate(model_keys)]
        path.with_suffix(".json").write_text(
            json.dumps({"node": node, "gpus": [asdict(g) for g in gpus]}))
        now = time.time()
        with open(path, "wb") as f:
            for g in gpus:
                f.write(_SLOT.pack(0, now, 0.0, g.model.idle_w, 0.0, 0.0, 0, 0))
        return cls(path)

    def close(self) -> None:
        self._mm.close()
        os.close(self._fd)

    def read(self, index: int, at: float | None = None) -> Reading:
        off = index * _SLOT.size
        while True:
            s1 = struct.unpack_from("<Q", self._mm, off)[0]
            fields = _SLOT.unpack_from(self._mm, off)
            s2 = struct.unpack_from("<Q", self._mm, off)[0]
            if s1 == s2 and s1 % 2 == 0:
                break
        _, t_u, energy_j, power_w, busy_s, busy, mem, pid = fields
        now = time.time() if at is None else at
        dt = max(0.0, now - t_u)
        return Reading(now, energy_j + power_w * dt, power_w, busy_s + busy * dt, mem, pid)

    def update(self, index: int, *, power_w: float, busy: bool, mem_used_bytes: int,
               pid: int, at: float | None = None) -> None:
        """From ``at`` (default now) on, the GPU draws ``power_w``; integrals carry over."""
        now = time.time() if at is None else at
        cur = self.read(index, at=now)
        off = index * _SLOT.size
        seq = struct.unpack_from("<Q", self._mm, off)[0]
        struct.pack_into("<Q", self._mm, off, seq + 1)
        _SLOT.pack_into(self._mm, off, seq + 1, now, cur.energy_j, power_w, cur.busy_s,
                        1.0 if busy else 0.0, mem_used_bytes, pid)
        struct.pack_into("<Q", self._mm, off, seq + 2)
