"""The collector: OTLP receivers → batcher (durable group commit) → Parquet segments."""
