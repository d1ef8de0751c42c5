"""The SQL API: views over the Parquet store, as a SQL file and a read-only catalog file.

``views.sql`` is what any DuckDB client loads (``.read DIR/views.sql``); ``inferledger.duckdb``
holds the same views so ``duckdb -readonly DIR/inferledger.duckdb`` works as well. Both are
rewritten atomically, so a reader that has one open is never disturbed.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import TypeVar

import duckdb
import pandas as pd
import pyarrow as pa

from inferledger.store.layout import DataDir, write_parquet_atomic
from inferledger.store.raw_schema import RAW_TABLES

# Catalog files are created in the v1.5 storage format so the DuckDB CLI from PyPI (1.5.x)
# can open them; duckdb 2.0's default format (v69) is unreadable there.
_STORAGE_VERSION = "v1.5.0"

T = TypeVar("T")


def _sql_literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def init_raw(data: DataDir) -> None:
    """Give every raw table an empty seed file so its view binds before any data arrives."""
    for name, schema in RAW_TABLES.items():
        seed = data.raw_table(name) / "seed.parquet"
        if not seed.exists():
            write_parquet_atomic(pa.Table.from_pylist([], schema=schema), seed)


def staging_sql() -> str:
    """The staging layer (raw → typed, deduplicated), shipped with the store as
    ``inferledger/store/sql/staging/*.sql``: the store owns its SQL API's lower half, so a
    collector that writes the catalog deploys without the analytics."""
    folder = resources.files("inferledger.store") / "sql" / "staging"
    files = sorted(p for p in folder.iterdir() if p.name.endswith(".sql"))
    return "\n".join(p.read_text() for p in files)


# Which column holds each raw table's time (ns), for reading only a time range.
_RAW_TIME = {"spans": ("end_time_unix_nano", "start_time_unix_nano"),
             "metric_points": ("time_unix_nano", "time_unix_nano")}


def raw_views_sql(data: DataDir, time_ranges_ns: dict[str, tuple[int, int]] | None = None
                  ) -> list[str]:
    """The raw tables' views; with ``time_ranges_ns`` (raw table → [start, end)) those
    views keep only what overlaps their range: the analytics compute one window at a time."""
    parts = []
    for name in sorted(RAW_TABLES):
        glob = _sql_literal(str(data.raw_table(name) / "**" / "*.parquet"))
        where = ""
        if time_ranges_ns and name in time_ranges_ns:
            end_col, start_col = _RAW_TIME[name]
            lo, hi = time_ranges_ns[name]
            where = f" WHERE {end_col} >= {int(lo)} AND {start_col} < {int(hi)}"
        parts.append(
            f"CREATE OR REPLACE VIEW raw_{name} AS SELECT * FROM "
            f"read_parquet({glob}, union_by_name = true, hive_partitioning = false){where};"
        )
    return parts


def views_sql(data: DataDir, *, include_derived: bool = True,
              time_ranges_ns: dict[str, tuple[int, int]] | None = None) -> str:
    """Build the SQL API text for ``data``: raw and staging views, then derived tables."""
    parts = ["-- InferLedger SQL API for this data directory. Generated; do not edit.", "",
             *raw_views_sql(data, time_ranges_ns)]
    parts += ["", staging_sql(), ""]
    if include_derived and data.derived.exists():
        # each table is a link into the current snapshot (inferledger/store/snapshots.py)
        for folder in sorted(p for p in data.derived.iterdir()
                             if p.is_dir() and not p.name.startswith((".", "_"))):
            if not any(folder.glob("*.parquet")):
                continue
            glob = _sql_literal(str(folder / "*.parquet"))
            parts.append(
                f"CREATE OR REPLACE VIEW {folder.name} AS SELECT * FROM "
                f"read_parquet({glob}, union_by_name = true, hive_partitioning = false);"
            )
    return "\n".join(parts) + "\n"


def write_catalog(data: DataDir) -> None:
    """(Re)write ``views.sql`` and ``inferledger.duckdb`` if the view set changed."""
    data.ensure()
    init_raw(data)
    text = views_sql(data)
    if data.views_sql.exists() and data.views_sql.read_text() == text and data.catalog_db.exists():
        return
    tmp_db = retry_vanished(lambda: _build_catalog_db(data, text))
    tmp_sql = data.views_sql.with_name(f".views.{uuid.uuid4().hex}.tmp")
    tmp_sql.write_text(text)
    os.replace(tmp_db, data.catalog_db)
    os.replace(tmp_sql, data.views_sql)


def _build_catalog_db(data: DataDir, text: str) -> Path:
    """The views in a new catalog file (binding them reads the segments' schemas)."""
    tmp_db = data.catalog_db.with_name(f".catalog.{uuid.uuid4().hex}.tmp")
    con = duckdb.connect()
    try:
        con.execute(
            f"ATTACH {_sql_literal(str(tmp_db))} AS cat (STORAGE_VERSION '{_STORAGE_VERSION}')"
        )
        con.execute("USE cat")
        con.execute(text)
        con.execute("USE memory")
        con.execute("DETACH cat")
    except duckdb.Error:
        tmp_db.unlink(missing_ok=True)
        raise
    finally:
        con.close()
    return tmp_db


def retry_vanished(fn: Callable[[], T], attempts: int = 6) -> T:
    """``fn()``, again if a raw segment vanished under it.

    Compaction and retention delete segment files; a query that listed a file can find it
    gone when it opens it (a query scanning many files while a pass deletes is the likely
    case). Listing again finds the merged file instead; retries back off (50 ms, doubling)
    so a slow scan is not caught by the same pass again.
    """
    for attempt in range(attempts):
        try:
            return fn()
        except duckdb.IOException as e:
            if "No such file" not in str(e) or attempt == attempts - 1:
                raise
            time.sleep(0.05 * 2 ** attempt)
    raise AssertionError("unreachable")


def read_df(con: duckdb.DuckDBPyConnection, sql: str, params: list | None = None
            ) -> pd.DataFrame:
    """A query's result as a DataFrame, on its own cursor (safe from any thread sharing
    ``con``), retried if compaction removed a file under it."""
    cur = con.cursor()
    try:
        return retry_vanished(lambda: cur.execute(sql, params or []).df())
    finally:
        cur.close()


def connect_readonly(data: DataDir) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection with the store's views; takes no lock on anything and
    writes nothing (:class:`~inferledger.store.layout.NotAStore` if ``data`` is no store)."""
    data.check_store()
    con = duckdb.connect()
    text = data.views_sql.read_text()
    retry_vanished(lambda: con.execute(text).fetchall())
    return con
