"""Benchmark: one backfill's partitions (UTC days) computed in this process, in a local pool
of two workers, and as Ray tasks on a local cluster of one node and of two (one CPU each).

The store is a copy of ``--store`` (an existing one, e.g. the dashboard benchmark's 30 days of
``fleet-16``) for each way, so each publishes into its own; the ways take turns in every
round, their order rotating, so neither order nor warm-up decides. Prints each run, the
ratios, and checks that every way published the same rows as this process (doubles to nine
significant digits, as ``inferledger.results.compare`` defines it). The last line is one JSON
object: ``partition_s_p50`` (a partition's median compute time in this process),
``pool_over_inline`` and ``two_workers_over_one`` (wall time of two Ray nodes over one), and
``identical_to_embedded`` (1 when every way's rows equal this process's).

    .venv/bin/python bench/partitions.py --store /tmp/dash30 [--days 4] [--rounds 2]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import ray
from ray.cluster_utils import Cluster

from analytics.pipeline import run
from inferledger.results.compare import differing_rows
from inferledger.store import DataDir, connect_readonly, write_catalog

WAYS = ("inline", "pool", "ray-1", "ray-2")


def copy_raw(src: DataDir, dst: Path) -> DataDir:
    data = DataDir.at(dst)
    shutil.copytree(src.raw, data.raw)
    write_catalog(data)
    return data


def first_days(src: DataDir, days: int) -> tuple[float, float]:
    """The store's first ``days`` whole UTC days (its first day is partial)."""
    con = connect_readonly(src)
    [(first,)] = con.sql("SELECT min(hour) FROM gpu_time").fetchall()
    con.close()
    start = datetime(first.year, first.month, first.day, tzinfo=UTC).timestamp() + 86_400
    return start, start + (days - 1) * 86_400


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--store", type=Path, required=True, help="a store with results")
    ap.add_argument("--days", type=int, default=4)
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    src = DataDir.at(args.store).check_store()
    since, until = first_days(src, args.days)
    work = Path(tempfile.mkdtemp(prefix="il-partitions-"))
    stores = {way: copy_raw(src, work / way) for way in WAYS}
    walls: dict[str, list[float]] = {w: [] for w in WAYS}
    inline_parts: list[float] = []
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1,
                                                           "include_dashboard": False})
    try:
        for r in range(args.rounds):
            order = WAYS[r % len(WAYS):] + WAYS[:r % len(WAYS)]
            for way in order:
                second = None
                if way == "ray-2":
                    second = cluster.add_node(num_cpus=1)
                    cluster.wait_for_nodes()
                kind = {"inline": "inline", "pool": "local"}.get(way, "ray")
                started = time.monotonic()
                result = run(stores[way], since=since, until=until, executor=kind,
                             workers=2, ray_address=cluster.address)
                walls[way].append(time.monotonic() - started)
                if way == "inline":
                    inline_parts += result.partition_s
                if second is not None:
                    cluster.remove_node(second)
                print(f"round {r + 1}: {way:<6} {len(result.partition_s)} partitions in "
                      f"{walls[way][-1]:.1f} s (partitions "
                      f"{', '.join(f'{s:.1f}' for s in result.partition_s)} s)", flush=True)
    finally:
        if ray.is_initialized():
            ray.shutdown()
        cluster.shutdown()
    differing = {way: sum(differing_rows(stores["inline"], stores[way]).values())
                 for way in WAYS[1:]}
    shutil.rmtree(work)
    med = {w: statistics.median(t) for w, t in walls.items()}
    pool = med["pool"] / med["inline"]
    two = med["ray-2"] / med["ray-1"]
    for w in WAYS:
        print(f"{w:<6} median {med[w]:.1f} s")
    print(f"a pool of two over this process: {pool:.2f}×; two Ray nodes over one: {two:.2f}×")
    print(f"rows differing from this process's: {differing}")
    print(json.dumps({
        "days": args.days, "rounds": args.rounds,
        "partition_s_p50": round(statistics.median(inline_parts), 2),
        "wall_s": {w: [round(x, 1) for x in t] for w, t in walls.items()},
        "pool_over_inline": round(pool, 3), "two_workers_over_one": round(two, 3),
        "identical_to_embedded": int(not any(differing.values())),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python "
                   f"{platform.python_version()}"}))


if __name__ == "__main__":
    main()
