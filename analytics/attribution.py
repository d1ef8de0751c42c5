"""Splits every measured GPU interval among the requests active in it, instant by instant.

A request occupies its GPUs as *segments*: its prefill phase [scheduled, first token) and its
decode phase [first token, finished), each with a constant rate ρ. The methods:

- ``gpu_time`` (default): each instant is split as an engine step's time divides, by what
  each part asks of the GPU. A prefill's compute asks c × prompt tokens / prefill seconds,
  c being the GPU's compute time per prompt token, estimated from the run's own requests
  (the slope through the fastest prefills, which ran nearly alone). The step every active
  sequence takes part in asks its own time while the prefills' compute hides under its
  reads, less once that compute makes the step compute-bound (a roofline, ``_step_asks``).
  The step's time is fitted per GPU from the decodes' own pace against their company
  (``_decode_step_model``): a fixed part shared by every sequence in the step, a part per
  sequence, and each decode's KV context read, in units of its model's weights (the
  weights are read once for the batch, each sequence's KV by itself). With too few decodes
  to fit it, prefills hold their compute's share and the decodes share the rest equally.
- ``work``: prompt tokens × prefill weight per prefill second and output tokens per decode
  second, both in output-token units, sharing each instant in proportion.
- ``time_overlap``: ρ = 1 over [scheduled, finished): every active request equally.
- ``kv_memory``: by KV-cache memory held, for GPUs whose limit is memory, not compute: a
  prefill holds half its new prompt on average (its KV grows from 0), a decode its new
  prompt and half its reply; prefix-cache hits are shared blocks and credited to no one.

bench/attribution_accuracy.py measures them against the simulator's step-by-step truth
(bench/RESULTS.md): ``gpu_time`` is the most accurate and the default.

**Occupancy.** The boundaries of all segments and sample intervals cut a GPU's timeline into
*pieces*; within a piece the set of active segments is constant. A piece with a request
active is *occupied*, and its seconds go to the segments active in it by their rates.
So a request never gets more GPU-seconds from an interval than it overlapped it: a 3 ms
request alone in a 25 s interval gets 3 ms, and the 24.997 s nobody used are idle, model
loading or unaccounted. A piece where requests are active but none did measurable work
(phases with no tokens, e.g. a failed request) is shared by time instead.

**Energy.** An interval's joules are measured only as a whole. Its unoccupied part is
charged the GPU's own idle power, measured as the median power of this run's intervals in
which the GPU had nothing active and reported no work (never more than a time-proportional
share of the interval's joules; time-proportional when the GPU was never seen idle, or when
that part is model loading or unaccounted work, whose power is unknown). The rest of the
interval's joules are spread evenly over its occupied seconds and go with them. Both sides
are computed from the same interval totals, so Σ attributed + unattributed = measured
exactly, per GPU and window, for seconds and joules.

Prompt tokens an engine recomputed after preempting requests are owner-less segments of
prefill work over the scrape interval that counted them, booked as *preempted* (not under
``time_overlap``). They share the pieces where requests are active like a prefill; in a
piece with none active they hold the share the GPU reported busy (its utilization), the
rest being free.
An engine starting up (process start until it served) holds its GPUs: the unoccupied part of
a piece in a start-up window is *model loading*. Gaps between intervals (a quarantined or
missing sample) attribute nothing.

Cost: O((N + M) log(N + M)) per GPU for N segments and M intervals: each segment's take is
the sum of its own pieces (``Timeline.take``), vectorised with numpy. Segments shorter than 1 ms
are widened to 1 ms so a phase of zero measured length (a prefix-cache hit) still carries its
tokens; segments are cut at window (hour) boundaries so results sum per window.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from inferledger.vocabulary import BUCKETS, CLASSES, METHODS

PREEMPTED = len(CLASSES)  # the class index of recomputation segments (no owner)
MIN_SEGMENT_S = 1e-3
UNACCOUNTED_UTILIZATION = 0.05  # utilization above what requests explain: unaccounted work


@dataclass
class Segments:
    """Per-GPU segments: start, end, rate, owner (row in the request table), class index,
    and (decodes under ``gpu_time``) the KV context read per step, in units of the model's
    weights (0: not known, or not a decode)."""

    a: np.ndarray
    b: np.ndarray
    rho: np.ndarray
    owner: np.ndarray
    cls: np.ndarray
    ctx: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.ctx is None:
            self.ctx = np.zeros(len(self.a))

    def take(self, mask: np.ndarray) -> Segments:
        return Segments(self.a[mask], self.b[mask], self.rho[mask], self.owner[mask],
                        self.cls[mask], self.ctx[mask])

    def between(self, a: np.ndarray, b: np.ndarray) -> Segments:
        """The same segments over other bounds."""
        return Segments(a, b, self.rho, self.owner, self.cls, self.ctx)

    @staticmethod
    def concat(parts: list[Segments]) -> Segments:
        return Segments(*(np.concatenate([getattr(p, f) for p in parts])
                          for f in ("a", "b", "rho", "owner", "cls", "ctx")))


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    out = np.zeros(np.broadcast(num, den).shape)
    np.divide(num, den, out=out, where=den > 0)
    return out


class Timeline:
    """One GPU's sample intervals and the pieces every segment boundary cuts them into."""

    def __init__(self, g: dict[str, np.ndarray], cuts: list[np.ndarray]) -> None:
        self.t0, self.t1 = g["t0"], g["t1"]
        self.dt, self.de = g["measured_s"], g["measured_j"]
        self.util = np.nan_to_num(g["utilization"])
        self.window = g["window"]
        self.m = len(self.t0)
        starts = np.flatnonzero(np.r_[True, self.window[1:] != self.window[:-1]])
        self.labels = self.window[starts]  # windows follow time: sorted
        self.cuts = self.t0[starts[1:]]  # where a new window begins
        self.lo, self.hi = self.t0[0], self.t1[-1]
        # Every boundary once: the starts, the ends that are not the next start (a gap), and
        # the segments'.
        gap_ends = self.t1[np.r_[self.t1[:-1] < self.t0[1:], True]]
        self.e = np.unique(np.concatenate([self.t0, gap_ends, *cuts]))
        self.length = np.diff(self.e)
        # Each piece's interval: the last interval start at or before it (every t0 is an
        # event, so a running count of the starts finds it without a search per piece).
        starts_at = np.zeros(len(self.e), dtype=np.int64)
        np.add.at(starts_at, np.searchsorted(self.e, self.t0), 1)
        k = np.cumsum(starts_at)[:-1] - 1
        inside = self.e[:-1] < self.t1[k]  # False in a gap between intervals
        self.iv = np.where(inside, k, -1)  # each piece's interval, -1 in a gap
        # Pieces measure the interval's own seconds: scaled so they sum to measured_s even
        # where it is not exactly t1 − t0 in floating point (epoch seconds hold ~2e-7 s).
        scale = _ratio(self.dt, self.t1 - self.t0)[np.maximum(k, 0)]
        self.len_in = np.where(inside, self.length * scale, 0.0)
        self.win_of_piece = np.searchsorted(self.cuts, self.e[:-1], "right")
        self.win_of_interval = np.searchsorted(self.labels, self.window)

    def clip(self, s: Segments) -> tuple[Segments, np.ndarray, np.ndarray]:
        """Segments inside the sampled range, and the pieces [ka, kb) each covers."""
        a, b = np.clip(s.a, self.lo, self.hi), np.clip(s.b, self.lo, self.hi)
        keep = np.flatnonzero(b > a)
        keep = keep[np.argsort(a[keep], kind="stable")]  # searches in time order: cache-friendly
        s = s.take(keep).between(a[keep], b[keep])
        return s, np.searchsorted(self.e, s.a), np.searchsorted(self.e, s.b)

    def per_piece(self, ka: np.ndarray, kb: np.ndarray, w: np.ndarray | None = None
                  ) -> np.ndarray:
        """Σ w (or the count) of the segments covering each piece."""
        n = len(self.length) + 1
        if w is None:
            d = np.bincount(ka, minlength=n) - np.bincount(kb, minlength=n)
            return np.cumsum(d)[:-1].astype(float)
        d = np.bincount(ka, w, minlength=n) - np.bincount(kb, w, minlength=n)
        return np.cumsum(d)[:-1]

    def take(self, ka: np.ndarray, kb: np.ndarray, h: np.ndarray) -> np.ndarray:
        """Σ h over the pieces [ka, kb) of each segment, summed piece by piece.

        Not as differences of running sums: a piece whose segments have a tiny rate has a
        huge h, and its rounding would swamp every later difference in its window. Segments
        in order of their first piece make the sums between them (reduceat's odd results,
        thrown away) cover each piece at most once, so this costs O(pieces + Σ segment
        lengths in pieces).
        """
        out = np.zeros(len(ka))
        rows = np.flatnonzero(ka < kb)
        if len(rows) == 0:
            return out
        rows = rows[np.argsort(ka[rows], kind="stable")]
        bounds = np.empty(2 * len(rows), dtype=np.intp)
        bounds[0::2], bounds[1::2] = ka[rows], kb[rows]
        out[rows] = np.add.reduceat(np.r_[h, 0.0], bounds)[0::2]
        return out

    def by_interval(self, x: np.ndarray) -> np.ndarray:
        """Σ of a per-piece quantity over each interval's pieces."""
        ok = self.iv >= 0
        return np.bincount(self.iv[ok], x[ok], minlength=self.m)

    def by_window(self, x: np.ndarray) -> np.ndarray:
        """Σ of a per-interval quantity over each window."""
        return np.bincount(self.win_of_interval, x, minlength=len(self.labels))


