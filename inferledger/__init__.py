"""InferLedger: what one LLM response really costs on your own GPUs, and why it was slow."""

__version__ = "0.1.0"
