"""Formatting and the few widgets every page uses: metrics with their change, tables with a
CSV download, the simulated-data banner and the empty state."""

from __future__ import annotations

import math
from collections.abc import Callable

import altair as alt
import pandas as pd
import streamlit as st

from analytics.kpis import COLOURS, UNMEASURED

SIMULATED = ("**Simulated data.** These figures come from InferLedger's simulated vLLM fleet "
             "and simulated GPUs, not from real hardware.")


def _missing(v: object) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v)) or v is pd.NaT


def money(v: float | None, digits: int = 2) -> str:
    """Totals: cents, with thousands separators ($1,234.56)."""
    return "—" if _missing(v) else f"${v:,.{digits}f}"


def money_small(v: float | None) -> str:
    """Unit costs, which are fractions of a cent: three significant digits ($0.000532)."""
    if _missing(v):
        return "—"
    digits = 2 if v == 0 or abs(v) >= 1 else 2 - math.floor(math.log10(abs(v)))
    return f"${v:,.{max(2, digits)}f}"


def pct(v: float | None) -> str:
    return "—" if _missing(v) else f"{v * 100:.1f}%"


def secs(v: float | None) -> str:
    if _missing(v):
        return "—"
    return f"{v * 1000:.0f} ms" if v < 10 else f"{v:.1f} s"


def number(v: float | None, digits: int = 0) -> str:
    return "—" if _missing(v) else f"{v:,.{digits}f}"


def metric(col: st.delta_generator.DeltaGenerator, label: str, now: pd.Series,
           before: pd.Series | None, key: str, fmt: Callable[[float | None], str], *,
           lower_is_better: bool = False, help: str | None = None) -> None:
    """A headline figure with its change against the previous period, when there is one."""
    value = now.get(key)
    delta = None
    if before is not None:
        old = before.get(key)
        if not _missing(value) and not _missing(old) and old:
            delta = f"{(value - old) / abs(old) * 100:+.1f}% vs previous period"
    col.metric(label, fmt(value), delta,
               delta_color="inverse" if lower_is_better else "normal", help=help)


# Column name → (title with its unit, display format): tables are for people; their CSV
# downloads keep the raw names and values.
_MONEY, _UNIT, _COUNT = "dollar", "$%.6f", "localized"
COLUMNS: dict[str, tuple[str, str]] = {
    "cost_usd": ("Cost", _MONEY), "wasted_usd": ("Wasted", _MONEY),
    "idle_share_usd": ("Idle share", _MONEY), "total_usd": ("Total", _MONEY),
    "api_cost_usd": ("At API list price", _MONEY), "spend_usd": ("Spend", _MONEY),
    "idle_cost_usd": ("Idle cost", _MONEY), "usd": ("Cost", _MONEY),
    "usd_per_response": ("Per response", _UNIT),
    "usd_per_1k_output_tokens": ("Per 1k output tokens", _UNIT),
    "p50_usd": ("p50", _UNIT), "p90_usd": ("p90", _UNIT), "p99_usd": ("p99", _UNIT),
    "max_usd": ("Max", _UNIT), "mean_usd": ("Mean", _UNIT),
    "requests": ("Responses", _COUNT), "responses": ("Responses", _COUNT),
    "output_tokens": ("Output tokens", _COUNT), "input_tokens": ("Input tokens", _COUNT),
    "gpus": ("GPUs", _COUNT), "intervals": ("Intervals", _COUNT),
    "energy_kwh": ("Energy (kWh)", "%.2f"), "carbon_kg": ("Carbon (kg CO₂e)", "%.2f"),
    "joules_per_response": ("Energy per response (J)", "%.1f"),
    "useful_fraction": ("Useful share", "percent"), "ratio_to_api": ("Ratio to API", "%.2f×"),
    "gpu_hours": ("GPU-hours", "%.2f"), "gpu": ("GPU", ""), "gpu_model": ("GPU model", ""),
    "host_name": ("Node", ""),
}


def _column(name: str, numeric: bool) -> st.column_config.Column:
    title, fmt = COLUMNS.get(name, (None, None))
    if title is None:
        unit = " (s)" if name.endswith("_s") else " (J)" if name.endswith("_j") else \
            " (W)" if name.endswith("_w") else ""
        base = name.removesuffix("_s").removesuffix("_j").removesuffix("_w") if unit else name
        title = label(base).capitalize().replace("Ttft", "TTFT").replace("Tpot", "TPOT") + unit
        fmt = "%.3f" if unit == " (s)" else "%.1f" if unit else None
    return st.column_config.NumberColumn(title, format=fmt) if fmt and numeric else \
        st.column_config.Column(title)


def table(title: str, frame: pd.DataFrame, key: str) -> None:
    """A titled table for people (headers with units, money as money, counts with
    separators, nothing cut short) and its CSV with the raw columns."""
    st.subheader(title)
    if frame.empty:
        st.caption("Nothing in this range.")
        return
    config = {c: _column(c, pd.api.types.is_numeric_dtype(frame[c])) for c in frame.columns}
    st.dataframe(frame, hide_index=True, width="stretch", column_config=config)
    st.download_button("Download CSV", frame.to_csv(index=False).encode(), f"{key}.csv",
                       "text/csv", key=f"dl-{key}")


def no_data_yet(reason: str = "") -> None:
    st.info(f"Nothing to show yet. {reason}Start the demo (`inferledger demo`) or point vLLM "
            "and the node agents at the collector; results appear after the next analytics "
            "run (`inferledger analytics run`, or the scheduler).")


def label(bucket: str) -> str:
    """A bucket or column name as people write it: 'timed_out' → 'timed out'."""
    return bucket.replace("_", " ")


def waterfall(steps: pd.DataFrame, total_label: str = "GPU spend") -> alt.Chart:
    """Spend bucket by bucket (kpis.bridge), each bar starting where the last ended, and the
    total they add up to: the bridge from its parts to the bill."""
    priced = steps[steps["bucket"] != UNMEASURED].reset_index(drop=True)
    end = priced["usd"].cumsum()
    bars = pd.DataFrame({"step": priced["bucket"].map(label), "bucket": priced["bucket"],
                         "start": end - priced["usd"], "end": end, "usd": priced["usd"],
                         "gpu_hours": priced["gpu_hours"]})
    total = pd.DataFrame({"step": [total_label], "bucket": ["total"], "start": [0.0],
                          "end": [float(end.iloc[-1]) if len(end) else 0.0],
                          "usd": [float(priced["usd"].sum())],
                          "gpu_hours": [float(priced["gpu_hours"].sum())]})
    frame = pd.concat([bars, total], ignore_index=True)
    colours = {**COLOURS, "total": "#37474f"}
    order = frame["step"].tolist()
    return alt.Chart(frame).mark_bar().encode(
        x=alt.X("step:N", sort=order, title=None, axis=alt.Axis(labelAngle=0)),
        y=alt.Y("start:Q", title="USD"), y2="end:Q",
        color=alt.Color("bucket:N", scale=alt.Scale(domain=list(colours),
                                                    range=list(colours.values())),
                        legend=None),
        tooltip=[alt.Tooltip("step:N", title="bucket"),
                 alt.Tooltip("usd:Q", title="USD", format=",.2f"),
                 alt.Tooltip("gpu_hours:Q", title="GPU-hours", format=",.2f")])


def colour_scale(buckets: list[str]) -> alt.Scale:
    """The shared bucket colours (analytics/kpis.py) for a chart's buckets, in that order."""
    return alt.Scale(domain=buckets, range=[COLOURS[b] for b in buckets])
