"""Serving the dashboard: Streamlit's server on ``app.py``, headless, the store's directory
handed to the script as its argument (``app.py --data DIR``)."""

from __future__ import annotations

from pathlib import Path

APP = Path(__file__).resolve().parent / "app.py"


def serve(data_root: Path, host: str, port: int) -> None:
    from inferledger.ports import ensure_free

    ensure_free(host, [(port, "the dashboard")])
    # What every page imports, loaded before serving so the first visitor does not wait.
    import altair  # noqa: F401
    import pandas  # noqa: F401
    from streamlit.web import bootstrap

    import dashboard.queries.explorer
    import dashboard.queries.gpu
    import dashboard.queries.latency  # noqa: F401

    flags = {"server_headless": True, "server_address": host, "server_port": port,
             "browser_gatherUsageStats": False, "server_fileWatcherType": "none",
             "client_toolbarMode": "minimal"}
    bootstrap.load_config_options(flags)
    bootstrap.run(str(APP), False, ["--data", str(data_root.resolve())], flags)
