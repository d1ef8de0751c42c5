"""Partitions computed elsewhere publish what one process publishes: a local process pool
and Ray tasks on a two-node local cluster (head + one worker), against the same run in this
process, row for row; an error in a partition reaches the caller as itself; and the
comparison tells the last bits of a float from a real difference."""

from __future__ import annotations

import shutil

import pyarrow as pa
import pytest

from analytics.executors import open_executor
from analytics.pipeline import run
from inferledger.errors import UserError
from inferledger.results.compare import differing_rows
from inferledger.store import DataDir, write_catalog
from inferledger.store.snapshots import Snapshot, day_file


def _raw_copy(src: DataDir, dst) -> DataDir:
    data = DataDir.at(dst)
    shutil.copytree(src.raw, data.raw)
    write_catalog(data)
    return data


def _inline(demo_store: DataDir, tmp_path) -> DataDir:
    here = _raw_copy(demo_store, tmp_path / "inline")
    assert len(run(here, executor="inline").partition_s) >= 2
    return here


def test_a_local_pool_publishes_what_one_process_does(demo_store, tmp_path) -> None:
    here = _inline(demo_store, tmp_path)
    pooled = _raw_copy(demo_store, tmp_path / "pool")
    result = run(pooled, executor="local", workers=2)
    assert len(result.partition_s) >= 2 and all(s > 0 for s in result.partition_s)
    assert set(differing_rows(here, pooled).values()) == {0}


def test_ray_tasks_on_a_two_node_cluster_publish_the_same(demo_store, tmp_path) -> None:
    ray = pytest.importorskip("ray")
    from ray.cluster_utils import Cluster

    here = _inline(demo_store, tmp_path)
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1,
                                                           "include_dashboard": False})
    try:
        cluster.add_node(num_cpus=1)
        cluster.wait_for_nodes()
        on_ray = _raw_copy(demo_store, tmp_path / "ray")
        result = run(on_ray, executor="ray", ray_address=cluster.address)
        assert not ray.is_initialized()  # the run let go of the cluster it joined
        assert len(result.partition_s) >= 2
        assert set(differing_rows(here, on_ray).values()) == {0}
    finally:
        cluster.shutdown()


def _fails(n: int) -> int:
    if n == 2:
        raise UserError(f"partition {n} is bad")
    return n


def test_a_partitions_error_reaches_the_caller_as_itself() -> None:
    pool = open_executor("local", 2, workers=2)
    try:
        results = pool.map(_fails, [(1,), (2,)])
        assert next(results) == 1
        with pytest.raises(UserError, match="partition 2 is bad"):
            next(results)
    finally:
        pool.close()
    with pytest.raises(UserError, match="unknown executor 'spark'"):
        open_executor("spark")


def test_ray_missing_is_one_line(monkeypatch) -> None:
    import builtins

    real = builtins.__import__

    def no_ray(name, *args, **kwargs):
        if name == "ray":
            raise ImportError("No module named 'ray'")
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_ray)
    with pytest.raises(UserError, match=r"needs Ray: pip install -e '\.\[scale\]'"):
        open_executor("ray")


def test_the_comparison_tells_last_bits_from_a_difference(tmp_path) -> None:
    def store(name: str, x: list[float]) -> DataDir:
        data = DataDir.at(tmp_path / name).ensure()
        snap = Snapshot(data)
        snap.write("t", day_file("2027-01-16"), pa.table({"k": ["a", "b"], "x": x}))
        snap.commit()
        write_catalog(data)
        return data

    a = store("a", [1.0, 2.0])
    assert differing_rows(a, store("noise", [1.0 + 1e-13, 2.0])) == {"t": 0}
    assert differing_rows(a, store("moved", [1.0 + 1e-6, 2.0])) == {"t": 1}
