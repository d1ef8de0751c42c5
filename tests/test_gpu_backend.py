"""The NVML backend on the simulator's NVML, on failing drivers, and on no NVML at all."""

from __future__ import annotations

import time

import pynvml
import pytest

from agents.gpu import GpuLost, GpuUnavailable, NvmlBackend, open_backend, resolve_visible_devices
from inferledger.errors import UserError
from simulator.fake_nvml import SimulatedNvml
from simulator.gpu_state import NodeGpus


@pytest.fixture
def node(tmp_path):
    gpus = NodeGpus.create(tmp_path / "n.gpus", "n", ["h100", "a100"])
    yield gpus
    gpus.close()


def test_energy_is_the_integral_of_power(node) -> None:
    start = node.read(0)
    t = start.t
    node.update(0, power_w=300.0, busy=True, mem_used_bytes=0, pid=1, at=t + 10)
    node.update(0, power_w=100.0, busy=False, mem_used_bytes=0, pid=1, at=t + 20)
    end = node.read(0, at=t + 30)
    # idle 70 W for 10 s, 300 W for 10 s, 100 W for 10 s; busy only in the middle 10 s
    assert end.energy_j - start.energy_j == pytest.approx(700 + 3000 + 1000)
    assert end.busy_s - start.busy_s == pytest.approx(10)


def test_backend_reads_simulated_gpus_like_real_ones(node) -> None:
    b = open_backend(f"sim:{node.path}")
    node.update(1, power_w=250.0, busy=True, mem_used_bytes=5 * 2**30, pid=4242)
    s = b.sample(1)
    assert s.name == "NVIDIA A100-SXM4-80GB" and s.uuid == node.gpus[1].uuid
    assert s.memory_used_bytes == 5 * 2**30 and s.memory_total_bytes == 81920 * 2**20
    assert s.power_limit_mw == 400_000 and s.power_mw == 250_000
    assert s.power_avg_mw is None  # GA100 has no 1-s average: that field alone says so
    node.update(0, power_w=300.0, busy=True, mem_used_bytes=0, pid=0)
    h100 = b.sample(0)
    assert h100.power_mw == 300_000 and h100.power_avg_mw is not None
    assert [p.pid for p in s.processes] == [4242]
    assert s.sm_clock_mhz == 1410 and s.clock_event_reasons == 0 and 32 < s.temperature_c < 77
    node.update(0, power_w=70.0, busy=False, mem_used_bytes=0, pid=0)
    idle = b.sample(0)  # nothing running there
    assert idle.sm_clock_mhz < s.sm_clock_mhz and idle.temperature_c < s.temperature_c
    assert idle.clock_event_reasons == pynvml.nvmlClocksEventReasonGpuIdle
    first = s.energy_mj
    assert b.sample(1).energy_mj >= first  # the counter never goes backwards
    b.close()


def test_cuda_visible_devices_resolution(node) -> None:
    b = open_backend(f"sim:{node.path}")
    u0, u1 = node.gpus[0].uuid, node.gpus[1].uuid
    assert resolve_visible_devices(b, None) == [u0, u1]
    assert resolve_visible_devices(b, "1,0") == [u1, u0]
    assert resolve_visible_devices(b, u1[:12]) == [u1]
    assert resolve_visible_devices(b, "0,7,1") == [u0]  # CUDA stops at the first invalid id
    assert resolve_visible_devices(b, "") == []


def test_an_old_driver_falls_back_and_leaves_absent_what_it_lacks(node) -> None:
    """R470: no memory v2, no power field ids, no clock-event call, no GPM; this board
    also has no energy counter and no temperature sensor."""
    nvml = SimulatedNvml(node.path, driver="470.82.01", not_supported={
        "nvmlDeviceGetTotalEnergyConsumption", "nvmlDeviceGetTemperature"})
    b = NvmlBackend(nvml)
    node.update(0, power_w=70.0, busy=False, mem_used_bytes=0, pid=0)
    s = b.sample(0)
    assert s.energy_mj is None  # absent, not zero
    assert s.memory_used_bytes == 0 and s.memory_total_bytes is not None  # v1 fallback
    assert s.temperature_c is None  # not supported: absent
    assert s.power_mw is not None and s.power_avg_mw is None  # field ids unknown: old call
    assert s.clock_event_reasons == pynvml.nvmlClocksThrottleReasonGpuIdle  # the old call
    assert s.sm_active_pct is None  # GPM came with R520
    assert s.processes == () and s.mig == ()


