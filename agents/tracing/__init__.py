"""Tracing of inference requests at the edge: the ASGI middleware vLLM loads itself."""

from agents.tracing.middleware import InferLedgerMiddleware

__all__ = ["InferLedgerMiddleware"]
