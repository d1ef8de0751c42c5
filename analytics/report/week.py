"""ISO weeks (``2026-W47``) as time ranges in the report's time zone."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from inferledger.errors import UserError


class BadWeek(UserError, ValueError):
    """``--week`` is not an ISO week."""


_ISO_WEEK = re.compile(r"^(\d{4})-W(\d{2})$")


@dataclass(frozen=True)
class Week:
    label: str  # 2026-W47
    start: datetime  # Monday 00:00 in the report's time zone
    end: datetime  # the next Monday 00:00

    @classmethod
    def parse(cls, label: str, tz: str = "UTC") -> Week:
        m = _ISO_WEEK.match(label.strip())
        if not m:
            raise BadWeek(f"--week {label!r} is not an ISO week like 2026-W47")
        try:
            monday = date.fromisocalendar(int(m[1]), int(m[2]), 1)
        except ValueError as e:
            raise BadWeek(f"--week {label!r}: {e}") from None
        start = datetime.combine(monday, datetime.min.time(), ZoneInfo(tz))
        return cls(label.strip(), start, start + timedelta(days=7))

    @classmethod
    def last_complete(cls, now: datetime, tz: str = "UTC") -> Week:
        """The last week that has ended at ``now`` (on a Monday morning: last week)."""
        local = now.astimezone(ZoneInfo(tz)).date() - timedelta(days=7)
        year, week, _ = local.isocalendar()
        return cls.parse(f"{year}-W{week:02d}", tz)

    def previous(self) -> Week:
        year, week, _ = (self.start.date() - timedelta(days=7)).isocalendar()
        return Week.parse(f"{year}-W{week:02d}", str(self.start.tzinfo))

    def __str__(self) -> str:
        return f"{self.label} ({self.start:%d %b} – {self.end - timedelta(days=1):%d %b %Y})"
