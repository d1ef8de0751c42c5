"""Static properties of the simulated GPU models and their power curve.

Names, memory totals (nvidia-smi MiB), power limits and idle draw are the real ones, as
nvidia-smi prints them on real machines (an H100 SXM: 81,559 MiB, 700 W; an L4: 23,034 MiB,
72 W). Power under serving follows a logistic in log2(batch), the shape the ML.ENERGY
toolkit fits; with these constants an H100 serving Llama-3.1-8B draws ≈325 W at
batch 1 and ≈525 / 640 / 670 W at batch 8 / 64 / 256, against ML.ENERGY v3's measured
486 / 610 / 691 W (bench/sim_calibration.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

MIB = 1024 * 1024


@dataclass(frozen=True)
class GpuModel:
    key: str
    name: str  # what nvmlDeviceGetName returns
    memory_total_bytes: int
    power_limit_w: float
    idle_w: float  # idle with a model loaded, P0
    peak_serving_w: float  # plateau of the logistic under heavy batching
    hbm_bytes_per_s: float
    dense_flops: float
    arch: str  # GPM (SM activity) is Hopper and newer; MIG is A100/H100, not L4

    def serving_power_w(self, batch: int, prefill_share: float = 0.0) -> float:
        """Power while a step of ``batch`` sequences runs; prefill-heavy steps draw more."""
        if batch <= 0:
            return self.idle_w
        s = 1.0 / (1.0 + math.exp(-0.46 * (math.log2(batch) - 0.78)))
        s = min(1.0, s + 0.25 * max(0.0, min(1.0, prefill_share)) * (1.0 - s))
        return self.idle_w + (self.peak_serving_w - self.idle_w) * s

    def gpm_activity(self, busy: float, avg_power_w: float) -> tuple[float, float, float, float]:
        """GPM's SM active, SM occupancy, tensor active and DRAM active (percent) over an
        interval: the busy share times how hard the SMs worked, read from the power above
        idle (batches draw more power as they fill more SMs)."""
        busy = max(0.0, min(1.0, busy))
        load = (avg_power_w - self.idle_w) / (self.peak_serving_w - self.idle_w)
        load = max(0.0, min(1.0, load))
        sm = 100.0 * busy * (0.2 + 0.8 * load)
        return sm, 0.45 * sm, 0.6 * sm * load, 100.0 * busy * (0.5 + 0.3 * load)


GPU_MODELS: dict[str, GpuModel] = {
    m.key: m
    for m in (
        GpuModel("h100", "NVIDIA H100 80GB HBM3", 81559 * MIB, 700.0, 70.0, 690.0, 3.35e12, 989e12,
                 "hopper"),
        GpuModel("a100", "NVIDIA A100-SXM4-80GB", 81920 * MIB, 400.0, 60.0, 370.0, 2.0e12, 312e12,
                 "ampere"),
        GpuModel("l4", "NVIDIA L4", 23034 * MIB, 72.0, 35.0, 70.0, 0.3e12, 121e12, "ada"),
    )
}
