"""Splits every measured GPU interval among the requests active in it, in O((N + M) log M).

A request occupies its GPUs as *segments*, each with a constant weight rate ρ: under the
``work`` method, its prefill phase at ρ = prompt tokens × prefill weight / prefill seconds and
its decode phase at ρ = output tokens / decode seconds; under ``time_overlap`` and ``equal``,
its whole [scheduled, finished) at ρ = 1. An interval's total weight is
W_i = Σ ρ·|segment ∩ interval| and a segment receives ρ·|segment ∩ interval| / W_i of the
interval's seconds and joules, so the shares of an interval sum to one and conservation holds
by construction.

Nothing materialises interval × request pairs: W comes from per-interval sums (partial
intervals at segment ends) plus a difference array of the rates of segments that fully cover
an interval; each segment's take is its two partial intervals plus a prefix-sum difference
over the intervals it fully covers. Both passes are vectorised with numpy, per GPU.

``work`` falls back to time overlap in an interval where requests are active but none did
measurable work (phases with no tokens, e.g. a failed request). ``equal`` gives each request
overlapping an interval the same share. Segments shorter than 1 ms are widened to 1 ms so a
phase of zero measured length (a prefix-cache hit) still carries its tokens. Segments are
split at window (hour) boundaries so attribution can be summed per window: a window's
useful, failed, aborted and timed-out buckets are the takes of its segments by the request's
class, and the intervals with no request active are idle or unaccounted.

Two kinds of GPU work belong to no request. Prompt tokens an engine recomputed after
preempting requests (vLLM's ``prompt_tokens_recomputed_total``) are a segment of prefill work
over the scrape interval that counted them, sharing intervals like any request under ``work``
and booked as *preempted*; the other methods share by presence, which recomputation has not.
An engine starting up (process start until it served) holds its GPUs: the part of an interval
with no request active that falls in a start-up window is *model loading*.
"""

from __future__ import annotations

import itertools
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

METHODS = ("work", "time_overlap", "equal")
CLASSES = ("useful", "failed", "aborted", "timed_out")  # a request's work_class
PREEMPTED = len(CLASSES)  # the class index of recomputation segments (no owner)
MIN_SEGMENT_S = 1e-3


@dataclass
class Segments:
    """Per-GPU segments: start, end, rate, owner (row in the request table), class index."""

    a: np.ndarray
    b: np.ndarray
    rho: np.ndarray
    owner: np.ndarray
    cls: np.ndarray

    def take(self, mask: np.ndarray) -> Segments:
        return Segments(self.a[mask], self.b[mask], self.rho[mask], self.owner[mask],
                        self.cls[mask])

    @staticmethod
    def concat(parts: list[Segments]) -> Segments:
        return Segments(*(np.concatenate([getattr(p, f) for p in parts])
                          for f in ("a", "b", "rho", "owner", "cls")))


