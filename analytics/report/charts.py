"""The report's two charts as PNG bytes (matplotlib, no display): cost per day by model, and
how the GPU time of each day split into useful, wasted and idle."""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pandas as pd

from analytics.report.figures import WeeklyFigures
from inferledger.results.kpis import COLOURS


def _png(fig: plt.Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def cost_by_day(f: WeeklyFigures) -> bytes | None:
    if f.daily.empty:
        return None
    table = f.daily.pivot_table(index="day", columns="model", values="cost_usd",
                                aggfunc="sum").fillna(0.0)
    fig, ax = plt.subplots(figsize=(6.4, 2.8))
    table.index = pd.to_datetime(table.index).strftime("%a %d")
    table.plot.bar(stacked=True, ax=ax, width=0.8)
    ax.set_ylabel("USD attributed")
    ax.set_xlabel("")
    ax.tick_params(axis="x", rotation=0)
    ax.legend(fontsize=7, frameon=False)
    ax.spines[["top", "right"]].set_visible(False)
    return _png(fig)


def gpu_time_by_day(f: WeeklyFigures) -> bytes | None:
    if f.gpu_daily.empty:
        return None
    table = f.gpu_daily.set_index("day")[["useful", "wasted", "idle"]].fillna(0.0)
    table.index = pd.to_datetime(table.index).strftime("%a %d")
    fig, ax = plt.subplots(figsize=(6.4, 2.4))
    table.plot.bar(stacked=True, ax=ax, width=0.8, color=[COLOURS[c] for c in table.columns])
    ax.set_ylim(0, 1)
    ax.yaxis.set_major_formatter(matplotlib.ticker.PercentFormatter(1.0))
    ax.set_xlabel("")
    ax.tick_params(axis="x", rotation=0)
    ax.legend(fontsize=7, frameon=False, ncols=3, loc="upper center", bbox_to_anchor=(0.5, 1.15))
    ax.spines[["top", "right"]].set_visible(False)
    return _png(fig)
