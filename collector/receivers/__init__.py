"""OTLP receivers: HTTP (4318) and gRPC (4317)."""
