"""Whether two stores published the same results: what a run elsewhere (a process pool, Ray
workers) is held to against the same data computed in one process."""

from __future__ import annotations

import duckdb

from inferledger.store import DataDir, connect_readonly


def derived_tables(data: DataDir) -> list[str]:
    """The tables the analytics published in ``data`` (``derived/<table>``)."""
    return sorted(p.name for p in data.derived.iterdir() if not p.name.startswith((".", "_")))


def differing_rows(a: DataDir, b: DataDir) -> dict[str, int]:
    """Per published table, the rows one store has and the other lacks (both ways), doubles
    compared to 9 significant digits and those under 1e-9 as 0: DuckDB's parallel sums
    differ in the last bits from one run to the next (a conservation error of 1e-16 is all
    last bits), so bit equality would fail two runs of the same code."""
    tables = derived_tables(a)
    if tables != derived_tables(b):
        raise ValueError(f"{a.root} publishes {tables}, {b.root} {derived_tables(b)}")
    ca, cb = connect_readonly(a), connect_readonly(b)
    out = {}
    for table in tables:
        cols = ca.sql(f"DESCRIBE {table}").fetchall()
        sel = ", ".join(
            f"CASE WHEN NOT isfinite({c}) THEN {c} WHEN abs({c}) < 1e-9 THEN 0 ELSE "
            f"round({c}, 9 - ceil(log10(abs({c})))::INT) END AS {c}" if t == "DOUBLE" else c
            for c, t, *_ in cols)
        both = duckdb.connect()
        both.register("ta", ca.sql(f"SELECT {sel} FROM {table}").to_arrow_table())
        both.register("tb", cb.sql(f"SELECT {sel} FROM {table}").to_arrow_table())
        out[table] = both.sql(
            "SELECT (SELECT count(*) FROM (FROM ta EXCEPT ALL FROM tb)) + "
            "(SELECT count(*) FROM (FROM tb EXCEPT ALL FROM ta))").fetchall()[0][0]
    return out
