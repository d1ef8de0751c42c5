"""Derived tables are published as snapshots: all tables switch at once, readers keep
reading through the switch, and a store of an older release is taken over in place."""

from __future__ import annotations

import os

import duckdb
import pyarrow as pa

from inferledger.store import DataDir, write_parquet_atomic
from inferledger.store.snapshots import SNAPSHOTS, Snapshot, day_file, hour_file
from tests.builders import places


def _table(**cols) -> pa.Table:
    return pa.table({k: pa.array(v) for k, v in cols.items()})


def _count(con: duckdb.DuckDBPyConnection, data: DataDir, table: str) -> int:
    glob = str(data.derived_table(table) / "*.parquet")
    return con.execute("SELECT count(*) FROM read_parquet(?)", [glob]).fetchall()[0][0]


def test_a_commit_switches_every_table_at_once(tmp_path) -> None:
    data = DataDir.at(tmp_path / "d").ensure()
    first = Snapshot(data)
    first.write("requests", hour_file("2027-01-16", 5), _table(x=[1, 2]))
    first.write("request_costs", hour_file("2027-01-16", 5), _table(x=[1, 2]))
    first.commit()
    reader = duckdb.connect()  # a reader that stays open across publishes
    assert (_count(reader, data, "requests"), _count(reader, data, "request_costs")) == (2, 2)
    second = Snapshot(data)
    second.write("requests", hour_file("2027-01-16", 6), _table(x=[3]))
    # written but not committed: nobody sees it yet, in any table
    assert _count(reader, data, "requests") == 2
    second.write("request_costs", hour_file("2027-01-16", 6), _table(x=[3]))
    second.commit()
    assert (_count(reader, data, "requests"), _count(reader, data, "request_costs")) == (3, 3)
    # the day is finished: one file replaces its hours, with no moment of both
    third = Snapshot(data)
    for t in ("requests", "request_costs"):
        third.write(t, day_file("2027-01-16"), _table(x=[1, 2, 3]))
        third.remove(t, "day=2027-01-16.h??.parquet")
    third.commit()
    assert places(data.derived_table("requests")) == ["day=2027-01-16.parquet"]
    assert _count(reader, data, "requests") == 3
    # one generation is kept: the previous ones' links are gone
    assert sorted(p.name for p in (data.derived / SNAPSHOTS).iterdir()) == \
        ["current", third.dir.name]


def test_an_abandoned_generation_is_cleared_and_never_seen(tmp_path) -> None:
    data = DataDir.at(tmp_path / "d").ensure()
    ok = Snapshot(data)
    ok.write("requests", day_file("2027-01-15"), _table(x=[1]))
    ok.commit()
    crashed = Snapshot(data)  # a run that died before committing
    crashed.write("requests", day_file("2027-01-16"), _table(x=[2]))
    assert _count(duckdb.connect(), data, "requests") == 1
    nxt = Snapshot(data)  # starts again from the committed generation
    assert not nxt.has("requests", day_file("2027-01-16"))
    nxt.commit()
    assert _count(duckdb.connect(), data, "requests") == 1


def test_a_store_of_an_older_release_is_taken_over(tmp_path) -> None:
    """Before snapshots each table was a plain folder of day files: the first publish
    links them into its generation and puts the table's link in the folder's place."""
    data = DataDir.at(tmp_path / "d").ensure()
    old = data.derived / "requests"
    write_parquet_atomic(_table(x=[1, 2]), old / day_file("2027-01-15"))
    snap = Snapshot(data)
    snap.write("requests", hour_file("2027-01-16", 0), _table(x=[3]))
    snap.commit()
    assert os.path.islink(old)
    assert places(old) == ["day=2027-01-15.parquet", "day=2027-01-16.h00.parquet"]
    assert _count(duckdb.connect(), data, "requests") == 3


def test_a_files_name_always_names_the_same_bytes(tmp_path) -> None:
    """A reader lists a table through ``current`` and opens the paths a moment later. When a
    publish replaces a file meanwhile, the listed path must name the same bytes in the next
    generation or be gone (retried), never another file of the same name: DuckDB would read
    it at the old file's offsets (``TProtocolException: Invalid data``, seen live)."""
    data = DataDir.at(tmp_path / "d").ensure()
    first = Snapshot(data)
    first.write("latency", day_file("2027-01-16"), _table(x=[1, 2]))
    first.write("latency", day_file("2027-01-15"), _table(x=[9]))
    first.commit()
    listed = {p: p.read_bytes() for p in data.derived_table("latency").glob("*.parquet")}
    second = Snapshot(data)  # the day's table recomputed with more rows, the other kept
    second.write("latency", day_file("2027-01-16"), _table(x=[1, 2, 3, 4, 5, 6, 7, 8]))
    second.commit()
    kept = [p for p in listed if p.exists()]
    assert len(kept) == 1 and all(p.read_bytes() == listed[p] for p in kept)
    assert places(data.derived_table("latency")) == ["day=2027-01-15.parquet",
                                                      "day=2027-01-16.parquet"]
    assert _count(duckdb.connect(), data, "latency") == 9
