"""The ``inferledger`` command: one subcommand per role (DESIGN §2)."""

from __future__ import annotations

import argparse
import json
import logging
import os
import socket
import sys
import threading
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import duckdb

from inferledger.config import choice, resolve, text
from inferledger.errors import PRODUCT_ERROR_EXIT, USER_ERROR_EXIT, ProductError, UserError

if TYPE_CHECKING:
    from analytics.report.config import ReportConfig
    from analytics.report.week import Week

DEFAULT_DATA = "./inferledger-data"
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
RUN_WAIT_S = 60.0  # a run by hand waits this long for a scheduled run to finish
log = logging.getLogger("inferledger")


def _data_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", metavar="DIR", help="data directory of the store (default "
                   f"$INFERLEDGER_DATA, else {DEFAULT_DATA})")


def _listen_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--listen", default="127.0.0.1", help="address to serve on (default loopback)")
    p.add_argument("--grpc-port", type=int, default=4317, help="OTLP/gRPC port (default 4317)")
    p.add_argument("--http-port", type=int, default=4318, help="OTLP/HTTP port (default 4318)")


def _reprice_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--reprice", action="store_true",
                   help="recompute past windows even though the pricing version or the "
                   "attribution method changed since the published results")


def _analytics_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--pricing", type=Path, metavar="FILE",
                   help="pricing TOML (default: the shipped analytics/pricing_example.toml)")
    p.add_argument("--config", type=Path, metavar="FILE",
                   help="analytics settings TOML: method, weights, SLOs, static placement "
                   "(example: analytics/settings_example.toml)")
    p.add_argument("--method", metavar="METHOD",
                   help="how a GPU's busy time is shared among its active requests: work "
                   "(default) or time_overlap")
    p.add_argument("--prefill-token-weight", type=float, metavar="W",
                   help="GPU work of one prompt token relative to one output token (default 0.25)")


def _stop_event() -> threading.Event:
    from inferledger.procs import install_stop_handlers

    stop = threading.Event()
    install_stop_handlers(stop.set)
    return stop


def _settings(args: argparse.Namespace):
    from analytics.settings import load_settings

    return load_settings(args.config).with_overrides(
        method=args.method, prefill_token_weight=args.prefill_token_weight)


# -- roles ------------------------------------------------------------------------------
def _default_workers() -> int:
    """One worker process per core (at most 4); none on a single core."""
    cores = len(os.sched_getaffinity(0))
    return min(cores, 4) if cores > 1 else 0


def cmd_collector(args: argparse.Namespace) -> int:
    from collector.receivers.security import Security
    from collector.service import Collector
    from inferledger.store import DataDir

    retention = {}
    for item in args.retain:
        table, _, days = item.partition("=")
        if not days.isdigit():
            raise UserError(f"--retain {item!r}: expected TABLE=DAYS, e.g. spans=30")
        retention[table] = int(days)
    stop = _stop_event()
    security = Security.from_files(args.auth_token_file, args.tls_cert, args.tls_key)
    workers = args.workers if args.workers is not None else _default_workers()
    Collector(DataDir.at(args.data), args.listen, args.grpc_port, args.http_port,
              compact_every_s=args.compact_every, retention_days=retention,
              security=security, workers=workers).start().serve_until(stop)
    return 0


def cmd_agent(args: argparse.Namespace) -> int:
    from agents.gpu import GpuError, open_backend
    from agents.node_agent import NodeAgent, agent_lock
    from agents.vllm_metrics import EngineScraper, Target, local_locator
    from inferledger.otel import metric_exporter

    def scraper(host: str, gpus_holding: Callable[[set[int]], list[str]]) -> EngineScraper:
        return EngineScraper([Target(u.rstrip("/") + "/metrics") for u in args.vllm],
                             metric_exporter(args.otlp_endpoint, args.otlp_protocol), host,
                             args.vllm_interval, locate=local_locator(gpus_holding))

    stop = _stop_event()
    if args.gpu_backend == "none":  # GPUs read by another agent (DCGM): engines only
        if not args.vllm:
            raise UserError("--gpu-backend none samples no GPU: name an engine with --vllm")
        log.info("agent scraping %d engine(s) every %.1fs, no GPU sampling",
                 len(args.vllm), args.vllm_interval)
        scraper(args.host or socket.gethostname(), lambda _pids: []).run_until(stop)
        return 0
    agent_lock(args.gpu_backend).acquire()  # held until exit: one agent per node's GPUs
    try:
        backend = open_backend(args.gpu_backend)
    except GpuError as e:
        raise UserError(str(e)) from None
    agent = NodeAgent(backend, metric_exporter(args.otlp_endpoint, args.otlp_protocol),
                      host=args.host, interval_s=args.interval)
    if args.vllm:
        scraper(agent.host, agent.gpus_holding).start(stop)
    agent.run_until(stop)
    return 0