def _split_at(s: Segments, bounds: np.ndarray) -> Segments:
    """Cut segments at window boundaries so every piece lies inside one window."""
    if len(bounds) == 0 or len(s.a) == 0:
        return s
    parts = []
    while len(s.a):
        k = np.searchsorted(bounds, s.a, "right")
        cut = np.where(k < len(bounds), bounds[np.minimum(k, len(bounds) - 1)], np.inf)
        crosses = s.b > cut
        parts.append(s.take(~crosses))
        if not crosses.any():
            break
        first = s.take(crosses)
        c = cut[crosses]
        parts.append(first.between(first.a, c))
        s = first.between(c, first.b)
    return Segments.concat(parts)


def _segments(req: dict[str, np.ndarray], rows: np.ndarray, method: str,
              prefill_weight: float, cost_per_token: float | None
              ) -> tuple[Segments, Segments, Segments]:
    """Prefill and decode segments with their rates, and time segments (ρ = 1) for what is
    shared by time overlap.

    Under ``work`` and ``gpu_time`` the time segments are only the phases that did no
    measurable work, which is what the fallback needs; under ``time_overlap``, each request's
    whole active span.
    """
    sched, fin = req["scheduled_s"][rows], req["finished_s"][rows]
    first = req["first_token_s"][rows]
    first = np.clip(np.where(np.isnan(first), sched, first), sched, fin)
    owner, cls = rows, req["cls"][rows]
    none = Segments(*(np.zeros(0, dtype=x) for x in (float, float, float, np.int64, np.int64)))
    if method == "time_overlap":
        return none, none, Segments(sched, np.maximum(fin, sched + MIN_SEGMENT_S),
                                    np.ones(len(rows)), owner, cls)
    pf_b = np.maximum(first, sched + MIN_SEGMENT_S)
    dc_b = np.maximum(fin, first + MIN_SEGMENT_S)
    tokens = req["prefill_tokens"][rows]
    pf_rate = _prefill_rate(tokens, pf_b - sched, method, prefill_weight, cost_per_token)
    pf = Segments(sched, pf_b, pf_rate, owner, cls)
    out = req["decode_tokens"][rows]
    # gpu_time: ρ is the decode's steps per second (one token each after the first); ctx its
    # mean KV context over the reply, in weights.
    if method == "gpu_time":
        steps = np.maximum(out - 1, 1) / (dc_b - first)
        dc = Segments(first, dc_b, np.where(out > 0, steps, 0.0), owner, cls,
                      req["context"][rows])
    elif method == "kv_memory":  # KV held: the new prompt and, on average, half the reply
        dc = Segments(first, dc_b, np.where(out > 0, tokens + out / 2, 0.0), owner, cls)
    else:
        dc = Segments(first, dc_b, out / (dc_b - first), owner, cls)
    idle = Segments.concat([pf.take(pf.rho <= 0), dc.take(dc.rho <= 0)])
    return pf.take(pf.rho > 0), dc.take(dc.rho > 0), Segments(
        idle.a, idle.b, np.ones(len(idle.a)), idle.owner, idle.cls)


