"""What the analytics published, as every surface reads it: whether there are results to
read, the pricing and settings they were computed with, and the weekly report's deliveries.

The writers (analytics, the report's delivery) live in their roles; the files' places are the
store's (:class:`~inferledger.store.DataDir`), so a reader needs nothing of the writer.
"""

from __future__ import annotations

import json

from inferledger.errors import UserError
from inferledger.store import DataDir


class NoResults(UserError):
    """The analytics have not run on this data directory yet."""


def require_results(data: DataDir) -> None:
    """A store with published results, or a one-line error saying which of the two it lacks."""
    data.check_store()
    if not any(data.derived_table("cost_hourly").glob("*.parquet")):
        raise NoResults(f"no analytics results in {data.root} yet: run `inferledger analytics "
                        f"run --data {data.root}` (the scheduler does this on its interval)")
    if not any(data.derived_table("spend_hourly").glob("*.parquet")):
        raise NoResults(f"the results in {data.root} predate the spend ledger (spend_hourly): "
                        f"recompute them with `inferledger analytics run --reprice --data "
                        f"{data.root}`")
    if not any(data.derived_table("answer_costs").glob("*.parquet")):
        raise NoResults(f"the results in {data.root} predate answers (answer_costs): the next "
                        f"`inferledger analytics run --data {data.root}` recomputes them (the "
                        "scheduler does this on its interval)")


def published_config(data: DataDir) -> dict | None:
    """The pricing and settings the published results use, if any were published."""
    try:
        return json.loads(data.analytics_config.read_text())
    except FileNotFoundError:
        return None


def read_send_log(data: DataDir) -> list[dict]:
    """Every state of every delivery, oldest first."""
    if not data.send_log.exists():
        return []
    out = []
    for line in data.send_log.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:  # a line torn by a crash mid-write: the state before it stands
            continue
    return out


def delivery_states(data: DataDir) -> dict[str, dict]:
    """The latest state of each delivery (week and recipients), by its key."""
    states: dict[str, dict] = {}
    for entry in read_send_log(data):
        states[entry["key"]] = entry
    return states