class Grid:
    """The sample intervals of one GPU: boundaries t[0..M], durations, energies, windows.

    Running sums restart at every window: segments never cross one, and a sum carried over
    a whole day would cancel away a small window's values (1e-16 of the day's total).
    """

    def __init__(self, t0: np.ndarray, t1: np.ndarray, dt: np.ndarray, de: np.ndarray,
                 window: np.ndarray) -> None:
        self.t = np.append(t0, t1[-1])
        self.dt, self.de = dt, de
        self.m = len(dt)
        self.window = window
        self.bounds = np.r_[np.flatnonzero(np.r_[True, window[1:] != window[:-1]]), self.m]

    def cumsum(self, x: np.ndarray) -> np.ndarray:
        """np.cumsum of the first m values, restarting at each window's first interval."""
        out = np.empty(self.m)
        for lo, hi in itertools.pairwise(self.bounds):
            np.cumsum(x[lo:hi], out=out[lo:hi])
        return out

    def clip(self, s: Segments) -> tuple[Segments, np.ndarray, np.ndarray]:
        """Drop what lies outside the sampled range, sort by start, locate the end intervals."""
        a = np.clip(s.a, self.t[0], self.t[-1])
        b = np.clip(s.b, self.t[0], self.t[-1])
        keep = np.flatnonzero(b > a)
        keep = keep[np.argsort(a[keep], kind="stable")]  # in time order: cache-friendly below
        s = Segments(a[keep], b[keep], s.rho[keep], s.owner[keep], s.cls[keep])
        ia = np.clip(np.searchsorted(self.t, s.a, "right") - 1, 0, self.m - 1)
        ib = np.clip(np.searchsorted(self.t, s.b, "left") - 1, 0, self.m - 1)
        return s, ia, ib

    def spread(self, s: Segments, ia: np.ndarray, ib: np.ndarray) -> np.ndarray:
        """W[i] = Σ ρ·|segment ∩ interval i| over the segments, in one pass."""
        m, t = self.m, self.t
        same = ia == ib
        x = ~same
        w = np.bincount(ia[same], s.rho[same] * (s.b[same] - s.a[same]),
                        minlength=m).astype(float)  # float even when there is nothing
        w += np.bincount(ia[x], s.rho[x] * (t[ia[x] + 1] - s.a[x]), minlength=m)
        w += np.bincount(ib[x], s.rho[x] * (s.b[x] - t[ib[x]]), minlength=m)
        lo, hi = ia[x] + 1, ib[x]
        d = np.bincount(lo, s.rho[x], minlength=m + 1) - np.bincount(hi, s.rho[x], minlength=m + 1)
        # Rates of segments covering whole intervals. A running sum of +ρ and −ρ leaves
        # rounding residue where nothing is left covering; an exact count zeroes it there.
        n = np.bincount(lo, minlength=m + 1) - np.bincount(hi, minlength=m + 1)
        full = np.where(np.cumsum(n)[:m] > 0, self.cumsum(d), 0.0)
        return w + full * self.dt

    def collect(self, s: Segments, ia: np.ndarray, ib: np.ndarray, h: np.ndarray) -> np.ndarray:
        """Σ ρ·|segment ∩ interval i|·h_i per segment (h = seconds or joules per weight).

        The prefix sum runs only over intervals some segment covers whole: only those are
        ever summed, and an interval a segment merely grazes has a tiny weight, so a huge h,
        whose rounding would swamp every difference taken after it in the window.
        """
        t = self.t
        lo, hi = ia + 1, ib
        inside = lo < hi
        n = np.cumsum(np.bincount(lo[inside], minlength=self.m + 1)
                      - np.bincount(hi[inside], minlength=self.m + 1))[:self.m]
        prefix = np.r_[0.0, self.cumsum(np.where(n > 0, self.dt * h, 0.0))]
        inner = prefix[np.maximum(ib, ia + 1)] - prefix[ia + 1]
        same = ia == ib
        one = (s.b - s.a) * h[ia]
        ends = (t[ia + 1] - s.a) * h[ia] + (s.b - t[ib]) * h[ib]
        return s.rho * np.where(same, one, ends + inner)

    def count(self, ia: np.ndarray, ib: np.ndarray) -> np.ndarray:
        """n[i] = segments overlapping interval i."""
        d = np.bincount(ia, minlength=self.m + 1) - np.bincount(ib + 1, minlength=self.m + 1)
        return np.cumsum(d)[:self.m].astype(float)

    def collect_equal(self, ia: np.ndarray, ib: np.ndarray, h: np.ndarray) -> np.ndarray:
        prefix = np.r_[0.0, self.cumsum(h)]
        return h[ia] + prefix[ib + 1] - prefix[ia + 1]  # within the segment's window


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    out = np.zeros_like(num, dtype=float)
    np.divide(num, den, out=out, where=den > 0)
    return out


