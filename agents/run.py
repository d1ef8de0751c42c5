"""The node agent as one process: this node's GPUs sampled through a backend, its local vLLM
engines scraped, both exported over OTLP until stopped.

With the ``none`` backend the GPUs are read by another agent (DCGM, say) and only the engines
are scraped; otherwise one agent per node's GPUs (a lock), since a second would report the
same GPUs again.
"""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Callable, Sequence

from agents.gpu import GpuError, open_backend
from agents.node_agent import NodeAgent, agent_lock
from agents.vllm_metrics import EngineScraper, Target, local_locator
from inferledger.errors import UserError
from inferledger.otel import metric_exporter

log = logging.getLogger("inferledger.agent")


def run_agent(*, gpu_backend: str, host: str | None, interval_s: float, vllm: Sequence[str],
              vllm_interval_s: float, otlp_endpoint: str, otlp_protocol: str,
              stop: threading.Event) -> None:
    def scraper(host: str, gpus_holding: Callable[[set[int]], list[str]]) -> EngineScraper:
        return EngineScraper([Target(u.rstrip("/") + "/metrics") for u in vllm],
                             metric_exporter(otlp_endpoint, otlp_protocol), host,
                             vllm_interval_s, locate=local_locator(gpus_holding))

    if gpu_backend == "none":
        if not vllm:
            raise UserError("--gpu-backend none samples no GPU: name an engine with --vllm")
        log.info("agent scraping %d engine(s) every %.1fs, no GPU sampling",
                 len(vllm), vllm_interval_s)
        scraper(host or socket.gethostname(), lambda _pids: []).run_until(stop)
        return
    lock = agent_lock(gpu_backend).acquire()  # held until exit: one agent per node's GPUs
    try:
        try:
            backend = open_backend(gpu_backend)
        except GpuError as e:
            raise UserError(str(e)) from None
        agent = NodeAgent(backend, metric_exporter(otlp_endpoint, otlp_protocol),
                          host=host, interval_s=interval_s)
        if vllm:
            scraper(agent.host, agent.gpus_holding).start(stop)
        agent.run_until(stop)
    finally:
        lock.release()
