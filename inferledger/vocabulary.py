"""The words every part uses for where GPU time went: attribution methods, a request's work
class, the buckets of the GPU-time ledger, what counts as wasted, and the order a spend
bridge shows them. Defined once here, in the foundation, so the kernel, the SQL's readers,
the dashboard and the report cannot drift apart (the wire's names and the outcome → class
map are ``inferledger.contract``'s)."""

from __future__ import annotations

from inferledger.contract import OUTCOMES

# How a GPU's measured time is split among the requests that shared it (docs/SQL.md).
METHODS = ("gpu_time", "work", "time_overlap", "kv_memory")
# A request's work class: what its outcome makes of its GPU time.
CLASSES = ("useful", "failed", "aborted", "timed_out")
# The attribution kernel's buckets: the classes, then time no request owns.
BUCKETS = (*CLASSES, "preempted", "model_loading", "idle", "unaccounted")
# Measured time that failed the input checks: shown in hours, never priced.
UNMEASURED = "unmeasured"
# Every bucket of the GPU-time ledger (gpu_time): the kernel's and the quarantined.
GPU_TIME_BUCKETS = (*BUCKETS, UNMEASURED)
# GPU time no delivered answer came from, other than idle: requests that failed, were
# aborted or timed out, prompts recomputed after preemption, engines loading, and
# utilization no request explains. The single definition of "wasted".
WASTED = ("failed", "aborted", "timed_out", "preempted", "model_loading", "unaccounted")
# Spend, bucket by bucket, in the order a bridge shows it: it adds up to GPU spend.
BRIDGE = ("useful", *WASTED, "idle")

assert set(OUTCOMES.values()) == set(CLASSES)
assert set(BRIDGE) == set(BUCKETS)