def _split_at(s: Segments, bounds: np.ndarray) -> Segments:
    """Cut segments at window boundaries so every piece lies inside one window."""
    if len(bounds) == 0 or len(s.a) == 0:
        return s
    parts = []
    while len(s.a):
        k = np.searchsorted(bounds, s.a, "right")
        cut = np.where(k < len(bounds), bounds[np.minimum(k, len(bounds) - 1)], np.inf)
        crosses = s.b > cut
        head = s.take(~crosses)
        parts.append(head)
        if not crosses.any():
            break
        first = s.take(crosses)
        c = cut[crosses]
        parts.append(Segments(first.a, c, first.rho, first.owner, first.cls))
        s = Segments(c, first.b, first.rho, first.owner, first.cls)
    return Segments.concat(parts)


def _segments(req: dict[str, np.ndarray], rows: np.ndarray, method: str,
              prefill_weight: float) -> tuple[Segments, Segments]:
    """Weighted segments, and time segments (ρ = 1) for what is shared by time overlap.

    Under ``work`` the time segments are only the phases that did no measurable work, which
    is what the fallback needs; under the other methods, each request's whole active span.
    """
    sched, fin = req["scheduled_s"][rows], req["finished_s"][rows]
    first = req["first_token_s"][rows]
    first = np.clip(np.where(np.isnan(first), sched, first), sched, fin)
    owner, cls = rows, req["cls"][rows]
    if method != "work":
        time = Segments(sched, np.maximum(fin, sched + MIN_SEGMENT_S), np.ones(len(rows)),
                        owner, cls)
        return time.take(np.zeros(len(rows), bool)), time
    pf_b = np.maximum(first, sched + MIN_SEGMENT_S)
    dc_b = np.maximum(fin, first + MIN_SEGMENT_S)
    pf = Segments(sched, pf_b, req["prefill_tokens"][rows] * prefill_weight / (pf_b - sched),
                  owner, cls)
    dc = Segments(first, dc_b, req["decode_tokens"][rows] / (dc_b - first), owner, cls)
    work = Segments.concat([pf, dc])
    idle = work.take(work.rho <= 0)
    return work.take(work.rho > 0), Segments(idle.a, idle.b, np.ones(len(idle.a)), idle.owner,
                                             idle.cls)


@dataclass
class Result:
    per_segment: pa.Table  # req_idx, gpu_idx, window, gpu_seconds, energy_j
    per_window: pa.Table  # gpu_idx, window, measured and bucketed seconds and joules


BUCKETS = (*CLASSES, "preempted", "model_loading", "idle", "unaccounted")
UNACCOUNTED_UTILIZATION = 0.05


