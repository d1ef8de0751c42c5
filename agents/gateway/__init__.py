"""An OpenAI-compatible reverse proxy that gives every request the middleware's span."""

from agents.gateway.proxy import build_gateway
from agents.gateway.upstreams import Pool, Upstream

__all__ = ["Pool", "Upstream", "build_gateway"]
