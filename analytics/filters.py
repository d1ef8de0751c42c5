"""A slice of the results — time range, models, tenants, nodes — and its SQL: what the
dashboard's shared filters and the weekly report's weeks select.

The dashboard's ranges end at the newest data in the store rather than at the wall clock, so
a store that stopped receiving data (a finished demo, a copied store) still opens on its last
day. Every clause is parameterised: values never enter SQL text.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta

RANGES: dict[str, timedelta | None] = {
    "Last hour": timedelta(hours=1), "Last 6 hours": timedelta(hours=6),
    "Last 24 hours": timedelta(days=1), "Last 7 days": timedelta(days=7),
    "Last 30 days": timedelta(days=30), "All": None}
DEFAULT_RANGE = "Last 7 days"


@dataclass(frozen=True)
class Filters:
    start: datetime | None = None  # inclusive; None: from the beginning
    end: datetime | None = None  # exclusive; None: to the newest data
    models: tuple[str, ...] = ()
    tenants: tuple[str, ...] = ()
    nodes: tuple[str, ...] = ()

    @classmethod
    def for_range(cls, label: str, newest: datetime | None, **dims: tuple[str, ...]) -> Filters:
        width = RANGES[label]
        if width is None or newest is None:
            return cls(**dims)
        end = newest + timedelta(seconds=1)
        return cls(start=end - width, end=end, **dims)

    def previous(self) -> Filters | None:
        """The period of the same length just before this one, for 'change vs previous'."""
        if self.start is None or self.end is None:
            return None
        return replace(self, start=self.start - (self.end - self.start), end=self.start)

    @property
    def span_s(self) -> float | None:
        return None if self.start is None or self.end is None else \
            (self.end - self.start).total_seconds()

    def _time(self, col: str, hourly: bool) -> tuple[list[str], list]:
        clauses, params = [], []
        start = self.start.replace(minute=0, second=0, microsecond=0) \
            if hourly and self.start else self.start
        if start is not None:
            clauses.append(f"{col} >= ?")
            params.append(start)
        if self.end is not None:
            clauses.append(f"{col} < ?")
            params.append(self.end)
        return clauses, params

    def _dims(self, cols: dict[str, str]) -> tuple[list[str], list]:
        clauses, params = [], []
        for values, key in ((self.models, "model"), (self.tenants, "tenant"),
                            (self.nodes, "node")):
            if values and key in cols:
                clauses.append(f"list_contains(?, {cols[key]})")
                params.append(list(values))
        return clauses, params

    def where(self, time_col: str = "started_at", *, hourly: bool = False,
              model: str | None = "model", tenant: str | None = "tenant",
              node: str | None = "host_name") -> tuple[str, list]:
        """A WHERE clause and its parameters; pass None for a dimension the table lacks."""
        t, tp = self._time(time_col, hourly)
        cols = {k: v for k, v in (("model", model), ("tenant", tenant), ("node", node)) if v}
        d, dp = self._dims(cols)
        return " AND ".join(["TRUE", *t, *d]), tp + dp

    def gpu_where(self, time_col: str = "hour", *, hourly: bool = True) -> tuple[str, list]:
        """For per-GPU tables: time and node only (a GPU serves many models and tenants)."""
        return self.where(time_col, hourly=hourly, model=None, tenant=None)

    @property
    def narrows_requests(self) -> bool:
        """Whether model or tenant filters apply (they cannot narrow GPU-level figures)."""
        return bool(self.models or self.tenants)