def attribute(intervals: pa.Table, requests: pa.Table, placements: pa.Table, *,
              recompute: pa.Table | None = None, loading: pa.Table | None = None,
              method: str = "work", prefill_weight: float = 0.25) -> Result:
    """Split ``intervals`` among ``requests`` placed by ``placements`` (integer keys only).

    ``intervals``: gpu_idx (unsigned), t0, t1, measured_s, measured_j, utilization, window
    (an integer label that never decreases with time, e.g. epoch hour); contiguous per GPU,
    in any order. ``requests``: req_idx (0..N-1, in order), class_idx (index in CLASSES),
    scheduled_s, first_token_s, finished_s, prefill_tokens, decode_tokens.
    ``placements``: req_idx, gpu_idx. GPU keys are any unsigned integers (hashes).
    ``recompute``: gpu_idx, t0, t1, tokens (prompt tokens recomputed in [t0, t1)).
    ``loading``: gpu_idx, t0, t1 (an engine on that GPU starting up).
    """
    if method not in METHODS:
        raise ValueError(f"attribution method {method!r} is not one of {METHODS}")
    def col(t: pa.Table, c: str, dtype: type = float) -> np.ndarray:
        return np.asarray(t[c].to_numpy(zero_copy_only=False), dtype=dtype)

    req = {c: col(requests, c) for c in (
        "scheduled_s", "first_token_s", "finished_s", "prefill_tokens", "decode_tokens")}
    req["cls"] = col(requests, "class_idx", np.int64)
    p_req, p_gpu = col(placements, "req_idx", np.int64), col(placements, "gpu_idx", np.uint64)
    extra = {name: {c: col(t, c, np.uint64 if c == "gpu_idx" else float) for c in t.column_names}
             for name, t in (("recompute", recompute), ("loading", loading)) if t is not None}
    iv = {c: col(intervals, c) for c in ("t0", "t1", "measured_s", "measured_j", "utilization")}
    iv["window"] = col(intervals, "window", np.int64)
    # Group intervals by GPU without sorting 64-bit keys: the few distinct keys (found at the
    # places the key changes) get dense numbers, which numpy's stable sort radix-sorts.
    keys = col(intervals, "gpu_idx", np.uint64)
    gpus = np.unique(np.r_[keys[:1], keys[1:][keys[1:] != keys[:-1]]])
    dense = np.searchsorted(gpus, keys).astype(np.uint16 if len(gpus) <= 1 << 16 else np.int64)
    order = np.argsort(dense, kind="stable")
    edges = np.r_[0, np.cumsum(np.bincount(dense, minlength=len(gpus)))]

    def one(j: int) -> tuple[dict, dict]:
        rows = order[edges[j]:edges[j + 1]]
        g = {k: v[rows] for k, v in iv.items()}
        if np.any(np.diff(g["t0"]) < 0):  # put this GPU's intervals in time order
            by_time = np.argsort(g["t0"], kind="stable")
            g = {k: v[by_time] for k, v in g.items()}
        w_idx = g["window"]
        grid = Grid(g["t0"], g["t1"], g["measured_s"], g["measured_j"], w_idx)
        cuts = grid.t[grid.bounds[1:-1]]
        work, time = _segments(req, p_req[p_gpu == gpus[j]], method, prefill_weight)
        if method == "work" and "recompute" in extra:
            work = Segments.concat([work, _overhead(extra["recompute"], gpus[j],
                                                    prefill_weight, PREEMPTED)])
        seg, active = _one_gpu(grid, _split_at(work, cuts), _split_at(time, cuts), method)
        seg["gpu_idx"] = np.full(len(seg["req_idx"]), gpus[j])
        seg["window"] = w_idx[seg.pop("start")]
        loading = np.zeros(grid.m)
        if "loading" in extra:
            up, ua, ub = grid.clip(_overhead(extra["loading"], gpus[j]))
            loading = np.clip(_ratio(grid.spread(up, ua, ub), grid.dt), 0.0, 1.0)
        return seg, _windows(grid, np.nan_to_num(g["utilization"]), active, loading, seg,
                             gpus[j])

    # GPUs are independent and numpy releases the GIL in its loops: use both cores.
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        done = list(pool.map(one, range(len(gpus))))
    segs = [{k: v[d[0]["req_idx"] >= 0] for k, v in d[0].items()} for d in done]  # requests'
    return Result(_table(segs, SEGMENT_SCHEMA), _table([d[1] for d in done], WINDOW_SCHEMA))


def _overhead(rows: dict[str, np.ndarray], gpu: int, prefill_weight: float = 0.0,
              cls: int = 0) -> Segments:
    """Owner-less segments of one GPU: recomputed tokens at their rate, or start-up (ρ = 1)."""
    on = rows["gpu_idx"] == gpu
    a, b = rows["t0"][on], np.maximum(rows["t1"][on], rows["t0"][on] + MIN_SEGMENT_S)
    rho = rows["tokens"][on] * prefill_weight / (b - a) if "tokens" in rows else np.ones(len(a))
    return Segments(a, b, rho, np.full(len(a), -1), np.full(len(a), cls))


