"""InferLedger dashboard: what responses cost, where GPU time went, why a response was slow.

Run with ``inferledger dashboard --data DIR`` (the data directory arrives as the script's
``--data`` argument; without one, ``$INFERLEDGER_DATA``, as every command reads it). This
entry script draws what every page shares — the store check, the simulated-data banner, the
filters in the sidebar — then runs the chosen page from ``dashboard/views/``.
"""

from __future__ import annotations

import argparse
import os

import streamlit as st

from dashboard import ui
from dashboard.context import Context, query, set_current
from dashboard.queries import base
from inferledger.errors import UserError
from inferledger.results.filters import DEFAULT_RANGE, RANGES, Filters
from inferledger.results.published import require_results
from inferledger.store import DataDir

PAGES = [
    st.Page("views/overview.py", title="Overview", icon=":material/dashboard:", default=True),
    st.Page("views/cost.py", title="Cost", icon=":material/payments:"),
    st.Page("views/gpu_efficiency.py", title="GPU efficiency", icon=":material/memory:"),
    st.Page("views/latency.py", title="Latency", icon=":material/timer:"),
    st.Page("views/explorer.py", title="Request explorer", icon=":material/search:"),
    st.Page("views/settings.py", title="Pricing & settings", icon=":material/tune:"),
]

st.set_page_config(page_title="InferLedger", layout="wide")


def _sidebar(data_root: str) -> Filters:
    first, newest = query(base.coverage)
    options = query(base.choices)
    with st.sidebar:
        st.caption(f"Store: `{DataDir.at(data_root).root}`")
        span = st.selectbox("Time range", list(RANGES), index=list(RANGES).index(DEFAULT_RANGE),
                            key="f_range", help="Ending at the newest sample in the store, "
                            "starting on the hour (costs are hourly)")
        models = st.multiselect("Model", options["models"], key="f_model")
        tenants = st.multiselect("Tenant", options["tenants"], key="f_tenant")
        nodes = st.multiselect("Node", options["nodes"], key="f_node")
        if st.button("Refresh", key="f_refresh"):
            st.cache_data.clear()
    f = Filters.for_range(span, newest, models=tuple(models), tenants=tuple(tenants),
                          nodes=tuple(nodes))
    with st.sidebar:
        if newest is not None:
            start = max(f.start, first) if f.start and first else f.start or first
            st.caption(f"Showing {start:%d %b %H:%M} – {newest:%d %b %H:%M} UTC. Data from "
                       f"{first:%d %b %H:%M}; newest sample {newest:%Y-%m-%d %H:%M:%S} UTC.")
    return f


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=os.environ.get("INFERLEDGER_DATA", "./inferledger-data"))
    data_root = ap.parse_known_args()[0].data
    page = st.navigation(PAGES)
    try:
        require_results(DataDir.at(data_root))
    except UserError as e:  # not a store, or no results yet: said plainly on the page
        st.title("InferLedger")
        ui.no_data_yet(f"{e}. ")
        return
    set_current(Context(data_root, Filters(), simulated=False))  # for the sidebar's queries
    filters = _sidebar(data_root)
    simulated = query(base.is_simulated)
    set_current(Context(data_root, filters, simulated))
    if simulated:
        st.warning(ui.SIMULATED, icon=":material/science:")
    page.run()


main()