def _prefill_rate(tokens: np.ndarray, seconds: np.ndarray, method: str, prefill_weight: float,
                  cost_per_token: float | None) -> np.ndarray:
    """``work``: prompt tokens × weight per second, in output-token units. ``gpu_time``: the
    share of the GPU the prefill held, its tokens' compute time over its duration (≤ 1; a
    whole GPU when the compute time per token is unknown)."""
    if method == "work":
        return tokens * prefill_weight / seconds
    if method == "kv_memory":  # the KV a prefill holds grows from 0 to its tokens
        return tokens / 2.0
    if cost_per_token is None:
        return np.where(tokens > 0, 1.0, 0.0)
    return np.minimum(1.0, cost_per_token * tokens / seconds)


PREFILL_SAMPLE_TOKENS = 64  # prompts at least this long estimate a GPU's compute per token
PREFILL_QUANTILE = 0.05


def prefill_cost_per_token(req: dict[str, np.ndarray], rows: np.ndarray) -> float | None:
    """GPU-seconds one prompt token costs, from the requests ``rows`` themselves. A prefill
    batched with others, or waiting on decodes in its steps, takes longer per token than its
    own compute; the fastest ones (the lowest 5% of prefill seconds per token, over prompts
    of 64 tokens or more) ran nearly alone, in seconds ≈ a step's fixed cost + c × tokens. A
    line through them gives c as its slope, without the fixed cost a short prompt's time
    per token carries; where it cannot be drawn (all one length, or a negative slope or
    intercept), their slowest time per token is taken. ``None`` with fewer than ten such
    prompts."""
    sched = req["scheduled_s"][rows]
    first = np.where(np.isnan(req["first_token_s"][rows]), sched, req["first_token_s"][rows])
    tokens, seconds = req["prefill_tokens"][rows], first - sched
    ok = (tokens >= PREFILL_SAMPLE_TOKENS) & (seconds > 0)
    if ok.sum() < 10:
        return None
    tokens, seconds = tokens[ok], seconds[ok]
    per = seconds / tokens
    low = float(np.quantile(per, PREFILL_QUANTILE))
    fast = per <= low
    if fast.sum() >= 10 and np.ptp(tokens[fast]) > 0:
        slope, intercept = np.polyfit(tokens[fast], seconds[fast], 1)
        if slope > 0 and intercept >= 0:
            return float(slope)
    return low


