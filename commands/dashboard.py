"""``inferledger dashboard`` (the Streamlit dashboard) and ``inferledger sql`` (SQL on the
store's views): the two ways to read the store."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from commands.args import data_arg


def cmd_dashboard(args: argparse.Namespace) -> int:
    from dashboard.serve import serve

    serve(Path(args.data), args.host, args.port)
    return 0


def cmd_sql(args: argparse.Namespace) -> int:
    import duckdb

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


def add_parsers(sub: argparse._SubParsersAction) -> None:
    db = sub.add_parser("dashboard", help="serve the Streamlit dashboard",
                        description="FinOps and SRE dashboard over the store (read-only).")
    data_arg(db)
    db.add_argument("--host", default="127.0.0.1", help="address to serve on")
    db.add_argument("--port", type=int, default=8501, help="port (default 8501)")
    db.set_defaults(func=cmd_dashboard)

    q = sub.add_parser("sql", help="query the store with SQL",
                       description="Runs QUERY against the store's views (read-only, takes no "
                       "lock). Without QUERY, lists the views.")
    data_arg(q)
    q.add_argument("query", nargs="?", help="SQL to run")
    q.add_argument("--max-rows", type=int, default=40, help="rows to print (default 40)")
    q.set_defaults(func=cmd_sql)
