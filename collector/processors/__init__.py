"""Processors turn decoded OTLP requests into rows of the store's raw tables."""