def _overhead(rows: dict[str, np.ndarray], gpu: int, method: str = "work",
              prefill_weight: float = 0.0, cost_per_token: float | None = None,
              cls: int = 0) -> Segments:
    """Owner-less segments of one GPU: recomputed tokens at their prefill rate, or start-up
    (ρ = 1)."""
    on = rows["gpu_idx"] == gpu
    a, b = rows["t0"][on], np.maximum(rows["t1"][on], rows["t0"][on] + MIN_SEGMENT_S)
    rho = _prefill_rate(rows["tokens"][on], b - a, method, prefill_weight, cost_per_token) \
        if "tokens" in rows else np.ones(len(a))
    return Segments(a, b, rho, np.full(len(a), -1), np.full(len(a), cls))


@dataclass
class Result:
    per_segment: pa.Table  # req_idx, gpu_idx, window, gpu_seconds, energy_j, prompt_*, …
    per_window: pa.Table  # gpu_idx, window, measured and bucketed seconds and joules


def attribute(intervals: pa.Table, requests: pa.Table, placements: pa.Table, *,
              recompute: pa.Table | None = None, loading: pa.Table | None = None,
              method: str = "work", prefill_weight: float = 0.25) -> Result:
    """Split ``intervals`` among ``requests`` placed by ``placements`` (integer keys only).

    ``intervals``: gpu_idx (unsigned), t0, t1, measured_s, measured_j, utilization, window
    (an integer label that never decreases with time, e.g. epoch hour); in any order, with
    gaps allowed (nothing is attributed in a gap). ``requests``: req_idx (0..N-1, in order),
    class_idx (index in CLASSES), scheduled_s, first_token_s, finished_s, prefill_tokens,
    decode_tokens. ``placements``: req_idx, gpu_idx. GPU keys are any unsigned integers.
    ``recompute``: gpu_idx, t0, t1, tokens (prompt tokens recomputed in [t0, t1)).
    ``loading``: gpu_idx, t0, t1 (an engine on that GPU starting up).
    """
    if method not in METHODS:
        raise ValueError(f"attribution method {method!r} is not one of {METHODS}")

    def col(t: pa.Table, c: str, dtype: type = float) -> np.ndarray:
        return np.asarray(t[c].to_numpy(zero_copy_only=False), dtype=dtype)

    req = {c: col(requests, c) for c in (
        "scheduled_s", "first_token_s", "finished_s", "prefill_tokens", "decode_tokens")}
    req["context"] = col(requests, "context") if "context" in requests.column_names \
        else np.zeros(requests.num_rows)
    req["cls"] = col(requests, "class_idx", np.int64)
    p_req, p_gpu = col(placements, "req_idx", np.int64), col(placements, "gpu_idx", np.uint64)
    extra = {name: {c: col(t, c, np.uint64 if c == "gpu_idx" else float) for c in t.column_names}
             for name, t in (("recompute", recompute), ("loading", loading)) if t is not None}
    iv = {c: col(intervals, c) for c in ("t0", "t1", "measured_s", "measured_j", "utilization")}
    iv["window"] = col(intervals, "window", np.int64)
    pooled = prefill_cost_per_token(req, np.unique(p_req)) if method == "gpu_time" else None
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
        starts = np.flatnonzero(np.r_[True, g["window"][1:] != g["window"][:-1]])
        cuts = g["t0"][starts[1:]]
        mine = p_req[p_gpu == gpus[j]]
        cost = None
        if method == "gpu_time":
            cost = prefill_cost_per_token(req, mine)
            cost = pooled if cost is None else cost
        pf, dc, time = _segments(req, mine, method, prefill_weight, cost)
        over = _overhead(extra["recompute"], gpus[j], method, prefill_weight, cost, PREEMPTED) \
            if method != "time_overlap" and "recompute" in extra else pf.take(np.zeros(0, int))
        load = _overhead(extra["loading"], gpus[j]) if "loading" in extra \
            else pf.take(np.zeros(0, int))
        pf, dc, time, over = (_split_at(x, cuts) for x in (pf, dc, time, over))
        span = (g["t0"][0], g["t1"][-1])
        ends = [np.clip(x, *span) for z in (pf, dc, time, over, load) for x in (z.a, z.b)]
        line = Timeline(g, ends)
        seg, win = _one_gpu(line, pf, dc, time, over, load, method)
        seg["gpu_idx"] = np.full(len(seg["req_idx"]), gpus[j])
        win["gpu_idx"] = np.full(len(win["window"]), gpus[j])
        return seg, win

    # GPUs are independent and numpy releases the GIL in its loops: use both cores.
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        done = list(pool.map(one, range(len(gpus))))
    segs = [{k: v[d[0]["req_idx"] >= 0] for k, v in d[0].items()} for d in done]  # requests'
    return Result(_table(segs, SEGMENT_SCHEMA), _table([d[1] for d in done], WINDOW_SCHEMA))


