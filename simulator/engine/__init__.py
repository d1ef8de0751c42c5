"""A simulated vLLM engine: continuous batching, vLLM's HTTP surface and its llm_request span."""
