"""The NVML backend on the simulator's NVML, on failing drivers, and on no NVML at all."""

from __future__ import annotations

import pynvml
import pytest

from agents.gpu import GpuLost, GpuUnavailable, NvmlBackend, open_backend, resolve_visible_devices
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


class _OldDriver(SimulatedNvml):
    """A driver without the energy counter or memory v2, and with one GPU falling off."""

    lost = False

    def nvmlDeviceGetTotalEnergyConsumption(self, handle):  # noqa: N802
        raise pynvml.NVMLError(pynvml.NVML_ERROR_NOT_SUPPORTED)

    def nvmlDeviceGetMemoryInfo(self, handle, version=None):  # noqa: N802
        if version:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_FUNCTION_NOT_FOUND)
        return super().nvmlDeviceGetMemoryInfo(handle)

    def nvmlDeviceGetPowerUsage(self, handle):  # noqa: N802
        if self.lost and handle.index == 1:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_GPU_IS_LOST)
        return super().nvmlDeviceGetPowerUsage(handle)

    def nvmlDeviceGetTemperature(self, handle, sensor):  # noqa: N802
        raise pynvml.NVMLError(pynvml.NVML_ERROR_NOT_SUPPORTED)

    def nvmlDeviceGetFieldValues(self, handle, field_ids):  # noqa: N802 - before ≈ R535
        raise pynvml.NVMLError(pynvml.NVML_ERROR_FUNCTION_NOT_FOUND)

    def nvmlDeviceGetCurrentClocksEventReasons(self, handle):  # noqa: N802 - pre-535 driver
        raise pynvml.NVMLError(pynvml.NVML_ERROR_FUNCTION_NOT_FOUND)

    def nvmlDeviceGetCurrentClocksThrottleReasons(self, handle):  # noqa: N802
        return pynvml.nvmlClocksThrottleReasonGpuIdle


def test_unsupported_fields_are_absent_and_lost_gpus_raise(node) -> None:
    nvml = _OldDriver(node.path)
    b = NvmlBackend(nvml)
    s = b.sample(0)
    assert s.energy_mj is None  # absent, not zero
    assert s.memory_used_bytes == 0 and s.memory_total_bytes is not None  # v1 fallback
    assert s.temperature_c is None  # not supported: absent
    assert s.power_mw is not None and s.power_avg_mw is None  # no field values: the old call
    assert s.clock_event_reasons == pynvml.nvmlClocksThrottleReasonGpuIdle  # the old call
    nvml.lost = True
    with pytest.raises(GpuLost):
        b.sample(1)
    assert b.sample(0).power_mw is not None  # the other GPU carries on


def test_no_nvml_library_says_to_use_the_simulator() -> None:
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError:
        pass
    else:  # pragma: no cover - only on a machine with an NVIDIA driver
        pytest.skip("this machine has a real NVML")
    with pytest.raises(GpuUnavailable, match="sim:PATH"):
        open_backend("nvml")