def _one_gpu(line: Timeline, pf: Segments, dc: Segments, time: Segments, over: Segments,
             load: Segments, method: str) -> tuple[dict, dict]:
    """Per-segment takes and per-window buckets of one GPU."""
    pf, pa_, pb = line.clip(pf)
    dc, da, db = line.clip(dc)
    time, ta, tb = line.clip(time)
    over, oa, ob = line.clip(over.take(over.rho > 0))
    load, la, lb = line.clip(load)
    n_p, n_d, n_t, n_o = (line.per_piece(a, b) for a, b in ((pa_, pb), (da, db), (ta, tb),
                                                            (oa, ob)))
    inside = line.iv >= 0
    util = np.where(inside, line.util[np.maximum(line.iv, 0)], 0.0)
    served = (n_p + n_d + n_t > 0) & inside
    # Recomputation with no request active holds the share of the piece the GPU said it was
    # busy (utilization), not the piece: it is GPU work, but not all of that interval's.
    alone = ~served & (n_o > 0) & inside & (util > UNACCOUNTED_UTILIZATION)
    occupied = served | alone

    def rate(n: np.ndarray, a: np.ndarray, b: np.ndarray, w: np.ndarray) -> np.ndarray:
        # Running sums of +w and −w leave rounding residue where nothing covers: the count
        # zeroes it.
        return np.where(occupied & (n > 0), line.per_piece(a, b, w), 0.0)

    p_rate = rate(n_p, pa_, pb, pf.rho) + rate(n_o, oa, ob, over.rho)
    d_rate = rate(n_d, da, db, dc.rho)
    by_work = occupied & (p_rate + d_rate > 0)
    busy = np.where(served, line.len_in, np.where(alone, line.len_in * np.minimum(util, 1.0),
                                                  0.0))
    loading = np.where(~occupied & (line.per_piece(la, lb) > 0), line.len_in, 0.0)

    busy_s, load_s = line.by_interval(busy), line.by_interval(loading)
    free_s = np.maximum(line.dt - busy_s - load_s, 0.0)
    unacc = line.util > _ratio(busy_s, line.dt) + UNACCOUNTED_UTILIZATION
    idle_s, unacc_s = np.where(unacc, 0.0, free_s), np.where(unacc, free_s, 0.0)
    share = _ratio(line.de, line.dt)  # time-proportional joules per second
    quiet = (busy_s == 0) & (load_s == 0) & ~unacc & (line.dt > 0)
    idle_w = float(np.median(share[quiet])) if quiet.any() else np.inf
    # An interval nobody occupied keeps all its joules in its free buckets.
    idle_j = idle_s * np.where(busy_s > 0, np.minimum(share, idle_w), share)
    load_j, unacc_j = load_s * share, unacc_s * share
    busy_j = np.where(busy_s > 0, np.maximum(line.de - idle_j - load_j - unacc_j, 0.0), 0.0)
    piece_j = np.where(occupied, _ratio(busy_j, busy_s)[np.maximum(line.iv, 0)], 0.0)
    # Each occupied piece's seconds (and joules) go to its segments: by rate where work was
    # done, else equally among the time segments. Under ``work`` one rate shares the piece.
    if method == "gpu_time":
        # An instant is split as a step's time is, by what each part asks of the GPU: the
        # prefills' compute (ρ, a share of the instant), and the step every sequence in it
        # takes part in (``_step_asks``), which divides by the fitted step model: its fixed
        # part equally among the sequences, decoding or prefilling, each sequence's own part,
        # and each decode's context read.
        ctx = rate(n_d, da, db, dc.ctx)
        members = n_d + n_p
        fit = _decode_step_model(line, dc, da, db, members, ctx, p_rate)
        if fit is None:  # too few decodes to tell: prefills hold their share, decodes the rest
            members, step_s, fixed, per_seq, per_ctx = n_d, np.ones(len(busy)), 1.0, 0.0, 0.0
            asks = np.where(n_d > 0, np.maximum(1.0 - p_rate, 0.0), 0.0)
        else:
            fixed, per_seq, per_ctx = fit
            step_s = fixed + per_seq * members + per_ctx * ctx
            asks = _step_asks(step_s, max(fixed - per_ctx, 0.0) + per_seq * members, members,
                              p_rate)
        h_p = _ratio(busy, p_rate + asks)
        in_step = _ratio(busy * _ratio(asks, p_rate + asks), step_s)
        h_d, h_ctx = in_step * (_ratio(fixed, members) + per_seq), in_step * per_ctx
        # a prefill's place in the step, as a decode's without its context (none without a fit)
        h_m = h_d if fit is not None else np.zeros(len(busy))
    else:
        h_p = h_d = _ratio(busy, p_rate + d_rate)
        h_m = h_ctx = np.zeros(len(busy))
    h_t = _ratio(np.where(by_work, 0.0, busy), n_t)
    segs = Segments.concat([pf, over, dc, time])
    # Each segment's take: Σ over its pieces of h per unit of rate (ρ), of h_m for a prefill's
    # and h_d for a decode's place in the step, and of h_ctx per unit of a decode's context.
    parts = ((pa_, pb, ((h_p, pf.rho), (h_m, np.ones(len(pa_))))), (oa, ob, ((h_p, over.rho),)),
             (da, db, ((h_d, dc.rho if method != "gpu_time" else np.ones(len(da))),
                       (h_ctx, dc.ctx))), (ta, tb, ((h_t, np.ones(len(ta))),)))
    takes = [[(rho * line.take(a, b, h), rho * line.take(a, b, h * piece_j)) for h, rho in hs]
             for a, b, hs in parts]
    sec, jou = (np.concatenate([sum(t[u] for t in ts) for ts in takes]) for u in (0, 1))
    # What the prompt's processing took (a prefill segment's whole take) and what reading a
    # decode's KV context took (its context term): the split of a request's cost between
    # its prompt, its context and its reply (mart_request_costs).
    zero = [np.zeros(len(a)) for a, *_ in parts]
    prompt_s, prompt_j = (np.concatenate([sum(t[u] for t in takes[0]), *zero[1:]])
                          for u in (0, 1))
    ctx_s, ctx_j = (np.concatenate([*zero[:2], takes[2][1][u], zero[3]]) for u in (0, 1))
    ka = np.concatenate([a for a, *_ in parts])
    seg = {"req_idx": segs.owner, "cls": segs.cls, "gpu_seconds": sec, "energy_j": jou,
           "prompt_seconds": prompt_s, "prompt_j": prompt_j, "context_read_seconds": ctx_s,
           "context_read_j": ctx_j, "window": line.labels[line.win_of_piece[ka]]}
    return seg, _windows(line, seg, {
        "model_loading": (load_s, load_j), "idle": (idle_s, idle_j),
        "unaccounted": (unacc_s, unacc_j)})


