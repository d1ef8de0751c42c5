"""The demo fleet: two nodes, four GPUs, two models, one of them tensor-parallel."""

from __future__ import annotations

from dataclasses import dataclass

from simulator.node import EngineSpec


@dataclass(frozen=True)
class NodePlan:
    name: str
    gpus: tuple[str, ...]
    engines: tuple[EngineSpec, ...]


def demo_fleet(port_base: int = 8100) -> tuple[NodePlan, ...]:
    return (
        NodePlan("sim-node-a", ("h100", "h100"), (
            EngineSpec("llama-3.1-8b-instruct", (0,), port_base + 1),
            EngineSpec("llama-3.1-8b-instruct", (1,), port_base + 2),
        )),
        NodePlan("sim-node-b", ("a100", "a100"), (
            EngineSpec("qwen2.5-32b-instruct", (0, 1), port_base + 3),
        )),
    )
