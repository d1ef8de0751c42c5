"""Served-model profiles and the step-time model of a simulated engine.

Step time is a roofline: a decode step streams the weights and the KV cache of the batch from
HBM (nearly flat in batch while memory-bound), prefill tokens cost compute linearly, plus CPU
time per step and per sequence in it (scheduling, sampling, detokenising: vLLM's own
profile of v0.5.3 serving Llama 3 8B on one H100 put the HTTP API server at 33% and
scheduling at 29% of the time). The constants
are calibrated against ML.ENERGY v3 (Llama-3.1-8B, 1×H100, ~400-token replies):
bench/sim_calibration.py checks J/response at batch 8, 64 and 256.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from simulator.gpu_models import GpuModel

BYTES_PER_PARAM = 2  # BF16
HBM_EFFICIENCY = 0.8
MFU = 0.5
CPU_OVERHEAD_S = 0.001
CPU_PER_SEQ_S = 0.00004


@dataclass(frozen=True)
class ModelProfile:
    name: str
    params: float
    kv_bytes_per_token: int
    max_model_len: int

    @property
    def weight_bytes(self) -> float:
        return self.params * BYTES_PER_PARAM

    def step_time_s(self, gpu: GpuModel, tp: int, tokens: int, context_tokens: int,
                    seqs: int = 1) -> float:
        """One engine step over ``tokens`` new tokens of ``seqs`` sequences with
        ``context_tokens`` of KV cache read."""
        bw = gpu.hbm_bytes_per_s * HBM_EFFICIENCY * tp
        memory_s = (self.weight_bytes + context_tokens * self.kv_bytes_per_token) / bw
        compute_s = 2 * self.params * tokens / (gpu.dense_flops * MFU * tp)
        comm_s = 0.0002 * (tp - 1)
        return CPU_OVERHEAD_S + CPU_PER_SEQ_S * seqs + max(memory_s, compute_s) + comm_s

    def step_parts_s(self, gpu: GpuModel, tp: int, tokens: np.ndarray,
                     context_tokens: np.ndarray) -> np.ndarray:
        """Each sequence's part of one step, summing to :meth:`step_time_s` of the step: the
        ground truth of who a step's time belongs to. The fixed overheads (CPU per step,
        tensor-parallel communication) and the weights' read are shared equally by the
        step's sequences; each pays its own CPU time, and the step's bound (the larger of its
        memory and compute times) is split by what each sequence asks of both: its part of
        the reads (weights, its own KV) and its own tokens' compute. (Giving a memory-bound
        step's time to the reads alone would make a prefill hidden under the reads free, and
        flip to all-compute one token later.)"""
        seqs = len(tokens)
        bw = gpu.hbm_bytes_per_s * HBM_EFFICIENCY * tp
        memory = (self.weight_bytes / seqs + context_tokens * self.kv_bytes_per_token) / bw
        compute = 2 * self.params * tokens / (gpu.dense_flops * MFU * tp)
        demand = memory + compute
        roof = demand * max(memory.sum(), compute.sum()) / demand.sum()
        return (CPU_OVERHEAD_S + 0.0002 * (tp - 1)) / seqs + CPU_PER_SEQ_S + roof


MODEL_PROFILES: dict[str, ModelProfile] = {
    p.name: p
    for p in (
        ModelProfile("llama-3.1-8b-instruct", 8.0e9, 2 * 32 * 8 * 128 * 2, 8192),
        ModelProfile("qwen2.5-32b-instruct", 32.5e9, 2 * 64 * 8 * 128 * 2, 8192),
        ModelProfile("mistral-7b-instruct", 7.2e9, 2 * 32 * 8 * 128 * 2, 8192),
        ModelProfile("llama-3.1-70b-instruct", 70.6e9, 2 * 80 * 8 * 128 * 2, 8192),
        ModelProfile("bge-large-en-v1.5", 0.335e9, 2 * 24 * 16 * 64 * 2, 512),  # embeddings
    )
}
