"""The headline figures of a data directory, from the published tables: the same figures
(inferledger/results/kpis.py) the dashboard and the weekly report show, over all the data."""

from __future__ import annotations

from typing import Any

import pandas as pd

from inferledger.results.filters import Filters
from inferledger.results.kpis import headline
from inferledger.results.published import require_results
from inferledger.store import DataDir, connect_readonly

CHECKS_SQL = """
SELECT (SELECT coalesce(max(greatest(rel_error_s, rel_error_j)), 0) FROM conservation)
           AS conservation_max_rel_error,
       coalesce((SELECT bool_or(simulated) FROM spend_hourly), false)
           OR coalesce((SELECT bool_or(simulated) FROM cost_hourly), false) AS simulated
"""


def _plain(v: Any) -> Any:
    """JSON-ready: numpy and pandas scalars as Python numbers, missing values as None."""
    if v is None or pd.isna(v):
        return None
    if hasattr(v, "item"):
        v = v.item()
    if isinstance(v, bool):
        return v
    return int(v) if isinstance(v, int) else float(v) if isinstance(v, float) else v


def summary(data: DataDir) -> dict[str, Any]:
    require_results(data)
    con = connect_readonly(data)
    try:
        out = {k: _plain(v) for k, v in headline(con, Filters()).items()}
        cur = con.execute(CHECKS_SQL)
        names = [d[0] for d in cur.description]
        checks = dict(zip(names, cur.fetchall()[0], strict=True))
    finally:
        con.close()
    for k in ("not_charged_usd", "fleet_spend_usd"):  # the same as spend without a filter
        out.pop(k)
    out["requests"] = out["requests"] or 0
    out["conservation_max_rel_error"] = float(checks["conservation_max_rel_error"])
    out["simulated"] = bool(checks["simulated"])
    return out


def format_table(s: dict[str, Any]) -> str:
    width = max(len(k) for k in s)
    lines = []
    for k, v in s.items():
        text = f"{v:.6g}" if isinstance(v, float) else "-" if v is None else str(v)
        lines.append(f"{k.ljust(width)}  {text}")
    return "\n".join(lines)
