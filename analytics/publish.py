"""A window's rows of every published table: planned where the window was computed (any
process), applied to a snapshot of the derived tables by the one run that publishes.

A finished day is one file per table; the hours of a day still coming in are one file per
table and hour, so a live run writes only its hours, whatever the day already holds. The
per-day tables (``--! grain: day``) come from the window when it is the whole day, else are
computed again from the day's published rows.
"""

from __future__ import annotations

from dataclasses import dataclass

import duckdb
import pyarrow as pa

from analytics.models import published, step_sql
from analytics.windows import DAY_S, HOUR_S, Window, day_label
from inferledger.store.snapshots import Snapshot, day_file, hour_file, hour_files_of

# What a per-day table is computed from, when it is recomputed from the day's published
# rows: the published table → the step table it stands in for (and the columns it needs).
DAILY_INPUTS = {"requests": ("int_requests", "*"),
                "cost_hourly": ("mart_cost_hourly", "*"),
                "request_costs": ("int_request_slo", "request_uid, slo_met")}


@dataclass(frozen=True)
class FileOp:
    """One change to a published table: write ``rows`` at ``place`` (``rows`` None: remove
    the files at ``place``, a glob of places allowed); ``if_table_empty``: only when the
    table has no file at all (a view needs one to bind)."""

    table: str
    place: str
    rows: pa.Table | None = None
    if_table_empty: bool = False


@dataclass(frozen=True)
class Plan:
    window: Window
    ops: tuple[FileOp, ...]
    daily: dict[str, pa.Table]  # the per-day tables as the window computed them


def plan(con: duckdb.DuckDBPyConnection, w: Window, final: bool) -> Plan:
    """What the window publishes (``final``: the day is complete, one file per table)."""
    label = day_label(w.day)
    ops: list[FileOp] = []
    for m in published():
        if m.daily:
            continue
        if final:
            ops += [FileOp(m.publish, day_file(label),
                           con.sql(m.rows_of(m.table, w.lo, w.hi)).to_arrow_table()),
                    FileOp(m.publish, hour_files_of(label))]
            continue
        if w.whole_day:
            ops.append(FileOp(m.publish, day_file(label)))
        for h in w.hours:
            rows = con.sql(m.rows_of(m.table, h, h + HOUR_S)).to_arrow_table()
            place = hour_file(label, (h - int(w.day)) // HOUR_S)
            ops.append(FileOp(m.publish, place, rows if rows.num_rows else None))
        ops.append(FileOp(m.publish, hour_file(label, int(w.lo - w.day) // HOUR_S),
                          con.sql(m.rows_of(m.table, w.lo, w.lo)).to_arrow_table(),
                          if_table_empty=True))
    daily = {m.publish: con.sql(m.rows_of(m.table, w.lo, w.hi)).to_arrow_table()
             for m in published() if m.daily}
    return Plan(w, tuple(ops), daily)


def apply(snap: Snapshot, p: Plan) -> None:
    """The plan's changes in the snapshot, then its per-day tables."""
    for op in p.ops:
        if op.rows is None:
            snap.remove(op.table, op.place)
        elif not op.if_table_empty or not any(snap.table(op.table).glob("*.parquet")):
            snap.write(op.table, op.place, op.rows)
    label = day_label(p.window.day)
    day_rows = {name: sorted(snap.table(name).glob(f"day={label}*.parquet"))
                for name in DAILY_INPUTS}
    if p.window.whole_day or not all(day_rows.values()):
        for table, rows in p.daily.items():
            snap.write(table, day_file(label), rows)
        return
    day = duckdb.connect()
    try:
        day.execute("SET TimeZone = 'UTC'").fetchall()
        day.execute("SET VARIABLE keep_from = ?", [p.window.day]).fetchall()
        day.execute("SET VARIABLE keep_until = ?", [p.window.day + DAY_S]).fetchall()
        for name, (table, columns) in DAILY_INPUTS.items():
            day.read_parquet([str(f) for f in day_rows[name]]).select(columns).create_view(
                table)
        for m in (m for m in published() if m.daily):
            day.execute(step_sql(m.step)).fetchall()
            snap.write(m.publish, day_file(label),
                       day.sql(f"SELECT * FROM {m.table}").to_arrow_table())
    finally:
        day.close()
