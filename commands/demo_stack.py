"""``inferledger demo``: the whole pipeline on one machine, on simulated GPUs.

Start order: collector → history, if asked (days of the scenario on a virtual clock, sent
through OTLP, then analysed once) → simulated nodes (engines with the tracing middleware,
node agents) → gateway in front of every engine → scheduler → dashboard → load (through the
gateway). The scenario names the fleet and the apps, for the history and the live part alike.
Stop order is the reverse, so every span and sample still in an exporter reaches the
collector; then one last analytics run, then the collector.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from analytics.pipeline import run as run_analytics
from analytics.pricing import load_pricing
from analytics.report.config import load_report_config
from analytics.settings import load_settings
from analytics.summary import format_table, summary
from collector.exporters.parquet import wait_published
from inferledger.ports import ensure_free
from inferledger.procs import Supervisor, install_stop_handlers, wait_for_port
from inferledger.store import DataDir, NotAStore
from simulator.history.generate import generate_history, report_progress
from simulator.scenario import DEFAULT_SCENARIO, Scenario, load_scenario

log = logging.getLogger("inferledger.demo")


@dataclass(frozen=True)
class DemoOptions:
    data: Path
    duration_s: float | None = None
    dashboard: bool = True
    listen: str = "127.0.0.1"
    grpc_port: int = 4317
    http_port: int = 4318
    dashboard_port: int = 8501
    engine_port_base: int = 8100
    rate_per_s: float = 3.0
    analytics_interval_s: float = 10.0
    sample_interval_s: float = 1.0
    pricing: Path | None = None
    config: Path | None = None
    scenario: str = DEFAULT_SCENARIO
    history_days: float = 0.0


def preflight(o: DemoOptions) -> tuple[Scenario, DataDir]:
    """Everything the demo needs, checked before it creates or starts anything: the scenario,
    the pricing and settings files, every port of every part, and that no collector,
    scheduler or analytics run already writes the data directory. A second demo on the same
    ports or store stops here with one line, before a child could reach the first one's."""
    scenario = load_scenario(o.scenario)
    load_pricing(o.pricing)
    load_settings(o.config)
    load_report_config(o.config)
    ports = [(o.grpc_port, "the collector's OTLP/gRPC"),
             (o.http_port, "the collector's OTLP/HTTP"),
             (o.engine_port_base, "the gateway")]
    ports += [(e.port, f"the simulated engine {e.model} on {node.name}")
              for node in scenario.with_ports(o.engine_port_base) for e in node.engines]
    if o.dashboard:
        ports.append((o.dashboard_port, "the dashboard"))
    ensure_free(o.listen, ports)
    data = DataDir.at(o.data)
    if data.root.exists() and not data.root.is_dir():
        raise NotAStore(f"--data {data.root} is a file, not a data directory")
    data.ensure()
    for lock in (data.collector_lock(), data.scheduler_lock(), data.analytics_lock()):
        lock.probe(hint="another demo or collector writes this store; stop it or give "
                   "another --data")
    return scenario, data


# The simulated fleet (nodes with their engines and agents, the gateway, the load) stands for
# other machines: on this one it runs below the parts that answer people and clients (the
# collector's acknowledgements, the dashboard), beside the batch analytics (the scheduler
# lowers itself by as much), so neither starves a page being read.
FLEET_NICE = 10


