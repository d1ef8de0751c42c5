"""When requests arrive, and how long they are: daily shapes, bursts, heavy-tailed lengths.

Arrivals are a Poisson process whose rate follows the app's daily shape (UTC): ``business``
peaks 09–17 on weekdays and runs at a quarter on weekends, ``evening`` peaks 19–23 every
day, ``flat`` is its peak all day; a batch app runs at its peak inside its ``window`` hours
and not at all outside. Bursts (flash crowds) start as a Poisson process and multiply the rate
for their length. The history generator draws a whole week at once (per minute, vectorised);
the live load generator asks for the rate at each moment.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

import numpy as np

from simulator.scenario import App, Lengths

# Share of the peak rate in each UTC hour.
_BUSINESS = (0.04, 0.03, 0.03, 0.03, 0.04, 0.06, 0.12, 0.3, 0.65, 0.9, 1.0, 1.0,
             0.8, 0.9, 1.0, 0.95, 0.85, 0.6, 0.35, 0.22, 0.15, 0.1, 0.07, 0.05)
_EVENING = (0.35, 0.2, 0.1, 0.06, 0.04, 0.04, 0.06, 0.12, 0.2, 0.28, 0.32, 0.36,
            0.42, 0.4, 0.38, 0.38, 0.42, 0.5, 0.65, 0.85, 1.0, 1.0, 0.85, 0.6)
_WEEKEND = {"business": 0.25, "evening": 1.0, "flat": 1.0}


def hourly_share(app: App, t: float) -> float:
    """The app's rate at epoch second ``t`` as a share of its peak, before bursts."""
    hour = int(t // 3600) % 24
    if app.window is not None:
        start, end = app.window
        inside = start <= hour < end if start < end else (hour >= start or hour < end)
        return 1.0 if inside else 0.0
    base = {"business": _BUSINESS, "evening": _EVENING}.get(app.daily)
    share = 1.0 if base is None else base[hour]
    weekday = (int(t // 86400) + 3) % 7  # 1970-01-01 was a Thursday; 5, 6 = Sat, Sun
    return share * (_WEEKEND[app.daily] if weekday >= 5 else 1.0)


def burst_windows(app: App, start: float, end: float,
                  rng: random.Random) -> list[tuple[float, float]]:
    """Flash crowds in [start, end): (from, to) pairs."""
    if app.bursts is None:
        return []
    out = []
    t = start
    mean_gap = 86400.0 / app.bursts.per_day
    while True:
        t += rng.expovariate(1.0 / mean_gap)
        if t >= end:
            return out
        out.append((t, t + app.bursts.minutes * 60))


def arrival_times(app: App, start: float, end: float, rng: random.Random) -> np.ndarray:
    """Every arrival of ``app`` in [start, end), sorted: per-minute Poisson counts, uniform
    within the minute (the rate is piecewise constant per minute)."""
    minutes = np.arange(math.floor(start / 60) * 60, end, 60.0)
    rate = np.array([hourly_share(app, m) for m in minutes]) * app.peak_per_min
    for a, b in burst_windows(app, start, end, rng):
        rate[(minutes + 60 > a) & (minutes < b)] *= app.bursts.factor  # type: ignore[union-attr]
    np_rng = np.random.default_rng(rng.getrandbits(63))
    counts = np_rng.poisson(rate)
    t = np.repeat(minutes, counts) + np_rng.random(int(counts.sum())) * 60.0
    t = np.sort(t)
    return t[(t >= start) & (t < end)]


def lognormal(rng: random.Random, d: Lengths, cap: int) -> int:
    return max(1, min(cap, int(rng.lognormvariate(math.log(d.median), d.sigma))))


@dataclass(frozen=True)
class Draw:
    """One request of an app, before it is sent."""

    prompt_tokens: int
    max_tokens: int  # what the client asks for; the reply ends there at the latest
    output_tokens: int  # what the model will produce (≤ max_tokens)
    stream: bool
    abort_after: int | None  # a streaming client hangs up after this many tokens
    bad: bool  # malformed or over the context window: answered 400


def draw_request(app: App, rng: random.Random, max_model_len: int) -> Draw:
    """Lengths from the app's lognormals, capped to the model's context window."""
    prompt = lognormal(rng, app.prompt, max_model_len - (0 if app.kind == "embeddings" else 16))
    if app.kind == "embeddings":
        return Draw(prompt, 0, 0, False, None, rng.random() < app.error_share)
    room = max_model_len - prompt
    max_tokens = min(room, lognormal(rng, app.output, room) * 2)
    output = min(max_tokens, lognormal(rng, app.output, room))
    stream = rng.random() < app.stream_share
    abort_after = None
    if stream and output > 2 and rng.random() < app.abort_share:
        abort_after = rng.randint(1, output - 1)
    return Draw(prompt, max_tokens, output, stream, abort_after, rng.random() < app.error_share)
