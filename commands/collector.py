"""``inferledger collector``: receive OTLP and write the store."""

from __future__ import annotations

import argparse
from pathlib import Path

from commands.args import data_arg, listen_args, stop_event


def _retention(item: str) -> tuple[str, int]:
    table, _, days = item.partition("=")
    if not days.isdigit():
        raise argparse.ArgumentTypeError(f"{item!r}: expected TABLE=DAYS, e.g. spans=30")
    return table, int(days)


def cmd_collector(args: argparse.Namespace) -> int:
    from collector.receivers.security import Security
    from collector.service import Collector
    from inferledger.store import DataDir

    stop = stop_event()
    Collector(DataDir.at(args.data), args.listen, args.grpc_port, args.http_port,
              compact_every_s=args.compact_every, retention_days=dict(args.retain),
              security=Security.from_files(args.auth_token_file, args.tls_cert, args.tls_key),
              workers=args.workers).start().serve_until(stop)
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    c = sub.add_parser("collector", help="receive OTLP and write the store",
                       description="OTLP receiver (gRPC and HTTP; traces and metrics) that "
                       "acknowledges a batch only once it is durable in the store.")
    data_arg(c)
    listen_args(c)
    c.add_argument("--compact-every", type=float, default=30.0, metavar="SECONDS",
                   help="merge small segments this often; merged-away files are deleted one "
                   "pass later (default 30)")
    c.add_argument("--retain", action="append", default=[], type=_retention,
                   metavar="TABLE=DAYS",
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