DECODE_SAMPLE_STEPS = 8  # decodes of at least this many steps fit the decode step
PREFILL_FREE = 0.05  # … those with prefills asking less than this share of their time
STEP_FIT_MIN = 20


def _decode_step_model(line: Timeline, dc: Segments, da: np.ndarray, db: np.ndarray,
                       members: np.ndarray, ctx: np.ndarray, p_rate: np.ndarray
                       ) -> tuple[float, float, float] | None:
    """A step's seconds on this GPU as ``fixed + per_seq × sequences + per_ctx × Σ context``
    (context in weights, so ``per_ctx`` is the weights' read and ``fixed − per_ctx`` the
    step's CPU time), fitted by least squares to the decodes' own mean step times against
    their mean company (the sequences and decode contexts of each piece). Decodes that met
    prefills are left out (their steps are longer for another reason), unless too few are
    left; a term fitted negative is dropped. ``None`` with fewer than 20 decodes of 8 steps
    or more."""
    seg = dc.b - dc.a
    steps = dc.rho * seg
    ok = steps >= DECODE_SAMPLE_STEPS
    if ok.sum() < STEP_FIT_MIN:
        return None
    mean = [line.take(da[ok], db[ok], v * line.length) / seg[ok]
            for v in (members, ctx, p_rate)]
    quiet = mean[2] < PREFILL_FREE
    rows = quiet if quiet.sum() >= STEP_FIT_MIN else np.ones(ok.sum(), dtype=bool)
    x = np.column_stack([np.ones(ok.sum()), mean[0], mean[1]])[rows]
    y = 1.0 / dc.rho[ok][rows]
    terms = [0, 1, 2]
    while True:
        coef, *_ = np.linalg.lstsq(x[:, terms], y, rcond=None)
        negative = [t for t, c in zip(terms, coef, strict=True) if c < 0 and t > 0]
        if not negative:
            break
        terms = [t for t in terms if t not in negative]
    fit = dict(zip(terms, coef.tolist(), strict=True))
    if fit[0] <= 0:
        return None
    return fit[0], fit.get(1, 0.0), fit.get(2, 0.0)