def cmd_gateway(args: argparse.Namespace) -> int:
    from agents.gateway.server import serve_gateway

    serve_gateway(args.listen, args.upstream, otlp_endpoint=args.otlp_endpoint,
                  otlp_protocol=args.otlp_protocol, timeout_s=args.timeout,
                  health_interval_s=args.health_interval, route_by=args.route_by)
    return 0


def cmd_analytics_run(args: argparse.Namespace) -> int:
    from analytics.pipeline import run
    from inferledger.store import DataDir

    result = run(DataDir.at(args.data).check_store(), args.pricing, _settings(args),
                 reprice=args.reprice, lateness_s=args.lateness, wait_s=RUN_WAIT_S)
    _report(result)
    return 0


def _report(result) -> None:
    print(f"{result.days} day(s), {result.requests} requests, {result.intervals} GPU intervals, "
          f"conservation max relative error {result.conservation_max_rel_error:.3g} "
          f"({result.seconds:.2f}s)")


def _utc(text: str) -> float:
    """An ISO date or date-time (UTC unless it names an offset) → epoch seconds."""
    from datetime import UTC, datetime

    try:
        moment = datetime.fromisoformat(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"{text!r} is not an ISO date or date-time") from e
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def cmd_analytics_backfill(args: argparse.Namespace) -> int:
    from analytics.pipeline import run
    from inferledger.store import DataDir

    if args.until < args.since:
        raise UserError("--until is before --since")
    data = DataDir.at(args.data).check_store()

    def bar(i: int, n: int, day: str) -> None:
        filled = round(30 * i / n)
        print(f"\r[{'#' * filled}{'.' * (30 - filled)}] {i}/{n} days  {day}", end="",
              file=sys.stderr, flush=True)

    result = run(data, args.pricing, _settings(args), reprice=args.reprice,
                 since=args.since, until=args.until, progress=bar, wait_s=RUN_WAIT_S)
    print(file=sys.stderr)
    _report(result)
    return 0


def cmd_analytics_summary(args: argparse.Namespace) -> int:
    from analytics.summary import format_table, summary
    from inferledger.store import DataDir

    s = summary(DataDir.at(args.data))
    print(json.dumps(s) if args.json else format_table(s))
    return 0


def cmd_analytics_export(args: argparse.Namespace) -> int:
    from analytics.export import export_focus
    from inferledger.store import DataDir

    fmt = args.format or ("parquet" if args.out.suffix == ".parquet" else "csv")
    n = export_focus(DataDir.at(args.data), args.out, fmt=fmt, grain=args.grain)
    print(f"{n} charge rows written to {args.out} ({fmt}, one row per {args.grain})")
    return 0


def cmd_scheduler(args: argparse.Namespace) -> int:
    from analytics.pricing import load_pricing
    from analytics.scheduler import run_scheduler
    from inferledger.store import DataDir

    settings = _settings(args)
    load_pricing(args.pricing)  # checked now, not at the first run
    # Before any thread starts, so DuckDB's and the kernel's threads inherit it: the analytics
    # are batch work and yield the CPU to the collector's acknowledgements and to readers.
    os.nice(args.nice)
    run_scheduler(DataDir.at(args.data), interval_s=args.interval, pricing=args.pricing,
                  settings=settings, stop=_stop_event(), settings_path=args.config)
    return 0


