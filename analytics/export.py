"""FOCUS-shaped cost export of the published tables, as CSV or Parquet."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from inferledger.errors import UserError
from inferledger.results.published import require_results
from inferledger.store import DataDir, connect_readonly

FORMATS = ("csv", "parquet")
GRAINS = ("hour", "day")


def export_focus(data: DataDir, out: Path, *, fmt: str = "csv", grain: str = "day") -> int:
    """Write the export to ``out``; return the number of charge rows."""
    if fmt not in FORMATS or grain not in GRAINS:
        raise UserError(f"format must be one of {FORMATS} and grain one of {GRAINS}")
    require_results(data)
    sql = (resources.files("analytics") / "sql" / "exports" / "focus.sql").read_text()
    con = connect_readonly(data)
    try:
        con.execute("SET VARIABLE grain = ?", [grain]).fetchall()
        rel = con.sql(sql)
        out.parent.mkdir(parents=True, exist_ok=True)
        if fmt == "csv":
            rel.write_csv(str(out))
        else:
            rel.write_parquet(str(out))
        return con.execute(f"SELECT count(*) FROM ({sql})").fetchall()[0][0]
    finally:
        con.close()
