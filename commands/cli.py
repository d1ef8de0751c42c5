"""The ``inferledger`` command: one subcommand per role, each one's parser beside its calls
in this package (``collector.py``, ``agent.py``, ``analytics.py``, ``report.py``,
``dashboard.py``, ``sim.py``, ``demo.py``); what they call lives in the roles."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from commands import agent, analytics, collector, dashboard, demo, report, sim
from commands.args import DEFAULT_DATA
from inferledger.config import choice, resolve, text
from inferledger.errors import PRODUCT_ERROR_EXIT, USER_ERROR_EXIT, ProductError, UserError

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
log = logging.getLogger("inferledger")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="inferledger",
        description="What one LLM response really costs on your own GPUs, and why it was slow.")
    p.add_argument("--log-level", choices=LOG_LEVELS,
                   help="default $INFERLEDGER_LOG_LEVEL, else INFO")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    demo.add_parser(sub)
    collector.add_parser(sub)
    agent.add_parsers(sub)
    analytics.add_parsers(sub)
    report.add_parser(sub)
    dashboard.add_parsers(sub)
    sim.add_parser(sub)
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