def _report_week_args(p: argparse.ArgumentParser) -> None:
    _data_arg(p)
    p.add_argument("--week", metavar="YYYY-Www",
                   help="ISO week, e.g. 2026-W47 (default: the last complete week)")
    p.add_argument("--config", type=Path, metavar="FILE", help="settings TOML ([report])")


def _report_args(args: argparse.Namespace) -> tuple[ReportConfig, Week]:
    from analytics.report.config import load_report_config
    from analytics.report.week import Week

    config = load_report_config(args.config)
    if args.week is None:
        return config, Week.last_complete(datetime.now(UTC), config.timezone)
    return config, Week.parse(args.week, config.timezone)


def cmd_report_preview(args: argparse.Namespace) -> int:
    from analytics.report.jobs import preview
    from inferledger.store import DataDir

    config, week = _report_args(args)
    f = preview(DataDir.at(args.data), week, args.out, config)
    print(f"report {week} written to {args.out}"
          + (" (no data that week)" if f.empty else ""))
    return 0


def cmd_report_send(args: argparse.Namespace) -> int:
    from analytics.report.jobs import send
    from inferledger.store import DataDir

    config, week = _report_args(args)
    outcome = send(DataDir.at(args.data), week, config, to=args.to or None, force=args.force)
    print(f"report {week.label}: {outcome.state}"
          + (f" after {outcome.attempts} attempt(s)" if outcome.attempts else "")
          + (f": {outcome.error}" if outcome.error else ""))
    return 0 if outcome.state in ("sent", "already_sent") else 1


def cmd_dashboard(args: argparse.Namespace) -> int:
    from inferledger.ports import ensure_free

    ensure_free(args.host, [(args.port, "the dashboard")])
    app = Path(__file__).resolve().parent.parent / "dashboard" / "app.py"
    os.environ["INFERLEDGER_DATA"] = str(Path(args.data).resolve())
    # What every page imports, loaded before serving so the first visitor does not wait.
    import altair  # noqa: F401
    import pandas  # noqa: F401
    from streamlit.web import bootstrap

    import dashboard.queries.explorer
    import dashboard.queries.gpu
    import dashboard.queries.latency  # noqa: F401

    flags = {"server_headless": True, "server_address": args.host, "server_port": args.port,
             "browser_gatherUsageStats": False, "server_fileWatcherType": "none",
             "client_toolbarMode": "minimal"}
    bootstrap.load_config_options(flags)
    bootstrap.run(str(app), False, [], flags)
    return 0


def cmd_sql(args: argparse.Namespace) -> int:
    from inferledger.store import DataDir, connect_readonly, retry_vanished

    data = DataDir.at(args.data)
    con = connect_readonly(data)
    if not args.query:
        print(f"Views of {data.root} (load them in any DuckDB client with "
              f".read {data.views_sql}, or open {data.catalog_db} read-only):")
        print(con.sql("SELECT table_name FROM information_schema.tables ORDER BY 1"))
        return 0
    def show() -> None:
        rel = con.sql(args.query)
        if rel is not None:
            rel.show(max_width=200, max_rows=args.max_rows)

    try:
        retry_vanished(show)
    except duckdb.Error as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from commands.demo import DemoOptions, run_demo

    return run_demo(DemoOptions(
        data=Path(args.data), duration_s=args.duration, dashboard=not args.no_dashboard,
        listen=args.listen, grpc_port=args.grpc_port, http_port=args.http_port,
        dashboard_port=args.dashboard_port, engine_port_base=args.engine_port_base,
        rate_per_s=args.rate, analytics_interval_s=args.analytics_interval,
        sample_interval_s=args.sample_interval, pricing=args.pricing, config=args.config,
        scenario=args.scenario, history_days=args.history or 0.0))


def _days(text: str) -> float:
    """``7d``, ``36h`` or ``90m`` as days."""
    unit = {"d": 1.0, "h": 1 / 24, "m": 1 / 1440}.get(text[-1:].lower())
    try:
        value = float(text[:-1]) * unit if unit else float("nan")
    except ValueError:
        value = float("nan")
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration like 7d, 36h or 90m")
    return value


