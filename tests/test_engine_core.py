"""The simulated engine core: continuous batching under a KV cache that runs out."""

from __future__ import annotations

import pytest

from simulator.gpu_state import NodeGpus


@pytest.fixture
def node(tmp_path) -> NodeGpus:
    path = tmp_path / "n.gpus"
    NodeGpus.create(path, "n", ["h100"]).close()
    return NodeGpus(path)


def test_a_full_kv_cache_preempts_and_recomputes(node) -> None:
    """Four long replies into a KV cache that holds about two: vLLM-style recompute."""
    import asyncio

    from simulator.engine.core import EngineCore, SimRequest
    from simulator.engine.profiles import MODEL_PROFILES

    core = EngineCore(MODEL_PROFILES["llama-3.1-8b-instruct"], node, [0],
                      gpu_memory_utilization=0.19)  # ≈ 1,900 tokens of KV on an H100
    reqs = [SimRequest(f"r{i}", prompt_tokens=300, max_tokens=600, target_tokens=600)
            for i in range(4)]

    async def go() -> None:
        task = asyncio.create_task(core.run())
        for r in reqs:
            core.add(r)
        for r in reqs:
            while not await r.out.get():
                pass
        task.cancel()

    asyncio.run(go())
    assert all(r.generated == 600 and r.finish_reason == "length" for r in reqs)
    # vLLM counts preemptions; a prompt counts once however often it is recomputed
    assert core.stats.preemptions > 0 and core.stats.prompt_tokens == 4 * 300
    assert core.stats.generation_tokens == 4 * 600  # recompute regenerates nothing
