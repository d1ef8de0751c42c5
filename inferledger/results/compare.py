"""Whether two stores published the same results: what a run elsewhere (a process pool, Ray
workers) is held to against the same data computed in one process.

"The same" is row for row: every column equal, doubles within a relative 1e-9 (or 1e-9
absolute near zero). Bit equality would fail two runs of the same code in one process:
DuckDB's parallel sums and the kernel's fits differ in the last bits from one run to the
next (measured: at most 2.5e-13 relative on a day of 16 GPUs; a conservation error of 1e-16
is all last bits).
"""

from __future__ import annotations

import duckdb

from inferledger.store import DataDir, connect_readonly

REL_TOL = 1e-9
ABS_TOL = 1e-9


def derived_tables(data: DataDir) -> list[str]:
    """The tables the analytics published in ``data`` (``derived/<table>``)."""
    return sorted(p.name for p in data.derived.iterdir() if not p.name.startswith((".", "_")))


def differing_rows(a: DataDir, b: DataDir) -> dict[str, int]:
    """Per published table, how many rows of ``a`` and ``b`` do not match: rows are paired
    in the order of their exact columns, then of their doubles (two rows whose order the last
    bits could swap are equal within the tolerance, so either pairing holds); a row left
    unpaired, or paired with one that differs, counts."""
    tables = derived_tables(a)
    if tables != derived_tables(b):
        raise ValueError(f"{a.root} publishes {tables}, {b.root} {derived_tables(b)}")
    ca, cb = connect_readonly(a), connect_readonly(b)
    out = {}
    for table in tables:
        cols = [(c, t) for c, t, *_ in ca.sql(f"DESCRIBE {table}").fetchall()]
        exact = [c for c, t in cols if t != "DOUBLE"]
        doubles = [c for c, t in cols if t == "DOUBLE"]
        both = duckdb.connect()
        both.execute("SET enable_progress_bar = false")
        both.register("ta", ca.sql(f"SELECT * FROM {table}").to_arrow_table())
        both.register("tb", cb.sql(f"SELECT * FROM {table}").to_arrow_table())
        order = ", ".join([*exact, *doubles]) or "1"
        same = " AND ".join([
            *(f"x.{c} IS NOT DISTINCT FROM y.{c}" for c in exact),
            *(f"(x.{d} IS NOT DISTINCT FROM y.{d} OR abs(x.{d} - y.{d}) <= "
              f"greatest({REL_TOL} * greatest(abs(x.{d}), abs(y.{d})), {ABS_TOL}))"
              for d in doubles)]) or "TRUE"
        out[table] = both.sql(f"""
            WITH x AS (SELECT *, row_number() OVER (ORDER BY {order}) AS n_ FROM ta),
                 y AS (SELECT *, row_number() OVER (ORDER BY {order}) AS n_ FROM tb)
            SELECT count(*) FROM x FULL JOIN y USING (n_)
            WHERE x.n_ IS NULL OR y.n_ IS NULL OR NOT ({same})""").fetchall()[0][0]
    return out