def cmd_sim_scenarios(args: argparse.Namespace) -> int:
    from simulator.scenario import available, load_scenario

    for name in available():
        sc = load_scenario(name)
        print(f"{name:<12} {sc.gpu_count:>3} GPUs  {len(sc.apps)} apps  {sc.description}")
    return 0


def cmd_sim_history(args: argparse.Namespace) -> int:
    from simulator.history.generate import generate_history, report_progress
    from simulator.scenario import load_scenario

    stats = generate_history(load_scenario(args.scenario), args.days, args.endpoint,
                             end=args.end, seed=args.seed,
                             progress=report_progress())
    print(stats.describe())
    return 0


def cmd_sim_node(args: argparse.Namespace) -> int:
    from commands.sim_node import run_node
    from simulator.node import EngineSpec

    run_node(name=args.name, gpu_models=args.gpus.split(","),
             engines=[EngineSpec.parse(e) for e in args.engine], state=Path(args.state),
             host=args.listen, collector_grpc=args.collector_grpc,
             collector_http=args.collector_http, interval_s=args.interval, stop=_stop_event())
    return 0


def cmd_sim_engine(args: argparse.Namespace) -> int:
    from simulator.engine.server import serve_engine

    serve_engine(model=args.model, state=Path(args.state), host=args.host, port=args.port,
                 otlp_endpoint=args.otlp_endpoint, otlp_protocol=args.otlp_protocol,
                 middleware=args.middleware, max_num_seqs=args.max_num_seqs, seed=args.seed,
                 load_s=args.load_s)
    return 0


def cmd_sim_loadgen(args: argparse.Namespace) -> int:
    import asyncio
    import signal

    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    from inferledger.otel import span_exporter
    from simulator import SIMULATED_RESOURCE
    from simulator.loadgen import LoadGenerator
    from simulator.scenario import load_scenario

    targets: dict[str, list[str]] = {}
    for t in args.target:
        model, _, url = t.partition("=")
        if not url:
            raise UserError(f"--target {t!r} is not MODEL=URL")
        targets.setdefault(model, []).append(url.rstrip("/"))

    apps = load_scenario(args.scenario).apps
    provider = None
    if args.otlp_endpoint:
        provider = TracerProvider(resource=Resource.create({
            "service.name": "inferledger-sim-apps", **SIMULATED_RESOURCE}))
        provider.add_span_processor(BatchSpanProcessor(
            span_exporter(args.otlp_endpoint, "http/protobuf")))

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await LoadGenerator(targets, apps, rate_per_s=args.rate, seed=args.seed,
                            tracer_provider=provider).run(args.duration, stop)

    try:
        asyncio.run(main())
    finally:
        if provider is not None:
            provider.shutdown()
    return 0


