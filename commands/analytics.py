"""``inferledger analytics`` (run, backfill, summary, export) and ``inferledger scheduler``
(the analytics and the weekly report on a schedule)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from analytics.executors import EXECUTORS
from commands.args import RUN_WAIT_S, analytics_args, data_arg, settings, stop_event, utc
from inferledger.errors import UserError


def _print_run(result) -> None:
    print(f"{result.days} day(s), {result.requests} requests, {result.intervals} GPU intervals, "
          f"conservation max relative error {result.conservation_max_rel_error:.3g} "
          f"({result.seconds:.2f}s)")
    if len(result.partition_s) > 1:
        ordered = sorted(result.partition_s)
        print(f"{len(ordered)} partitions: median {ordered[len(ordered) // 2]:.2f}s, "
              f"slowest {ordered[-1]:.2f}s")


def cmd_run(args: argparse.Namespace) -> int:
    from analytics.pipeline import run
    from inferledger.store import DataDir

    _print_run(run(DataDir.at(args.data).check_store(), args.pricing, settings(args),
                   reprice=args.reprice, lateness_s=args.lateness, wait_s=RUN_WAIT_S,
                   **_executor(args)))
    return 0


def cmd_backfill(args: argparse.Namespace) -> int:
    from analytics.pipeline import run
    from inferledger.store import DataDir

    if args.until < args.since:
        raise UserError("--until is before --since")
    data = DataDir.at(args.data).check_store()

    def bar(i: int, n: int, day: str) -> None:
        filled = round(30 * i / n)
        print(f"\r[{'#' * filled}{'.' * (30 - filled)}] {i}/{n} days  {day}", end="",
              file=sys.stderr, flush=True)

    result = run(data, args.pricing, settings(args), reprice=args.reprice,
                 since=args.since, until=args.until, progress=bar, wait_s=RUN_WAIT_S,
                 **_executor(args))
    print(file=sys.stderr)
    _print_run(result)
    return 0


def cmd_summary(args: argparse.Namespace) -> int:
    from analytics.summary import format_table, summary
    from inferledger.store import DataDir

    s = summary(DataDir.at(args.data))
    print(json.dumps(s) if args.json else format_table(s))
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from analytics.export import export_focus
    from inferledger.store import DataDir

    fmt = args.format or ("parquet" if args.out.suffix == ".parquet" else "csv")
    n = export_focus(DataDir.at(args.data), args.out, fmt=fmt, grain=args.grain)
    print(f"{n} charge rows written to {args.out} ({fmt}, one row per {args.grain})")
    return 0


def cmd_scheduler(args: argparse.Namespace) -> int:
    from analytics.scheduler import run_scheduler
    from inferledger.store import DataDir

    run_scheduler(DataDir.at(args.data), interval_s=args.interval, pricing=args.pricing,
                  settings=settings(args), stop=stop_event(), settings_path=args.config,
                  nice=args.nice)
    return 0


def _executor(args: argparse.Namespace) -> dict:
    return {"executor": args.executor, "workers": args.workers, "ray_address": args.ray_address}


def _run_args(p: argparse.ArgumentParser) -> None:
    """What a run and a backfill both take: the store, pricing and settings, where the
    partitions run, --reprice."""
    data_arg(p)
    analytics_args(p)
    p.add_argument("--executor", choices=EXECUTORS, default="local",
                   help="where partitions (windows) are computed: local (a process pool when "
                   "there are several, default), inline (this process) or ray (Ray tasks)")
    p.add_argument("--workers", type=int, metavar="N",
                   help="local pool size (default: one per core, at most 4 and one per "
                   "partition; the workers split the machine's cores and memory)")
    p.add_argument("--ray-address", metavar="ADDRESS",
                   help="Ray cluster to join, e.g. 10.0.0.5:6379 (default $RAY_ADDRESS, else "
                   "a local Ray started for the run); every worker must see --data at the "
                   "same path")
    p.add_argument("--reprice", action="store_true",
                   help="recompute past windows even though the pricing version or the "
                   "attribution method changed since the published results")


def add_parsers(sub: argparse._SubParsersAction) -> None:
    an = sub.add_parser("analytics", help="run or summarise the analytics",
                        description="Request assembly, attribution, cost and latency tables.")
    an_sub = an.add_subparsers(dest="analytics_command", required=True, metavar="ACTION")
    r = an_sub.add_parser("run", help="compute and publish the derived tables once",
                          description="Assemble requests, attribute GPU seconds and joules "
                          "(checking conservation), price them and publish the tables.")
    _run_args(r)
    r.add_argument("--lateness", type=float, default=3600.0, metavar="SECONDS",
                   help="re-run days this far behind the watermark, to pick up late spans "
                   "and samples (default 3600)")
    r.set_defaults(func=cmd_run)
    b = an_sub.add_parser("backfill", help="(re)compute a range of days, with a progress bar",
                          description="Recompute every UTC day from --since to --until "
                          "(inclusive), e.g. after importing old data; the watermark stays.")
    _run_args(b)
    b.add_argument("--since", type=utc, required=True, metavar="DATE",
                   help="first day, ISO date or date-time (UTC unless an offset is given)")
    b.add_argument("--until", type=utc, required=True, metavar="DATE", help="last day")
    b.set_defaults(func=cmd_backfill)
    s = an_sub.add_parser("summary", help="print the headline figures",
                          description="Requests, placement, cost and energy per response, "
                          "useful/idle GPU time, TTFT and the conservation error.")
    data_arg(s)
    s.add_argument("--json", action="store_true", help="one JSON object instead of a table")
    s.set_defaults(func=cmd_summary)
    x = an_sub.add_parser("export", help="FOCUS-shaped cost export (CSV or Parquet)",
                          description="Per-model / per-tenant GPU cost as FOCUS columns "
                          "(custom columns prefixed x_), for FinOps tools.")
    data_arg(x)
    x.add_argument("--out", type=Path, required=True, metavar="FILE",
                   help="file to write (.csv or .parquet)")
    x.add_argument("--format", choices=("csv", "parquet"),
                   help="default: from the file name, else csv")
    x.add_argument("--grain", choices=("hour", "day"), default="day",
                   help="charge period (default day)")
    x.set_defaults(func=cmd_export)

    sc = sub.add_parser("scheduler", help="run the analytics jobs on a schedule",
                        description="APScheduler loop running the analytics every interval.")
    data_arg(sc)
    analytics_args(sc)
    sc.add_argument("--interval", type=float, default=60.0, metavar="SECONDS",
                    help="seconds between analytics runs (default 60)")
    sc.add_argument("--nice", type=int, default=10, choices=range(20), metavar="0-19",
                    help="CPU priority below the collector and the dashboard on a shared host "
                    "(default 10; 0: the same)")
    sc.set_defaults(func=cmd_scheduler)