def _step_asks(step_s: np.ndarray, cpu: np.ndarray, members: np.ndarray, p_rate: np.ndarray
               ) -> np.ndarray:
    """What the step its sequences take part in asks of an instant, beside prefills asking
    ``p_rate`` of it (their compute); ``step_s`` is that step's time without the prefills'
    compute. A step is bound by the larger of its memory reads and its compute, plus its CPU
    time: while the prefills' compute hides under the reads, the step asks for all of its
    time (1); once it exceeds them the step is compute-bound, it grows to
    ``cpu / (1 − p_rate)``, and asks ``step_s`` over it: at most 1, falling to 0 as the
    prefills claim the whole GPU."""
    asks = np.where(cpu > 0, np.minimum(_ratio((1.0 - p_rate) * step_s, cpu), 1.0),
                    np.where(p_rate < 1.0, 1.0, 0.0))
    return np.where(members > 0, np.maximum(asks, 0.0), 0.0)


def _windows(line: Timeline, seg: dict, free: dict[str, tuple[np.ndarray, np.ndarray]]
             ) -> dict:
    """Every interval's seconds and joules in one bucket, per window: the request classes
    and recomputation get the sum of their segments' takes, the rest its free buckets."""
    n, k = len(line.labels), PREEMPTED + 1
    cell = np.searchsorted(line.labels, seg["window"]) * k + seg["cls"]
    out: dict[str, np.ndarray] = {"window": line.labels}
    for u, (measured, taken) in enumerate(((line.dt, seg["gpu_seconds"]),
                                           (line.de, seg["energy_j"]))):
        unit = "sj"[u]
        out[f"measured_{unit}"] = line.by_window(measured)
        by_class = np.bincount(cell, taken, minlength=n * k).reshape(n, k)
        for i, c in enumerate((*CLASSES, "preempted")):
            out[f"{c}_{unit}"] = by_class[:, i]
        for name, pair in free.items():
            out[f"{name}_{unit}"] = line.by_window(pair[u])
    return out


SEGMENT_SCHEMA = pa.schema([("req_idx", pa.int64()), ("gpu_idx", pa.uint64()),
                            ("window", pa.int64())]
                           + [(c, pa.float64()) for c in (
                               "gpu_seconds", "energy_j", "prompt_seconds", "prompt_j",
                               "context_read_seconds", "context_read_j")])
WINDOW_SCHEMA = pa.schema([("gpu_idx", pa.uint64()), ("window", pa.int64())]
                          + [(f"{b}_{u}", pa.float64()) for u in ("s", "j")
                             for b in ("measured", *BUCKETS)])


def _table(parts: list[dict], schema: pa.Schema) -> pa.Table:
    if not parts:
        return schema.empty_table()
    return pa.concat_tables([pa.table({f.name: p[f.name] for f in schema}, schema=schema)
                             for p in parts])
