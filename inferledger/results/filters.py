"""A slice of the results — time range, models, tenants, nodes — and its SQL: what the
dashboard's shared filters and the weekly report's weeks select.

The dashboard's ranges end at the newest sample in the store rather than at the wall clock,
so a store that stopped receiving data (a finished demo, a copied store) still opens on its
last day. Costs are hourly, so a range starts on the hour: "Last hour" at 13:42 is 12:00 to
13:42, every figure on a page covering the same interval. Every clause is parameterised:
values never enter SQL text.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta

RANGES: dict[str, timedelta | None] = {
    "Last hour": timedelta(hours=1), "Last 6 hours": timedelta(hours=6),
    "Last 24 hours": timedelta(days=1), "Last 7 days": timedelta(days=7),
    "Last 30 days": timedelta(days=30), "All": None}
DEFAULT_RANGE = "Last 7 days"
HOUR = timedelta(hours=1)
# A comparison needs the two periods' lengths within this share of each other (the current
# one's last hour can be in progress).
COMPARABLE_SHARE = 0.05


def floor_hour(t: datetime) -> datetime:
    return t.replace(minute=0, second=0, microsecond=0)


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
        return cls(start=floor_hour(end - width), end=end, **dims)

    def previous(self) -> Filters | None:
        """The whole hours just before this period, as many as it spans (rounded), for
        'change vs previous'; ``not_comparable`` says when the lengths differ too much."""
        if self.start is None or self.end is None:
            return None
        hours = max(1, round((self.end - self.start) / HOUR))
        return replace(self, start=self.start - hours * HOUR, end=self.start)

    def not_comparable(self, previous: Filters, first_data: datetime | None) -> str | None:
        """Why changes against ``previous`` would mislead, in words; None when they don't:
        the previous period begins before the first data, or this one is still short of it
        (its last hour in progress)."""
        if first_data is not None and previous.start is not None \
                and previous.start < floor_hour(first_data):
            return (f"the previous period ({previous.start:%d %b %H:%M} – "
                    f"{previous.end:%d %b %H:%M} UTC) begins before the first data "
                    f"({first_data:%d %b %H:%M} UTC)")
        if self.span_s is not None and previous.span_s and \
                abs(self.span_s / previous.span_s - 1) > COMPARABLE_SHARE:
            return (f"this period's last hour is in progress ({self.span_s / 3600:.1f} h "
                    f"against {previous.span_s / 3600:.0f} h before it)")
        return None

    @property
    def span_s(self) -> float | None:
        return None if self.start is None or self.end is None else \
            (self.end - self.start).total_seconds()

    def _time(self, col: str, hourly: bool) -> tuple[list[str], list]:
        clauses, params = [], []
        start = floor_hour(self.start) if hourly and self.start else self.start
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