def _start(sup: Supervisor, o: DemoOptions, data: DataDir, scenario: Scenario) -> None:
    host = o.listen
    collector = sup.spawn("collector", ["collector", "--data", str(data.root), "--listen", host,
                                        "--grpc-port", str(o.grpc_port),
                                        "--http-port", str(o.http_port)])
    wait_for_port(host, o.http_port, 30, collector)
    wait_for_port(host, o.grpc_port, 30, collector)
    if o.history_days:
        _history(o, data, scenario)
    upstreams: list[str] = []
    models: set[str] = set()
    for node in scenario.with_ports(o.engine_port_base):
        args = ["sim", "node", "--name", node.name, "--gpus", ",".join(node.gpus),
                "--state", str(data.sim / f"{node.name}.gpus"), "--listen", host,
                "--collector-grpc", f"{host}:{o.grpc_port}",
                "--collector-http", f"http://{host}:{o.http_port}",
                "--interval", str(o.sample_interval_s)]
        for e in node.engines:
            args += ["--engine", str(e)]
            upstreams += ["--upstream", f"http://{host}:{e.port}"]
            models.add(e.model)
        child = sup.spawn(node.name, args, nice=FLEET_NICE)
        for e in node.engines:
            wait_for_port(host, e.port, 90, child)
            log.info("engine %-24s on %s GPU %s: http://%s:%d/v1", e.model, node.name,
                     "+".join(map(str, e.gpus)), host, e.port)
    gateway = sup.spawn("gateway", ["gateway", "--listen", f"{host}:{o.engine_port_base}",
                                    *upstreams, "--otlp-endpoint", f"http://{host}:{o.http_port}",
                                    "--otlp-protocol", "http/protobuf"],
                        {"INFERLEDGER_TENANT_HASH_KEY": "simulated-demo-key"}, nice=FLEET_NICE)
    wait_for_port(host, o.engine_port_base, 30, gateway)
    log.info("gateway (all models)          http://%s:%d/v1", host, o.engine_port_base)
    files = (["--pricing", str(o.pricing)] if o.pricing else []) + (
        ["--config", str(o.config)] if o.config else [])
    sup.spawn("scheduler", ["scheduler", "--data", str(data.root),
                            "--interval", str(o.analytics_interval_s), *files])
    if o.dashboard:
        dash = sup.spawn("dashboard", ["dashboard", "--data", str(data.root), "--host", host,
                                       "--port", str(o.dashboard_port)])
        wait_for_port(host, o.dashboard_port, 60, dash)
    targets = [a for m in sorted(models)
               for a in ("--target", f"{m}=http://{host}:{o.engine_port_base}")]
    sup.spawn("loadgen", ["sim", "loadgen", *targets, "--rate", str(o.rate_per_s),
                          "--scenario", o.scenario,
                          "--otlp-endpoint", f"http://{host}:{o.http_port}"], nice=FLEET_NICE)


def _history(o: DemoOptions, data: DataDir, scenario: Scenario) -> None:
    """The scenario's past, up to now, through OTLP into the collector, then analysed once so
    the dashboard opens on it."""
    log.info("generating %g day(s) of history for scenario %s (%d GPUs)…", o.history_days,
             scenario.name, scenario.gpu_count)
    stats = generate_history(scenario, o.history_days, f"http://{o.listen}:{o.http_port}",
                             progress=report_progress())
    log.info("%s", stats.describe())
    if not wait_published(data):
        log.warning("the collector has not published its newest rows yet; the first analysis "
                    "may miss the last second of history (the next scheduled run has it)")
    started = time.monotonic()
    run_analytics(data, o.pricing, load_settings(o.config))
    log.info("analytics over the history took %.0f s; going live", time.monotonic() - started)


def run_demo(o: DemoOptions) -> int:
    scenario, data = preflight(o)
    stop = threading.Event()
    install_stop_handlers(stop.set)
    sup = Supervisor()
    failed = False
    try:
        _start(sup, o, data, scenario)
        log.info("demo running (simulated GPUs). Store: %s", data.root)
        log.info("  OTLP/gRPC  %s:%d    OTLP/HTTP  http://%s:%d", o.listen, o.grpc_port,
                 o.listen, o.http_port)
        if o.dashboard:
            log.info("  dashboard  http://%s:%d", o.listen, o.dashboard_port)
        log.info("  SQL        inferledger sql --data %s \"SELECT * FROM request_costs LIMIT 5\"",
                 data.root)
        log.info("%s", f"stopping after {o.duration_s:.0f}s" if o.duration_s
                 else "Ctrl-C to stop")
        deadline = None if o.duration_s is None else time.monotonic() + o.duration_s
        while not stop.wait(0.5):
            if deadline is not None and time.monotonic() >= deadline:
                break
            dead = sup.failed()
            if dead:
                log.error("%s exited with code %s; stopping the demo", dead.name,
                          dead.proc.returncode)
                failed = True
                break
    except (RuntimeError, TimeoutError) as e:
        log.error("demo could not start: %s", e)
        failed = True
    finally:
        log.info("stopping…")
        collector = next((c for c in sup.children if c.name == "collector"), None)
        for child in reversed(list(sup.children)):
            if child is not collector:
                sup.stop(child, timeout_s=15)
        if collector is not None and not failed:
            time.sleep(1.0)  # let the last exports land
            try:
                run_analytics(data, o.pricing, load_settings(o.config), wait_s=30)
                print(format_table(summary(data)))
            except Exception:
                log.exception("final analytics run failed")
                failed = True
        sup.stop_all()
    log.info("demo stopped")
    return 1 if failed else 0

