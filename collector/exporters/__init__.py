"""Exporters write batches somewhere durable."""
