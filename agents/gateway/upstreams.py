"""The engines behind the gateway: health, the models they serve, and which to use next.

Every ``interval_s`` each upstream's ``GET /health`` and ``GET /v1/models`` are polled; one
that fails to connect while serving is marked down at once and retried by the next check.
Routing picks, among healthy upstreams serving the model, the one with the fewest requests
outstanding from this gateway (ties in turn). With ``route_by="queue"`` it also scrapes each
engine's ``/metrics`` and ranks by the engine's own waiting queue plus this gateway's
outstanding requests (the queue figure is up to one check old; the live count corrects it),
then by KV-cache usage — what the engine reports, whoever else sends it work.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from dataclasses import dataclass, field

import httpx
from prometheus_client.parser import text_string_to_metric_families

from inferledger.errors import UserError

log = logging.getLogger("inferledger.gateway")


@dataclass
class Upstream:
    url: str
    healthy: bool = True  # optimistic until the first check
    models: frozenset[str] = frozenset()
    outstanding: int = 0
    last_error: str | None = None
    waiting: float = 0.0  # vllm:num_requests_waiting at the last check (route_by="queue")
    kv_usage: float = 0.0  # vllm:kv_cache_usage_perc (V0: gpu_cache_usage_perc)

    def mark_down(self, error: str) -> None:
        if self.healthy:
            log.warning("upstream %s is down: %s", self.url, error)
        self.healthy, self.last_error = False, error


ROUTE_BY = ("outstanding", "queue")
_WAITING = ("vllm:num_requests_waiting",)
_KV_USAGE = ("vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc")  # V1, then V0


def engine_load(exposition: str) -> tuple[float, float]:
    """(requests waiting, KV-cache usage) from an engine's Prometheus exposition."""
    waiting, kv = 0.0, 0.0
    for family in text_string_to_metric_families(exposition):
        for sample in family.samples:
            if sample.name in _WAITING:
                waiting += sample.value
            elif sample.name in _KV_USAGE:
                kv = max(kv, sample.value)
    return waiting, kv


@dataclass
class Pool:
    urls: list[str]
    interval_s: float = 2.0
    route_by: str = "outstanding"
    upstreams: list[Upstream] = field(init=False)

    def __post_init__(self) -> None:
        if not self.urls:
            raise UserError("the gateway needs at least one --upstream")
        if self.route_by not in ROUTE_BY:
            raise UserError(f"route by {self.route_by!r}: expected one of {ROUTE_BY}")
        for u in self.urls:
            if not u.startswith(("http://", "https://")):
                raise UserError(f"upstream {u!r} is not an http(s):// URL")
        self.upstreams = [Upstream(u.rstrip("/")) for u in self.urls]
        self._turn = itertools.count()

    def candidates(self, model: str | None) -> list[Upstream]:
        """Healthy upstreams that serve ``model`` (or may: models not known yet), best first."""
        ok = [u for u in self.upstreams if u.healthy
              and (model is None or not u.models or model in u.models)]
        turn, n = next(self._turn), max(len(ok), 1)

        def rank(iu: tuple[int, Upstream]) -> tuple:
            i, u = iu
            if self.route_by == "queue":
                return (u.waiting + u.outstanding, u.kv_usage, (i - turn) % n)
            return (u.outstanding, (i - turn) % n)

        return [u for _, u in sorted(enumerate(ok), key=rank)]

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
            if self.route_by == "queue":
                m = await client.get(f"{u.url}/metrics", timeout=2.0)
                m.raise_for_status()
                u.waiting, u.kv_usage = engine_load(m.text)
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