def test_a_new_driver_uses_the_current_calls(node) -> None:
    nvml = SimulatedNvml(node.path, driver="570.86.10", not_supported={
        "nvmlDeviceGetTemperature", "nvmlDeviceGetCurrentClocksThrottleReasons"})
    s = NvmlBackend(nvml).sample(0)  # the deprecated calls would answer NotSupported
    assert s.temperature_c is not None and s.clock_event_reasons is not None


def test_a_lost_gpu_raises_and_the_others_carry_on(node) -> None:
    nvml = SimulatedNvml(node.path)
    b = NvmlBackend(nvml)
    b.sample(1)
    nvml.lose(1)
    with pytest.raises(GpuLost):
        b.sample(1)
    assert b.sample(0).power_mw is not None


def test_gpm_sm_activity_on_hopper_follows_the_load(node) -> None:
    nvml = SimulatedNvml(node.path)
    b = NvmlBackend(nvml)
    first = b.sample(0)
    assert first.sm_active_pct is None  # GPM needs two samples
    node.update(0, power_w=600.0, busy=True, mem_used_bytes=2**30, pid=7)
    time.sleep(0.15)  # nvml.h: samples closer than 100 ms are not refreshed
    busy = b.sample(0)
    assert 50 < busy.sm_active_pct <= 100 and 0 < busy.sm_occupancy_pct < busy.sm_active_pct
    assert busy.tensor_active_pct > 0 and busy.dram_active_pct > 0
    node.update(0, power_w=70.0, busy=False, mem_used_bytes=2**30, pid=7)
    time.sleep(0.15)
    assert b.sample(0).sm_active_pct < busy.sm_active_pct
    assert b.sample(1).sm_active_pct is None  # the A100 is not Hopper: absent, not zero
    b.close()


def test_mig_instances_are_reported_under_their_gpu(node) -> None:
    nvml = SimulatedNvml(node.path, mig={0: ["3g.40gb", "2g.20gb"]})
    b = NvmlBackend(nvml)
    node.update(0, power_w=300.0, busy=True, mem_used_bytes=12 * 2**30, pid=4242)
    s = b.sample(0)
    assert [(m.gpu_instance_id, m.memory_total_bytes // 2**30) for m in s.mig] == [(1, 40),
                                                                                  (2, 20)]
    assert all(m.uuid.startswith("MIG-") for m in s.mig)
    assert s.mig[0].memory_used_bytes == 12 * 2**30 and s.mig[1].memory_used_bytes == 0
    assert [(p.pid, p.mig_uuid) for p in s.processes] == [(4242, s.mig[0].uuid)]
    assert s.utilization_pct is None  # nvml.h: not supported on MIG-enabled GPUs
    assert s.power_mw == 300_000 and s.energy_mj is not None  # the parent keeps power
    assert b.sample(1).mig == ()  # MIG off on the other GPU


def test_energy_counter_reset_restarts_from_zero(node) -> None:
    nvml = SimulatedNvml(node.path)
    b = NvmlBackend(nvml)
    node.update(0, power_w=300.0, busy=True, mem_used_bytes=0, pid=0, at=node.read(0).t - 100)
    before = b.sample(0).energy_mj
    nvml.reset_energy(0)
    after = b.sample(0).energy_mj
    assert before > 30_000_000 and 0 <= after < before  # analytics bridges the reset


def test_no_nvml_library_says_to_use_the_simulator() -> None:
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError:
        pass
    else:  # pragma: no cover - only on a machine with an NVIDIA driver
        pytest.skip("this machine has a real NVML")
    with pytest.raises(GpuUnavailable, match="sim:PATH"):
        open_backend("nvml")



@pytest.mark.parametrize("spec", ["bogus", "dcgm:localhost", "sim"])
def test_unknown_backend_names_the_registered_ones(spec: str) -> None:
    """``sim`` is the simulator's entry point (the agent imports no simulator code); an
    unknown name is a one-line error listing what is registered."""
    with pytest.raises(UserError, match=r"use 'nvml' or 'sim:…'") as e:
        open_backend(spec)
    assert "\n" not in str(e.value)
