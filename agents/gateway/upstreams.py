"""The engines behind the gateway: health, the models they serve, and which to use next.

Every ``interval_s`` each upstream's ``GET /health`` and ``GET /v1/models`` are polled; one
that fails to connect while serving is marked down at once and retried by the next check.
Routing picks, among healthy upstreams serving the model, the one with the fewest requests
outstanding (ties in turn).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from dataclasses import dataclass, field

import httpx

log = logging.getLogger("inferledger.gateway")


@dataclass
class Upstream:
    url: str
    healthy: bool = True  # optimistic until the first check
    models: frozenset[str] = frozenset()
    outstanding: int = 0
    last_error: str | None = None

    def mark_down(self, error: str) -> None:
        if self.healthy:
            log.warning("upstream %s is down: %s", self.url, error)
        self.healthy, self.last_error = False, error


@dataclass
class Pool:
    urls: list[str]
    interval_s: float = 2.0
    upstreams: list[Upstream] = field(init=False)

    def __post_init__(self) -> None:
        if not self.urls:
            raise ValueError("the gateway needs at least one --upstream")
        for u in self.urls:
            if not u.startswith(("http://", "https://")):
                raise ValueError(f"upstream {u!r} is not an http(s):// URL")
        self.upstreams = [Upstream(u.rstrip("/")) for u in self.urls]
        self._turn = itertools.count()

    def candidates(self, model: str | None) -> list[Upstream]:
        """Healthy upstreams that serve ``model`` (or may: models not known yet), best first."""
        ok = [u for u in self.upstreams if u.healthy
              and (model is None or not u.models or model in u.models)]
        turn = next(self._turn)
        ranked = sorted(enumerate(ok), key=lambda iu: (iu[1].outstanding,
                                                       (iu[0] - turn) % max(len(ok), 1)))
        return [u for _, u in ranked]

    def known_models(self) -> set[str]:
        return {m for u in self.upstreams for m in u.models}

    async def check(self, client: httpx.AsyncClient) -> None:
        await asyncio.gather(*(self._check_one(client, u) for u in self.upstreams))

    async def _check_one(self, client: httpx.AsyncClient, u: Upstream) -> None:
        try:
            (await client.get(f"{u.url}/health", timeout=2.0)).raise_for_status()
            r = await client.get(f"{u.url}/v1/models", timeout=2.0)
            r.raise_for_status()
            u.models = frozenset(m["id"] for m in r.json().get("data", [])
                                 if isinstance(m, dict) and isinstance(m.get("id"), str))
        except (httpx.HTTPError, ValueError, AttributeError) as e:
            u.mark_down(str(e) or type(e).__name__)
            return
        if not u.healthy:
            log.info("upstream %s is back", u.url)
        u.healthy, u.last_error = True, None

    async def run(self, client: httpx.AsyncClient) -> None:
        """Check every ``interval_s`` until cancelled."""
        with contextlib.suppress(asyncio.CancelledError):
            while True:
                await self.check(client)
                await asyncio.sleep(self.interval_s)
