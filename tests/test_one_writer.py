"""A second instance never corrupts the first: it checks its ports and its store's writer
lock before it starts anything, and refuses in one line naming what is taken and by whom."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from analytics.pipeline import run
from inferledger.locks import Busy, ProcessLock
from inferledger.ports import PortBusy, ensure_free
from inferledger.procs import wait_for_port
from inferledger.store import DataDir
from simulator.gpu_state import NodeGpus
from tests.builders import stored
from tests.ports import free_block


def _start(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "commands", *args],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _refused(*args: str) -> str:
    """Run a second instance: it must exit 2 at once with one line, and no traceback."""
    out = subprocess.run([sys.executable, "-m", "commands", *args], capture_output=True,
                         text=True, timeout=60)
    lines = out.stderr.strip().splitlines()
    assert out.returncode == 2 and len(lines) == 1, (out.returncode, out.stderr)
    return lines[0]


def _stop(proc: subprocess.Popen) -> str:
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    return err


def test_a_port_in_use_is_named_with_its_holder() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        with pytest.raises(PortBusy) as e:
            ensure_free("127.0.0.1", [(0, "anything"), (port, "the collector's OTLP/HTTP")])
    msg = str(e.value)
    assert f"port {port} on 127.0.0.1 (the collector's OTLP/HTTP) is taken by pid " \
           f"{os.getpid()}" in msg
    with pytest.raises(PortBusy, match="given twice"):
        ensure_free("127.0.0.1", [(4317, "a"), (4317, "b")])


def test_a_lock_names_its_holder_and_dies_with_it(tmp_path) -> None:
    path = tmp_path / ".collector.lock"
    holder = subprocess.Popen([sys.executable, "-c",
                               "import sys, time; from pathlib import Path; "
                               "from inferledger.locks import ProcessLock; "
                               f"ProcessLock(Path({str(path)!r}), 'x').acquire(); "
                               "print('held', flush=True); time.sleep(60)"],
                              stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    with pytest.raises(Busy, match=f"the store's collector is already held by pid {holder.pid}"):
        ProcessLock(path, "the store's collector").acquire(wait_s=0.3)
    holder.kill()  # kill -9: nothing to clean up by hand
    holder.wait()
    ProcessLock(path, "the store's collector").acquire().release()


def test_a_second_collector_refuses_and_the_first_goes_on(tmp_path) -> None:
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    from tests.test_collector import _emit

    data = DataDir.at(tmp_path / "data")
    base = free_block(4)
    first = _start("collector", "--data", str(data.root), "--grpc-port", str(base),
                   "--http-port", str(base + 1), "--workers", "0")
    try:
        wait_for_port("127.0.0.1", base + 1, 60)
        same = _refused("collector", "--data", str(data.root), "--grpc-port", str(base),
                        "--http-port", str(base + 1))
        assert f"port {base} on 127.0.0.1 (the collector's OTLP/gRPC) is taken by pid " \
               f"{first.pid}" in same
        other_ports = _refused("collector", "--data", str(data.root), "--grpc-port",
                               str(base + 2), "--http-port", str(base + 3))
        assert f"the collector of {data.root} is already held by pid {first.pid}" in other_ports
        ids = _emit(OTLPSpanExporter(endpoint=f"http://127.0.0.1:{base + 1}/v1/traces"))
        assert [r[0] for r in stored(data, "SELECT span_id FROM raw_spans ORDER BY "
                                     "attributes['i']")] == ids
    finally:
        err = _stop(first)
    assert "Traceback" not in err, err


def test_a_second_scheduler_refuses(tmp_path) -> None:
    data = tmp_path / "data"
    first = _start("scheduler", "--data", str(data), "--interval", "3600")
    try:
        lock = DataDir.at(data).scheduler_lock()
        for _ in range(300):  # until it holds its lock
            try:
                lock.probe()
            except Busy:
                break
            first.poll()
            assert first.returncode is None, first.stderr.read()
            time.sleep(0.1)
        line = _refused("scheduler", "--data", str(data))
        assert f"the scheduler of {data} is already held by pid {first.pid}" in line
    finally:
        err = _stop(first)
    assert "Traceback" not in err, err


def test_a_second_agent_for_the_same_gpus_refuses(tmp_path) -> None:
    state = tmp_path / "node.gpus"
    NodeGpus.create(state, "n", ["h100"]).close()
    first = _start("agent", "--gpu-backend", f"sim:{state}", "--otlp-endpoint",
                   "http://127.0.0.1:9")  # nowhere: it buffers, which is fine here
    try:
        lock = ProcessLock(state.with_name(state.name + ".agent.lock"), "")
        for _ in range(300):
            try:
                lock.probe()
            except Busy:
                break
            assert first.poll() is None, first.stderr.read()
            time.sleep(0.1)
        line = _refused("agent", "--gpu-backend", f"sim:{state}")
        assert f"the node agent of simulated node {state} is already held by pid " \
               f"{first.pid}" in line
    finally:
        _stop(first)


def test_one_analytics_run_at_a_time(tmp_path) -> None:
    data = DataDir.at(tmp_path / "data")
    held = f"the analytics of {data.root} is already held by pid {os.getpid()}"
    with data.ensure().analytics_lock().acquire(), pytest.raises(Busy, match=held):
        run(data)
    assert run(data).requests == 0  # free again


@pytest.mark.parametrize("command", [
    lambda port: ["gateway", "--listen", f"127.0.0.1:{port}", "--upstream", "http://127.0.0.1:9"],
    lambda port: ["dashboard", "--data", "unused", "--port", str(port)],
])
def test_servers_refuse_a_taken_port_naming_it(command) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        line = _refused(*command(port))
    assert f"port {port} on 127.0.0.1" in line and f"taken by pid {os.getpid()}" in line