def _one_gpu(grid: Grid, work: Segments, time: Segments, method: str) -> tuple[dict, np.ndarray]:
    """Per-segment takes and the mask of intervals with a request active."""
    work, wa, wb = grid.clip(work)
    time, ta, tb = grid.clip(time)
    if method == "equal":
        n = grid.count(ta, tb)
        sec = grid.collect_equal(ta, tb, _ratio(grid.dt, n))
        jou = grid.collect_equal(ta, tb, _ratio(grid.de, n))
        return _seg(time, ta, sec, jou), n > 0
    t_total = grid.spread(time, ta, tb)
    if method == "time_overlap":
        sec = grid.collect(time, ta, tb, _ratio(grid.dt, t_total))
        jou = grid.collect(time, ta, tb, _ratio(grid.de, t_total))
        return _seg(time, ta, sec, jou), t_total > 0
    w_total = grid.spread(work, wa, wb)
    by_work = w_total > 0
    fallback = ~by_work & (t_total > 0)  # active requests, but no measurable work
    t_dt, t_de = np.where(fallback, grid.dt, 0.0), np.where(fallback, grid.de, 0.0)
    sec = np.concatenate([grid.collect(work, wa, wb, _ratio(grid.dt, w_total)),
                          grid.collect(time, ta, tb, _ratio(t_dt, t_total))])
    jou = np.concatenate([grid.collect(work, wa, wb, _ratio(grid.de, w_total)),
                          grid.collect(time, ta, tb, _ratio(t_de, t_total))])
    return (_seg(Segments.concat([work, time]), np.concatenate([wa, ta]), sec, jou),
            by_work | fallback)


def _seg(s: Segments, starts: np.ndarray, sec: np.ndarray, jou: np.ndarray) -> dict:
    return {"req_idx": s.owner, "cls": s.cls, "start": starts, "gpu_seconds": sec,
            "energy_j": jou}


def _windows(grid: Grid, util: np.ndarray, active: np.ndarray, loading: np.ndarray, seg: dict,
             gpu: int) -> dict:
    """Every interval's seconds and joules in one bucket, per window.

    Request classes and recomputation get the sum of their segments' takes; of an interval
    with no request active, the fraction ``loading`` is model loading and the rest idle, or
    unaccounted when the GPU reported work.
    """
    labels = grid.window[grid.bounds[:-1]]  # windows follow time: sorted
    n, k = len(labels), PREEMPTED + 1
    inverse = np.repeat(np.arange(n), np.diff(grid.bounds))
    cell = np.searchsorted(labels, seg["window"]) * k + seg["cls"]
    idle = ~active & (util <= UNACCOUNTED_UTILIZATION)
    out = {"gpu_idx": np.full(n, gpu), "window": labels}
    for unit, values, taken in (("s", grid.dt, seg["gpu_seconds"]),
                                ("j", grid.de, seg["energy_j"])):
        out[f"measured_{unit}"] = np.bincount(inverse, values, minlength=n)
        by_class = np.bincount(cell, taken, minlength=n * k).reshape(n, k)
        for i, c in enumerate((*CLASSES, "preempted")):
            out[f"{c}_{unit}"] = by_class[:, i]
        free = np.where(active, 0.0, values)
        out[f"model_loading_{unit}"] = np.bincount(inverse, free * loading, minlength=n)
        rest = free * (1.0 - loading)
        out[f"idle_{unit}"] = np.bincount(inverse, np.where(idle, rest, 0.0), minlength=n)
        out[f"unaccounted_{unit}"] = np.bincount(inverse, np.where(idle, 0.0, rest),
                                                 minlength=n)
    return out


SEGMENT_SCHEMA = pa.schema([("req_idx", pa.int64()), ("gpu_idx", pa.uint64()),
                            ("window", pa.int64()), ("gpu_seconds", pa.float64()),
                            ("energy_j", pa.float64())])
WINDOW_SCHEMA = pa.schema([("gpu_idx", pa.uint64()), ("window", pa.int64())]
                          + [(f"{b}_{u}", pa.float64()) for u in ("s", "j")
                             for b in ("measured", *BUCKETS)])


def _table(parts: list[dict], schema: pa.Schema) -> pa.Table:
    if not parts:
        return schema.empty_table()
    return pa.concat_tables([pa.table({f.name: p[f.name] for f in schema}, schema=schema)
                             for p in parts])
