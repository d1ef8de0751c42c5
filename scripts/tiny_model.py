"""Writes a tiny random-weight Llama that real vLLM can serve on a CPU, with no model hub.

Run with the vLLM environment's Python (it has torch, transformers and tokenizers):
``.vllm-venv/bin/python scripts/tiny_model.py DIR``. The weights are random, so replies are
nonsense; what the tests read is structure (spans, tokens, phases, outcomes), never text.
Shape: hidden 256, 2 layers, 4 heads, vocabulary 4,096 (a byte-level BPE tokenizer trained
here on a few sentences, so every text tokenizes), 512 positions. Seeded: the same files
each time.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

SPECIAL = ["<unk>", "<s>", "</s>", "<pad>"]
CHAT_TEMPLATE = ("{{ bos_token }}{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n"
                 "{% endfor %}{% if add_generation_prompt %}assistant:{% endif %}")
CORPUS = [
    "what does one response cost on our own GPUs, and why was it slow?",
    "the quick brown fox jumps over the lazy dog while the engine decodes tokens",
    "summarise the incident report: queue time rose when the KV cache filled up",
    "user: hello there assistant: hello, how can I help you today?",
    "retrieval found three passages about power, energy and carbon per request",
] * 50


def tokenizer() -> PreTrainedTokenizerFast:
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(CORPUS, trainers.BpeTrainer(
        vocab_size=1024, special_tokens=SPECIAL,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", bos_token="<s>",
                                   eos_token="</s>", pad_token="<pad>",
                                   model_max_length=512)
    fast.chat_template = CHAT_TEMPLATE
    return fast


def main(out: Path) -> None:
    torch.manual_seed(0)
    tok = tokenizer()
    config = LlamaConfig(vocab_size=4096, hidden_size=256, intermediate_size=512,
                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=4,
                         max_position_embeddings=512, bos_token_id=tok.bos_token_id,
                         eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
                         torch_dtype="bfloat16", tie_word_embeddings=False)
    model = LlamaForCausalLM(config).to(torch.bfloat16)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out, safe_serialization=True)
    tok.save_pretrained(out)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: tiny_model.py DIR")
    main(Path(sys.argv[1]))
