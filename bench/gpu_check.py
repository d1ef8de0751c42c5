"""Check on a real NVIDIA GPU: the agent's NVML readings against a known load (≈ 70 s).

For a machine with an NVIDIA GPU (never part of the test suite). Samples GPU 0 through the
agent's own NVML backend at 10 Hz while a child process runs PyTorch matrix multiplies in
bursts (5 s on, 5 s off), then reports:

- the energy counter's delta against the integral of the power readings (agree within 10%);
- utilization and GPM SM activity (Hopper+) during bursts against between them (both must
  rise with load);
- memory used while the load holds its tensors against before (it must track the allocation);
- whether the load's PID is among the GPU's processes (placement depends on it);
- how long a whole sample takes (p50, p99, max) and each NVML call in it (p50, max).

The last line is one JSON object. Without PyTorch the load phases are skipped and the report
says so. Run: ``.venv/bin/python bench/gpu_check.py [--seconds 60]``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import pynvml

from agents.gpu import NvmlBackend


class TimedNvml:
    """The NVML module, with every ``nvml*`` call's duration recorded by name."""

    def __init__(self, nvml: Any) -> None:
        self._nvml = nvml
        self.calls: dict[str, list[float]] = defaultdict(list)

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._nvml, name)
        if not (name.startswith("nvml") and callable(attr)):
            return attr

        def timed(*args: Any, **kwargs: Any) -> Any:
            t = time.perf_counter()
            try:
                return attr(*args, **kwargs)
            finally:
                self.calls[name].append(time.perf_counter() - t)

        return timed


def _busy_idle(samples: list, started: float,
               field: Callable[[Any], float | None]) -> tuple[float | None, float | None]:
    """Mean of ``field`` inside the load's 5-s bursts and in the pauses between them."""
    on = [field(s) for ts, s in samples if field(s) is not None and ((ts - started) % 10) < 5]
    off = [field(s) for ts, s in samples
           if field(s) is not None and ((ts - started) % 10) >= 5.5]
    return (round(statistics.mean(on), 1) if on else None,
            round(statistics.mean(off), 1) if off else None)

LOAD = """
import sys, time, torch
seconds = float(sys.argv[1])
a = torch.randn(8192, 8192, device="cuda")
b = torch.randn(8192, 8192, device="cuda")
hold = torch.empty(int(4 * 2**30) // 4, device="cuda")  # 4 GiB held for the whole run
print("ready", flush=True)
end = time.time() + seconds
while time.time() < end:
    burst_end = min(time.time() + 5, end)
    while time.time() < burst_end:
        (a @ b).sum().item()
    time.sleep(min(5, max(0, end - time.time())))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--backend", default="nvml",
                    help="'nvml' (default); 'sim:PATH' only to dry-run this script")
    args = ap.parse_args()
    if args.backend.startswith("sim:"):
        from simulator.fake_nvml import SimulatedNvml

        nvml = TimedNvml(SimulatedNvml(args.backend[4:]))
    else:
        nvml = TimedNvml(pynvml)
    backend = NvmlBackend(nvml)
    samples, timings = [], []
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(0.1):
            t = time.perf_counter()
            s = backend.sample(0)
            timings.append(time.perf_counter() - t)
            samples.append((time.time(), s))

    baseline = backend.sample(0)
    load, started = None, time.time()
    try:
        import torch  # noqa: F401 - only to know whether the load can run

        load = subprocess.Popen([sys.executable, "-c", LOAD, str(args.seconds)],
                                stdout=subprocess.PIPE, text=True)
        load.stdout.readline()  # tensors allocated
        started = time.time()
    except ImportError:
        print("PyTorch is not installed: no load; idle readings only")
    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    time.sleep(args.seconds)
    stop.set()
    sampler.join()
    if load is not None:
        load.wait(60)
    backend.close()

    t = [x[0] for x in samples]
    power_w = [x[1].power_mw / 1e3 for x in samples if x[1].power_mw is not None]
    integral = sum((t[i + 1] - t[i]) * (power_w[i] + power_w[i + 1]) / 2
                   for i in range(min(len(t), len(power_w)) - 1))
    e0, e1 = samples[0][1].energy_mj, samples[-1][1].energy_mj
    energy_j = (e1 - e0) / 1e3 if e0 is not None and e1 is not None else None
    ratio = energy_j / integral if energy_j and integral else None
    util_on, util_off = _busy_idle(samples, started, lambda s: s.utilization_pct)
    sm_on, sm_off = _busy_idle(samples, started, lambda s: s.sm_active_pct)
    mem_peak = max(s.memory_used_bytes or 0 for _, s in samples)
    pid_seen = load is not None and any(p.pid == load.pid for _, s in samples
                                        for p in s.processes)
    ms = sorted(x * 1e3 for x in timings)
    report = {
        "gpu": baseline.name, "samples": len(samples),
        "energy_counter_j": energy_j, "power_integral_j": round(integral, 1),
        "energy_over_integral": round(ratio, 4) if ratio else None,
        "energy_agrees_within_10pct": ratio is not None and abs(ratio - 1) <= 0.10,
        "utilization_busy_pct": util_on, "utilization_idle_pct": util_off,
        "sm_active_busy_pct": sm_on, "sm_active_idle_pct": sm_off,  # None: no GPM here
        "memory_before_gib": round((baseline.memory_used_bytes or 0) / 2**30, 2),
        "memory_peak_gib": round(mem_peak / 2**30, 2),
        "load_pid_found": pid_seen, "load_ran": load is not None,
        "nvml_sample_ms_p50": round(ms[len(ms) // 2], 3) if ms else None,
        "nvml_sample_ms_p99": round(ms[int(len(ms) * 0.99)], 3) if ms else None,
        "nvml_sample_ms_max": round(ms[-1], 3) if ms else None,
        "nvml_call_ms_p50_max": {
            name: [round(statistics.median(d) * 1e3, 3), round(max(d) * 1e3, 3)]
            for name, d in sorted(nvml.calls.items())},
    }
    for k, v in report.items():
        print(f"{k:>28}: {v}")
    print(json.dumps(report))


if __name__ == "__main__":
    main()
