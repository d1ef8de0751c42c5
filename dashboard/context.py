"""What every page shares: the store, the filters chosen in the sidebar, cached queries.

``app.py`` sets the context on each run (Streamlit re-runs the entry script before the page),
in the session's own state, so concurrent viewers never see each other's filters.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import duckdb
import streamlit as st

from inferledger.results.filters import Filters
from inferledger.store import DataDir, connect_readonly

_KEY = "inferledger_context"


@dataclass(frozen=True)
class Context:
    data_root: str
    filters: Filters
    simulated: bool


def set_current(ctx: Context) -> None:
    st.session_state[_KEY] = ctx


def current() -> Context:
    return st.session_state[_KEY]


@st.cache_resource(max_entries=4)
def _connection(data_root: str, catalog_stamp: int) -> duckdb.DuckDBPyConnection:
    return connect_readonly(DataDir.at(data_root))


def connection(data_root: str) -> duckdb.DuckDBPyConnection:
    """One connection for every session, opened again only when the catalog changed (a new
    table): the views read their files at each query, so new data needs no new connection,
    and opening one binds every view (≈ 0.4 s on a 30-day store)."""
    views = DataDir.at(data_root).views_sql
    try:
        stamp = views.stat().st_mtime_ns
    except FileNotFoundError:
        stamp = 0
    return _connection(data_root, stamp)


@st.cache_data(ttl=5, show_spinner=False)
def _cached(path: str, data_root: str, *args: Any) -> Any:
    module, name = path.split(":")
    return getattr(importlib.import_module(module), name)(connection(data_root), *args)


def query(fn: Callable[..., Any], *args: Any) -> Any:
    """``fn(connection, *args)`` for this session's store, cached for a few seconds so a
    refresh shows data seconds old without hammering the store."""
    return _cached(f"{fn.__module__}:{fn.__name__}", current().data_root, *args)
