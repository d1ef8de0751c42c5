"""Options more than one command takes, parsed the same way everywhere."""

from __future__ import annotations

import argparse
import threading
from datetime import UTC, datetime
from pathlib import Path

DEFAULT_DATA = "./inferledger-data"
RUN_WAIT_S = 60.0  # a run by hand waits this long for a scheduled run to finish


def data_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", metavar="DIR", help="data directory of the store (default "
                   f"$INFERLEDGER_DATA, else {DEFAULT_DATA})")


def listen_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--listen", default="127.0.0.1", help="address to serve on (default loopback)")
    p.add_argument("--grpc-port", type=int, default=4317, help="OTLP/gRPC port (default 4317)")
    p.add_argument("--http-port", type=int, default=4318, help="OTLP/HTTP port (default 4318)")


def analytics_args(p: argparse.ArgumentParser) -> None:
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


def settings(args: argparse.Namespace):
    """The analytics settings of ``--config``, with the command line's overrides."""
    from analytics.settings import load_settings

    return load_settings(args.config).with_overrides(
        method=args.method, prefill_token_weight=args.prefill_token_weight)


def stop_event() -> threading.Event:
    """Set on SIGINT or SIGTERM: how every long-running command is stopped."""
    from inferledger.procs import install_stop_handlers

    stop = threading.Event()
    install_stop_handlers(stop.set)
    return stop


def utc(text: str) -> float:
    """An ISO date or date-time (UTC unless it names an offset) → epoch seconds."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"{text!r} is not an ISO date or date-time") from e
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def days(text: str) -> float:
    """``7d``, ``36h`` or ``90m`` as days."""
    unit = {"d": 1.0, "h": 1 / 24, "m": 1 / 1440}.get(text[-1:].lower())
    try:
        value = float(text[:-1]) * unit if unit else float("nan")
    except ValueError:
        value = float("nan")
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration like 7d, 36h or 90m")
    return value
