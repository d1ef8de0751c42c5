"""The analytics models, declared by their SQL files: adding a table is adding a file.

Every file in ``sql/intermediate/`` and ``sql/marts/`` is one step; what it creates
(``CREATE … TABLE name``) and reads (the names of other steps' tables in its text) order the
steps, as dbt orders models by what they select from. A file publishes a table when its
first lines say so::

    --! publish: gpu_time          the name readers see (docs/SQL.md)
    --! day_key: epoch(hour)       epoch seconds putting a row in a UTC day and hour
    --! rows: request_uid IN (…)   instead of a day key: the rows of [{lo}, {hi})
    --! grain: day                 one row set per day, recomputed from the day's rows

Two steps are Python between the SQL: ``prices`` (each GPU model the window ran on, priced
from the pricing file) and ``kernel`` (the attribution kernel, analytics/attribution.py),
whose inputs are the queries in ``sql/kernel/``. Queries the runner asks (what arrived, the
conservation check) are in ``sql/run/``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from importlib import resources

LAYERS = ("intermediate", "marts")
PRICES = "prices"
KERNEL = "kernel"
KERNEL_INPUTS = ("intervals", "requests", "placements", "recompute", "loading")
_CREATES = re.compile(r"CREATE\s+(?:OR\s+REPLACE\s+)?(?:TEMP\s+|TEMPORARY\s+)?"
                      r"(?:TABLE|VIEW)\s+(\w+)", re.IGNORECASE)
_HEADER = re.compile(r"^--!\s*(\w+):\s*(.+?)\s*$")
_COMMENT = re.compile(r"--[^\n]*")
_WORD = re.compile(r"\b\w+\b")


class ManifestError(Exception):
    """The SQL files do not declare a valid pipeline (a cycle, an unknown header): a bug in
    the release, caught by the tests before it ships."""


@dataclass(frozen=True)
class Model:
    step: str  # "layer/name", or PRICES / KERNEL
    creates: frozenset[str]
    reads: frozenset[str]
    publish: str | None = None  # published under this name
    day_key: str | None = None
    rows: str | None = None
    daily: bool = False

    def rows_of(self, table: str, lo: float, hi: float) -> str:
        """The SELECT of ``table``'s rows that belong to [lo, hi)."""
        if self.day_key is not None:
            return f"SELECT * FROM {table} WHERE {self.day_key} >= {lo} AND {self.day_key} < {hi}"
        if self.rows is not None:
            return f"SELECT * FROM {table} WHERE {self.rows.format(lo=lo, hi=hi)}"
        return f"SELECT * FROM {table}"  # a per-day table, computed for its day only

    @property
    def table(self) -> str:
        """The table a published step creates under its file's name."""
        return self.step.split("/")[-1]


def read_sql(folder: str, name: str) -> str:
    """One SQL file of the package: ``read_sql("run", "raw_range")``."""
    return (resources.files("analytics") / "sql" / folder / f"{name}.sql").read_text()


def step_sql(step: str) -> str:
    layer, name = step.split("/")
    return read_sql(layer, name)


def parse_model(step: str, text: str) -> Model:
    headers: dict[str, str] = {}
    for line in text.splitlines():
        m = _HEADER.match(line)
        if not m:
            break
        headers[m[1]] = m[2]
    unknown = set(headers) - {"publish", "day_key", "rows", "grain"}
    if unknown:
        raise ManifestError(f"{step}.sql: unknown header(s) {sorted(unknown)}")
    code = _COMMENT.sub("", text)
    return Model(step, frozenset(_CREATES.findall(code)), frozenset(_WORD.findall(code)),
                 publish=headers.get("publish"), day_key=headers.get("day_key"),
                 rows=headers.get("rows"), daily=headers.get("grain") == "day")


def _python_steps() -> list[Model]:
    kernel_reads = frozenset().union(*(
        _WORD.findall(_COMMENT.sub("", read_sql("kernel", n))) for n in KERNEL_INPUTS))
    prices_reads = frozenset(_WORD.findall(_COMMENT.sub("", read_sql("run", "gpu_models"))))
    return [Model(PRICES, frozenset({"pricing_gpu"}), prices_reads),
            Model(KERNEL, frozenset({"kernel_segments", "kernel_windows"}), kernel_reads)]


@cache
def models() -> tuple[Model, ...]:
    """Every step, in an order where each runs after the steps whose tables it reads (ties:
    intermediate before marts, then by name, so the order is the same on every machine)."""
    found = [parse_model(f"{layer}/{f.name[:-4]}", f.read_text())
             for layer in LAYERS
             for f in sorted((resources.files("analytics") / "sql" / layer).iterdir(),
                             key=lambda f: f.name) if f.name.endswith(".sql")]
    found += _python_steps()
    maker = {t: m.step for m in found for t in m.creates}
    needs = {m.step: {maker[t] for t in m.reads if t in maker} - {m.step} for m in found}
    rank = {m.step: (0 if m.step.startswith("intermediate/") else
                     1 if m.step in (PRICES, KERNEL) else 2, m.step) for m in found}
    by_step = {m.step: m for m in found}
    ordered: list[Model] = []
    done: set[str] = set()
    while len(ordered) < len(found):
        ready = sorted((s for s in by_step if s not in done and needs[s] <= done),
                       key=rank.__getitem__)
        if not ready:
            raise ManifestError("the SQL steps read each other in a circle: "
                                f"{sorted(set(by_step) - done)}")
        done.add(ready[0])
        ordered.append(by_step[ready[0]])
    return tuple(ordered)


def steps() -> tuple[str, ...]:
    return tuple(m.step for m in models())


def published() -> tuple[Model, ...]:
    """The steps whose tables readers see, in step order."""
    return tuple(m for m in models() if m.publish)


def published_as(name: str) -> Model:
    return next(m for m in published() if m.publish == name)
