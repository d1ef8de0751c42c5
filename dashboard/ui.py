"""Formatting and the few widgets every page uses: metrics with their change, tables with a
CSV download, the simulated-data banner and the empty state."""

from __future__ import annotations

import math
from collections.abc import Callable

import altair as alt
import pandas as pd
import streamlit as st

from inferledger.results.kpis import COLOURS
from inferledger.vocabulary import UNMEASURED

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


def figures(items: list[tuple[str, str]]) -> None:
    """A row of plain figures (label, formatted value), one column each."""
    for col, (label, value) in zip(st.columns(len(items)), items, strict=True):
        col.metric(label, value)


def _count(v: float | None) -> str:
    return number(v)


def _fixed(digits: int, suffix: str = "") -> Callable[[float | None], str]:
    return lambda v: "—" if _missing(v) else f"{v:,.{digits}f}{suffix}"


# Column name → (title with its unit, how its values read): tables are for people; their
# CSV downloads keep the raw names and values.
COLUMNS: dict[str, tuple[str, Callable[[float | None], str] | None]] = {
    "cost_usd": ("Cost", money), "wasted_usd": ("Wasted", money),
    "idle_share_usd": ("Idle share", money), "total_usd": ("Total", money),
    "api_cost_usd": ("At API list price", money), "spend_usd": ("Spend", money),
    "idle_cost_usd": ("Idle cost", money), "usd": ("Cost", money),
    "gpu_cost_usd": ("GPU cost", money_small), "energy_cost_usd": ("Energy cost", money_small),
    "usd_per_response": ("Per response", money_small),
    "usd_per_answer": ("Per answer", money_small), "answers": ("Answers", _count),
    "completed_answers": ("Completed", _count),
    "requests_per_answer": ("Requests per answer", _fixed(2)),
    "retry_cost_usd": ("Retry cost", money), "context_cost_usd": ("Context cost", money),
    "context_share": ("Context share of cost", pct),
    "kv_gb_s_per_answer": ("KV GB·s per answer", _fixed(1)),
    "answer_e2e_p95_s": ("Answer p95 (s)", _fixed(2)),
    "tool_time_per_answer_s": ("Tool time per answer (s)", _fixed(2)),
    "usd_per_1k_output_tokens": ("Per 1k out tokens", money_small),
    "p50_usd": ("p50", money_small), "p90_usd": ("p90", money_small),
    "p99_usd": ("p99", money_small), "max_usd": ("Max", money_small),
    "mean_usd": ("Mean", money_small),
    "requests": ("Responses", _count), "responses": ("Responses", _count),
    "output_tokens": ("Output tokens", _count), "input_tokens": ("Input tokens", _count),
    "gpus": ("GPUs", _count), "intervals": ("Intervals", _count),
    "energy_kwh": ("kWh", _fixed(2)), "carbon_kg": ("kg CO₂e", _fixed(2)),
    "joules_per_response": ("J per response", _fixed(1)),
    "useful_fraction": ("Useful share", pct), "ratio_to_api": ("Ratio to API", _fixed(2, "×")),
    "gpu_hours": ("GPU-hours", _fixed(2)), "gpu": ("GPU", None),
    "gpu_model": ("GPU model", None), "host_name": ("Node", None),
}
_UNITS = {"_s": (" (s)", _fixed(3)), "_j": (" (J)", _fixed(1)), "_w": (" (W)", _fixed(0))}


def _column(name: str) -> tuple[str, Callable[[float | None], str] | None]:
    """A column's title and format: from COLUMNS, else from its name and unit suffix."""
    if name in COLUMNS:
        return COLUMNS[name]
    unit, fmt = next(((u, f) for s, (u, f) in _UNITS.items() if name.endswith(s)), ("", None))
    base = name[:-2] if unit else name
    title = label(base).capitalize().replace("Ttft", "TTFT").replace("Tpot", "TPOT") + unit
    return title, fmt


def table(title: str, frame: pd.DataFrame, key: str) -> None:
    """A titled table for people (headers with units, money as money, counts with
    separators, a dash for nothing) and its CSV with the raw columns."""
    st.subheader(title)
    if frame.empty:
        st.caption("Nothing in this range.")
        return
    columns = {c: _column(c) for c in frame.columns}
    numeric = {c: fmt for c, (_, fmt) in columns.items()
               if fmt is not None and pd.api.types.is_numeric_dtype(frame[c])}
    shown = frame.style.format(na_rep="—").format(numeric, na_rep="—")  # type: ignore[arg-type]
    st.dataframe(shown, hide_index=True, width="stretch",
                 column_config={c: st.column_config.Column(t) for c, (t, _) in columns.items()})
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
    """The shared bucket colours (inferledger/results/kpis.py) for a chart's buckets, in order."""
    return alt.Scale(domain=buckets, range=[COLOURS[b] for b in buckets])
