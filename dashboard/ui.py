"""Formatting and the few widgets every page uses: metrics with their change, tables with a
CSV download, the simulated-data banner and the empty state."""

from __future__ import annotations

import math
from collections.abc import Callable

import pandas as pd
import streamlit as st

SIMULATED = ("**Simulated data.** These figures come from InferLedger's simulated vLLM fleet "
             "and simulated GPUs, not from real hardware.")


def _missing(v: object) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v)) or v is pd.NaT


def money(v: float | None, digits: int = 4) -> str:
    return "—" if _missing(v) else f"${v:,.{digits}f}"


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


def table(title: str, frame: pd.DataFrame, key: str) -> None:
    st.subheader(title)
    if frame.empty:
        st.caption("Nothing in this range.")
        return
    st.dataframe(frame, hide_index=True, width="stretch")
    st.download_button("Download CSV", frame.to_csv(index=False).encode(), f"{key}.csv",
                       "text/csv", key=f"dl-{key}")


def no_data_yet(reason: str = "") -> None:
    st.info(f"Nothing to show yet. {reason}Start the demo (`inferledger demo`) or point vLLM "
            "and the node agents at the collector; results appear after the next analytics "
            "run (`inferledger analytics run`, or the scheduler).")
