"""``inferledger demo``: the whole pipeline on one machine, on simulated GPUs (what it starts,
and in which order: ``demo_stack.py``)."""

from __future__ import annotations

import argparse
from pathlib import Path

from commands.args import data_arg, days, listen_args


def cmd_demo(args: argparse.Namespace) -> int:
    from commands.demo_stack import DemoOptions, run_demo

    return run_demo(DemoOptions(
        data=Path(args.data), duration_s=args.duration, dashboard=not args.no_dashboard,
        listen=args.listen, grpc_port=args.grpc_port, http_port=args.http_port,
        dashboard_port=args.dashboard_port, engine_port_base=args.engine_port_base,
        rate_per_s=args.rate, analytics_interval_s=args.analytics_interval,
        sample_interval_s=args.sample_interval, pricing=args.pricing, config=args.config,
        scenario=args.scenario, history_days=args.history or 0.0))


def add_parser(sub: argparse._SubParsersAction) -> None:
    d = sub.add_parser("demo", help="run the whole stack on simulated GPUs",
                       description="Collector, a scenario's simulated vLLM nodes (by default "
                       "4 GPUs, 2 models), tracing middleware, load, node agents, scheduled "
                       "analytics and the dashboard, in one terminal; optionally days of "
                       "history first. Ctrl-C stops everything.")
    data_arg(d)
    d.add_argument("--duration", type=float, metavar="SECONDS",
                   help="stop after this long, run the analytics once more and exit 0")
    d.add_argument("--no-dashboard", action="store_true", help="do not start the dashboard")
    listen_args(d)
    d.add_argument("--dashboard-port", type=int, default=8501, help="dashboard port (8501)")
    d.add_argument("--engine-port-base", type=int, default=8100,
                   help="the gateway listens on BASE, simulated engines on BASE+1, "
                   "BASE+2, … (default 8100)")
    d.add_argument("--rate", type=float, default=3.0, help="requests per second (default 3)")
    d.add_argument("--scenario", default="demo", metavar="NAME|FILE",
                   help="fleet and apps (default: demo; `inferledger sim scenarios` lists them)")
    d.add_argument("--history", type=days, metavar="DURATION",
                   help="first generate this much history (e.g. 7d) through OTLP, then go live")
    d.add_argument("--analytics-interval", type=float, default=10.0, metavar="SECONDS",
                   help="how often the analytics jobs run (default 10)")
    d.add_argument("--sample-interval", type=float, default=1.0, metavar="SECONDS",
                   help="GPU sampling interval of the node agents (default 1)")
    d.add_argument("--pricing", type=Path, metavar="FILE", help="pricing TOML")
    d.add_argument("--config", type=Path, metavar="FILE", help="analytics settings TOML")
    d.set_defaults(func=cmd_demo)
