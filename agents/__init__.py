"""Agents that run on inference nodes: the GPU node agent and the tracing middleware."""