# -- parser -----------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="inferledger",
        description="What one LLM response really costs on your own GPUs, and why it was slow.")
    p.add_argument("--log-level", choices=LOG_LEVELS,
                   help="default $INFERLEDGER_LOG_LEVEL, else INFO")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    d = sub.add_parser("demo", help="run the whole stack on simulated GPUs",
                       description="Collector, a scenario's simulated vLLM nodes (by default "
                       "4 GPUs, 2 models), tracing middleware, load, node agents, scheduled "
                       "analytics and the dashboard, in one terminal; optionally days of "
                       "history first. Ctrl-C stops everything.")
    _data_arg(d)
    d.add_argument("--duration", type=float, metavar="SECONDS",
                   help="stop after this long, run the analytics once more and exit 0")
    d.add_argument("--no-dashboard", action="store_true", help="do not start the dashboard")
    _listen_args(d)
    d.add_argument("--dashboard-port", type=int, default=8501, help="dashboard port (8501)")
    d.add_argument("--engine-port-base", type=int, default=8100,
                   help="the gateway listens on BASE, simulated engines on BASE+1, "
                   "BASE+2, … (default 8100)")
    d.add_argument("--rate", type=float, default=3.0, help="requests per second (default 3)")
    d.add_argument("--scenario", default="demo", metavar="NAME|FILE",
                   help="fleet and apps (default: demo; `inferledger sim scenarios` lists them)")
    d.add_argument("--history", type=_days, metavar="DURATION",
                   help="first generate this much history (e.g. 7d) through OTLP, then go live")
    d.add_argument("--analytics-interval", type=float, default=10.0, metavar="SECONDS",
                   help="how often the analytics jobs run (default 10)")
    d.add_argument("--sample-interval", type=float, default=1.0, metavar="SECONDS",
                   help="GPU sampling interval of the node agents (default 1)")
    d.add_argument("--pricing", type=Path, metavar="FILE", help="pricing TOML")
    d.add_argument("--config", type=Path, metavar="FILE", help="analytics settings TOML")
    d.set_defaults(func=cmd_demo)

    c = sub.add_parser("collector", help="receive OTLP and write the store",
                       description="OTLP receiver (gRPC and HTTP; traces and metrics) that "
                       "acknowledges a batch only once it is durable in the store.")
    _data_arg(c)
    _listen_args(c)
    c.add_argument("--compact-every", type=float, default=30.0, metavar="SECONDS",
                   help="merge small segments this often; merged-away files are deleted one "
                   "pass later (default 30)")
    c.add_argument("--retain", action="append", default=[], metavar="TABLE=DAYS",
                   help="delete raw day partitions older than DAYS (spans, metric_points; "
                   "repeatable; default: keep everything)")
    c.add_argument("--workers", type=int, metavar="N",
                   help="processes that decode and write requests, so ingest uses more than "
                   "one core (default: one per core, at most 4; 0 on one core: all in the "
                   "receiving process)")
    c.add_argument("--auth-token-file", type=Path, metavar="FILE",
                   help="require 'Authorization: Bearer <token>' with the token in FILE")
    c.add_argument("--tls-cert", type=Path, metavar="PEM", help="serve both ports over TLS")
    c.add_argument("--tls-key", type=Path, metavar="PEM", help="private key of --tls-cert")
    c.set_defaults(func=cmd_collector)

    a = sub.add_parser("agent", help="sample this node's GPUs and export OTLP metrics",
                       description="Node agent: reads every GPU through NVML (or the simulator) "
                       "and exports energy, power, memory, utilization and processes, and "
                       "scrapes local vLLM engines' /metrics.")
    a.add_argument("--gpu-backend", default="nvml", metavar="SPEC",
                   help="'nvml' (real GPUs, default), 'sim:PATH' (a simulated node) or "
                   "'none' (GPUs read by another agent, e.g. DCGM: only --vllm engines)")
    a.add_argument("--host", help="host name to report (default: this machine's)")
    a.add_argument("--interval", type=float, default=1.0, metavar="SECONDS",
                   help="sampling interval, 0.1–60 s (default 1)")
    a.add_argument("--otlp-endpoint", default="http://127.0.0.1:4318", metavar="URL",
                   help="collector (default http://127.0.0.1:4318)")
    a.add_argument("--otlp-protocol", default="http/protobuf", choices=("grpc", "http/protobuf"))
    a.add_argument("--vllm", action="append", default=[], metavar="URL",
                   help="a local vLLM engine to scrape (its /metrics), e.g. "
                   "http://127.0.0.1:8000; its process and GPUs are found by its port")
    a.add_argument("--vllm-interval", type=float, default=5.0, metavar="SECONDS",
                   help="how often engines are scraped (default 5)")
    a.set_defaults(func=cmd_agent)

    g = sub.add_parser("gateway", help="OpenAI-compatible proxy that traces every request",
                       description="Reverse proxy for chat completions, completions, embeddings "
                       "and models in front of vLLM engines: streams pass through, requests go "
                       "to the healthy upstream with the fewest outstanding, and each one gets "
                       "the tracing middleware's span (INFERLEDGER_* variables configure it).")
    g.add_argument("--listen", default="127.0.0.1:8080", metavar="HOST:PORT")
    g.add_argument("--upstream", action="append", required=True, metavar="URL",
                   help="engine base URL, e.g. http://10.0.0.5:8000 (repeat for several)")
    g.add_argument("--otlp-endpoint", help="collector (default INFERLEDGER_OTLP_ENDPOINT)")
    g.add_argument("--otlp-protocol", choices=("grpc", "http/protobuf"))
    g.add_argument("--timeout", type=float, default=600.0, metavar="SECONDS",
                   help="longest a request may take upstream before 504 (default 600)")
    g.add_argument("--health-interval", type=float, default=2.0, metavar="SECONDS",
                   help="how often upstreams' /health and /v1/models are checked (default 2)")
    g.add_argument("--route-by", choices=("outstanding", "queue"), default="outstanding",
                   help="least requests outstanding from this gateway (default), or also the "
                   "engines' own waiting queue and KV-cache usage from their /metrics")
    g.set_defaults(func=cmd_gateway)

    an = sub.add_parser("analytics", help="run or summarise the analytics",
                        description="Request assembly, attribution, cost and latency tables.")
    an_sub = an.add_subparsers(dest="analytics_command", required=True, metavar="ACTION")
    r = an_sub.add_parser("run", help="compute and publish the derived tables once",
                          description="Assemble requests, attribute GPU seconds and joules "
                          "(checking conservation), price them and publish the tables.")
    _data_arg(r)
    _analytics_args(r)
    _reprice_arg(r)
    r.add_argument("--lateness", type=float, default=3600.0, metavar="SECONDS",
                   help="re-run days this far behind the watermark, to pick up late spans "
                   "and samples (default 3600)")
    r.set_defaults(func=cmd_analytics_run)
    b = an_sub.add_parser("backfill", help="(re)compute a range of days, with a progress bar",
                          description="Recompute every UTC day from --since to --until "
                          "(inclusive), e.g. after importing old data; the watermark stays.")
    _data_arg(b)
    _analytics_args(b)
    _reprice_arg(b)
    b.add_argument("--since", type=_utc, required=True, metavar="DATE",
                   help="first day, ISO date or date-time (UTC unless an offset is given)")
    b.add_argument("--until", type=_utc, required=True, metavar="DATE", help="last day")
    b.set_defaults(func=cmd_analytics_backfill)
    s = an_sub.add_parser("summary", help="print the headline figures",
                          description="Requests, placement, cost and energy per response, "
                          "useful/idle GPU time, TTFT and the conservation error.")
    _data_arg(s)
    s.add_argument("--json", action="store_true", help="one JSON object instead of a table")
    s.set_defaults(func=cmd_analytics_summary)

    x = an_sub.add_parser("export", help="FOCUS-shaped cost export (CSV or Parquet)",
                          description="Per-model / per-tenant GPU cost as FOCUS columns "
                          "(custom columns prefixed x_), for FinOps tools.")
    _data_arg(x)
    x.add_argument("--out", type=Path, required=True, metavar="FILE",
                   help="file to write (.csv or .parquet)")
    x.add_argument("--format", choices=("csv", "parquet"),
                   help="default: from the file name, else csv")
    x.add_argument("--grain", choices=("hour", "day"), default="day",
                   help="charge period (default day)")
    x.set_defaults(func=cmd_analytics_export)

    sc = sub.add_parser("scheduler", help="run the analytics jobs on a schedule",
                        description="APScheduler loop running the analytics every interval.")
    _data_arg(sc)
    _analytics_args(sc)
    sc.add_argument("--interval", type=float, default=60.0, metavar="SECONDS",
                    help="seconds between analytics runs (default 60)")
    sc.add_argument("--nice", type=int, default=10, choices=range(20), metavar="0-19",
                    help="CPU priority below the collector and the dashboard on a shared host "
                    "(default 10; 0: the same)")
    sc.set_defaults(func=cmd_scheduler)

    rp = sub.add_parser("report", help="the weekly report: preview or send one week",
                        description="The weekly report the scheduler e-mails on Mondays, for "
                        "any ISO week, by hand. SMTP and recipients come from the settings "
                        "file's [report] table and INFERLEDGER_SMTP_* / INFERLEDGER_REPORT_* "
                        "environment variables (the password only from the environment).")
    rp_sub = rp.add_subparsers(dest="report_command", required=True, metavar="ACTION")
    pv = rp_sub.add_parser("preview", help="write one week's report to a file",
                           description="Writes the report as HTML (charts inline), .txt "
                           "(the plain-text part) or .eml (the whole e-mail, attachments "
                           "included), by the file's extension. Nothing is sent.")
    _report_week_args(pv)
    pv.add_argument("--out", type=Path, required=True, metavar="FILE",
                    help="report.html, report.txt or report.eml")
    pv.set_defaults(func=cmd_report_preview)
    sd = rp_sub.add_parser("send", help="e-mail one week's report now, once",
                           description="Sends the week's report unless the send log says it "
                           "went to these recipients already (or may have: in doubt); "
                           "--force sends anyway. Exit status 1 if every SMTP attempt failed.")
    _report_week_args(sd)
    sd.add_argument("--to", action="append", default=[], metavar="ADDRESS",
                    help="recipient (repeat; default: the configured ones)")
    sd.add_argument("--force", action="store_true", help="send even if the log says sent")
    sd.set_defaults(func=cmd_report_send)

    db = sub.add_parser("dashboard", help="serve the Streamlit dashboard",
                        description="FinOps and SRE dashboard over the store (read-only).")
    _data_arg(db)
    db.add_argument("--host", default="127.0.0.1", help="address to serve on")
    db.add_argument("--port", type=int, default=8501, help="port (default 8501)")
    db.set_defaults(func=cmd_dashboard)

    q = sub.add_parser("sql", help="query the store with SQL",
                       description="Runs QUERY against the store's views (read-only, takes no "
                       "lock). Without QUERY, lists the views.")
    _data_arg(q)
    q.add_argument("query", nargs="?", help="SQL to run")
    q.add_argument("--max-rows", type=int, default=40, help="rows to print (default 40)")
    q.set_defaults(func=cmd_sql)

    sim = sub.add_parser("sim", help="the simulated vLLM stack (no GPU needed)",
                         description="Simulated nodes, engines and load. Everything they emit "
                         "is labelled simulated.")
    sim_sub = sim.add_subparsers(dest="sim_command", required=True, metavar="PART")
    n = sim_sub.add_parser("node", help="one simulated node: GPUs, engines and node agent",
                           description="Creates the node's simulated GPUs, starts one engine "
                           "process per --engine and samples the GPUs like a node agent.")
    n.add_argument("--name", required=True, help="node (host) name")
    n.add_argument("--gpus", required=True, help="comma-separated GPU models: h100,a100,l4")
    n.add_argument("--engine", action="append", required=True, metavar="MODEL@GPUS:PORT",
                   help="engine to run, e.g. llama-3.1-8b-instruct@0:8101 or "
                   "qwen2.5-32b-instruct@0+1:8201 (tensor parallel)")
    n.add_argument("--state", required=True, help="file holding the node's shared GPU state")
    n.add_argument("--listen", default="127.0.0.1", help="address engines listen on")
    n.add_argument("--collector-grpc", default="127.0.0.1:4317", help="collector OTLP/gRPC")
    n.add_argument("--collector-http", default="http://127.0.0.1:4318",
                   help="collector OTLP/HTTP")
    n.add_argument("--interval", type=float, default=1.0, help="GPU sampling interval (s)")
    n.set_defaults(func=cmd_sim_node)

    e = sim_sub.add_parser("engine", help="one simulated vLLM engine process",
                           description="OpenAI-compatible server with continuous batching on "
                           "simulated GPUs (CUDA_VISIBLE_DEVICES picks them), exporting vLLM's "
                           "llm_request spans.")
    e.add_argument("--state", required=True, help="the node's GPU state file")
    e.add_argument("--model", required=True, help="served model name")
    e.add_argument("--host", default="127.0.0.1")
    e.add_argument("--port", type=int, required=True)
    e.add_argument("--otlp-endpoint", help="like vLLM's --otlp-traces-endpoint (host:port)")
    e.add_argument("--otlp-protocol", default="grpc", choices=("grpc", "http/protobuf"))
    e.add_argument("--middleware", action="append", default=[], metavar="IMPORT.PATH",
                   help="ASGI middleware to add, as vLLM's --middleware does")
    e.add_argument("--max-num-seqs", type=int, default=64, help="max batch size (default 64)")
    e.add_argument("--seed", type=int, help="random seed for reply lengths")
    e.add_argument("--load-s", type=float, metavar="SECONDS",
                   help="model loading time before serving (default: weights at 8 GB/s/GPU)")
    e.set_defaults(func=cmd_sim_engine)

    lg = sim_sub.add_parser("loadgen", help="send synthetic chat traffic",
                            description="Tenants and apps with Poisson arrivals, streaming and "
                            "not, a few bad requests and client aborts.")
    lg.add_argument("--target", action="append", required=True, metavar="MODEL=URL",
                    help="engine base URL serving MODEL (repeat for several)")
    lg.add_argument("--scenario", default="demo", metavar="NAME|FILE",
                    help="whose apps send the traffic (default: demo; see sim scenarios)")
    lg.add_argument("--otlp-endpoint", metavar="URL",
                    help="collector OTLP/HTTP base URL for the apps' own spans (RAG retrieval)")
    lg.add_argument("--rate", type=float, default=3.0, help="requests per second")
    lg.add_argument("--duration", type=float, help="seconds to run (default: until stopped)")
    lg.add_argument("--seed", type=int, default=7)
    lg.set_defaults(func=cmd_sim_loadgen)

    sl = sim_sub.add_parser("scenarios", help="list the scenarios",
                            description="Lists the scenarios that ship: name, GPUs, apps and "
                            "what each shows. Each is a TOML file in simulator/scenarios/ (every "
                            "field: docs/SCENARIOS.md); --scenario also takes a path to your own.")
    sl.set_defaults(func=cmd_sim_scenarios)

    h = sim_sub.add_parser("history", help="send days of a scenario to a collector, fast",
                           description="Generates DAYS of the scenario's fleet and traffic on "
                           "a virtual clock, ending now, and sends it as OTLP/HTTP to a running "
                           "collector; prints the rate. Run the analytics afterwards.")
    h.add_argument("--scenario", default="demo", metavar="NAME|FILE", help="default: demo")
    h.add_argument("--days", type=_days, default=7.0, metavar="DURATION",
                   help="how much history: 7d (default), 36h, 90m")
    h.add_argument("--endpoint", default="http://127.0.0.1:4318", metavar="URL",
                   help="collector OTLP/HTTP base URL (default http://127.0.0.1:4318)")
    h.add_argument("--end", type=_utc, metavar="DATE", help="last instant (default: now)")
    h.add_argument("--seed", type=int, default=7)
    h.set_defaults(func=cmd_sim_history)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command. What the user got wrong is one line and exit 2 (:class:`UserError`);
    a broken invariant of ours is reported as a bug, exit 3 (:class:`ProductError`)."""
    args = build_parser().parse_args(argv)
    try:
        level = resolve(choice(*LOG_LEVELS), arg=args.log_level, flag="--log-level",
                        var="INFERLEDGER_LOG_LEVEL", default="INFO")
    except UserError as e:
        print(f"inferledger: error: {e}", file=sys.stderr)
        return USER_ERROR_EXIT
    logging.basicConfig(level=level, stream=sys.stderr,
                        format="%(asctime)s %(levelname)-5s %(name)s: %(message)s",
                        datefmt="%H:%M:%S")
    for noisy in ("apscheduler", "httpx", "opentelemetry", "uvicorn"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLogger().level))
    try:
        if hasattr(args, "data"):
            args.data = resolve(text(), arg=args.data, flag="--data", var="INFERLEDGER_DATA",
                                default=DEFAULT_DATA)
        return args.func(args) or 0
    except KeyboardInterrupt:
        return 130
    except UserError as e:
        log.error("%s", e)
        return USER_ERROR_EXIT
    except ProductError as e:
        log.error("internal error, a bug in InferLedger (please report it): %s", e)
        return PRODUCT_ERROR_EXIT
    except OSError as e:  # the machine refused something: a permission, a full disk
        log.error("%s", e)
        return 1
