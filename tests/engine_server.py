"""A simulated engine served by a real uvicorn server in a background thread."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import uvicorn
from fastapi import FastAPI

from simulator.engine.app import build_app
from simulator.engine.core import EngineCore
from simulator.engine.profiles import MODEL_PROFILES
from simulator.gpu_state import NodeGpus

MODEL = "llama-3.1-8b-instruct"


def make_engine(state: Path, gpu_indices: list[int], provider, middleware=(),
                gpu_memory_utilization: float = 0.9) -> FastAPI:
    gpus = NodeGpus(state)
    core = EngineCore(MODEL_PROFILES[MODEL], gpus, gpu_indices,
                      gpu_memory_utilization=gpu_memory_utilization)
    app = build_app(core, MODEL, provider, list(middleware), seed=1)
    app.state.core = core  # tests look at what the engine is working on
    return app


@contextlib.contextmanager
def serving(app: FastAPI) -> Iterator[str]:
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline:
            raise TimeoutError("engine did not start")
        time.sleep(0.05)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
