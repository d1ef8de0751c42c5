"""InferLedger's foundation: the store (layout, raw schemas, staging SQL, catalog, snapshots), the
wire contract, configuration, errors, OpenTelemetry and process helpers. It imports no role
(collector, agents, analytics, dashboard, simulator) and no command (``commands/``)."""

__version__ = "0.1.0"
