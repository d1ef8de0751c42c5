"""A window's rows of every published table, into a snapshot of the derived tables.

A finished day is one file per table; the hours of a day still coming in are one file per
table and hour, so a live run writes only its hours, whatever the day already holds. The
per-day tables (``--! grain: day``) are computed from the window when it is the whole day,
else again from the day's published rows.
"""

from __future__ import annotations

import duckdb

from analytics.models import published, step_sql
from analytics.windows import DAY_S, HOUR_S, Window, day_label
from inferledger.store.snapshots import Snapshot, day_file, hour_file, hour_files_of

# What a per-day table is computed from, when it is recomputed from the day's published
# rows: the published table → the step table it stands in for (and the columns it needs).
DAILY_INPUTS = {"requests": ("int_requests", "*"),
                "cost_hourly": ("mart_cost_hourly", "*"),
                "request_costs": ("int_request_slo", "request_uid, slo_met")}


def publish(con: duckdb.DuckDBPyConnection, snap: Snapshot, w: Window, final: bool) -> None:
    """Put the window's rows in the snapshot (``final``: the day is complete, one file)."""
    label = day_label(w.day)
    for m in published():
        if m.daily:
            continue
        if final:
            snap.write(m.publish, day_file(label),
                       con.sql(m.rows_of(m.table, w.lo, w.hi)).to_arrow_table())
            snap.remove(m.publish, hour_files_of(label))
            continue
        if w.whole_day:
            snap.remove(m.publish, day_file(label))
        for h in w.hours:
            rows = con.sql(m.rows_of(m.table, h, h + HOUR_S)).to_arrow_table()
            name = hour_file(label, (h - int(w.day)) // HOUR_S)
            if rows.num_rows:
                snap.write(m.publish, name, rows)
            else:
                snap.remove(m.publish, name)
        if not any(snap.table(m.publish).glob("*.parquet")):  # a view needs a file to bind
            snap.write(m.publish, hour_file(label, int(w.lo - w.day) // HOUR_S),
                       con.sql(m.rows_of(m.table, w.lo, w.lo)).to_arrow_table())
    _publish_daily(con, snap, w)


def _publish_daily(con: duckdb.DuckDBPyConnection, snap: Snapshot, w: Window) -> None:
    label = day_label(w.day)
    daily = [m for m in published() if m.daily]
    day_rows = {name: sorted(snap.table(name).glob(f"day={label}*.parquet"))
                for name in DAILY_INPUTS}
    if w.whole_day or not all(day_rows.values()):
        for m in daily:
            snap.write(m.publish, day_file(label),
                       con.sql(m.rows_of(m.table, w.lo, w.hi)).to_arrow_table())
        return
    day = duckdb.connect()
    try:
        day.execute("SET TimeZone = 'UTC'").fetchall()
        day.execute("SET VARIABLE keep_from = ?", [w.day]).fetchall()
        day.execute("SET VARIABLE keep_until = ?", [w.day + DAY_S]).fetchall()
        for name, (table, columns) in DAILY_INPUTS.items():
            day.read_parquet([str(f) for f in day_rows[name]]).select(columns).create_view(
                table)
        for m in daily:
            day.execute(step_sql(m.step)).fetchall()
            snap.write(m.publish, day_file(label),
                       day.sql(f"SELECT * FROM {m.table}").to_arrow_table())
    finally:
        day.close()

