"""Every query the dashboard runs, one module per page, as parameterised SQL over the store's
published views (docs/SQL.md). Overview pages read the rollups (``cost_hourly``,
``gpu_time``); only drill-downs touch per-request and per-sample tables. Nothing here writes,
and the connection takes no lock, so the dashboard can never block or break ingest.
"""
