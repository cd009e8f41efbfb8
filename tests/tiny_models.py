"""Tiny randomly-initialised models and a tokenizer trained in code: fast, offline unit-test fixtures."""

from __future__ import annotations

import os
from typing import Any

import torch
from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
from transformers import AutoModelForCausalLM, PreTrainedTokenizerFast

from qrhead_integrations.prompt import PromptBuilder

TEST_DEVICE = torch.device(os.environ.get("QRHEAD_TEST_DEVICE", "cpu"))
"""Where the tiny models live: ``QRHEAD_TEST_DEVICE=cuda`` runs the tiny-model tests on a GPU (the weights are
drawn on the CPU first, so the same seed gives the same model on every device)."""

CHATML = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

_CORPUS = [
    "Here are some paragraphs: Please find information that are relevant to the following query in the "
    "paragraphs above. Query: N/A",
    "The moon orbits the earth. The sun is a star. Paris is the capital of France. Hamlet is a play.",
    "Water boils at one hundred degrees. Cats and dogs are animals. The quick brown fox jumps.",
    "[1] [2] [3] [4] [5] [6] [7] [8] [9] [10] 0123456789 <|im_start|> <|im_end|> <|eot_id|>",
]


QWEN2_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|"
    r"\s+(?!\S)|\s+"
)
"""Qwen 2's pre-tokenizer regex (``tokenizer.json`` of the bundled Qwen models)."""


def tiny_tokenizer(chat_template: bool = True, style: str = "gpt2") -> Any:
    """A byte-level BPE tokenizer (vocab 400) with ChatML specials; every string is encodable.

    ``style`` picks the splitting in front of the BPE: ``"gpt2"`` (ByteLevel's own regex, as SmolLM2), ``"qwen2"``
    (NFC, then Qwen 2's split regex, as the bundled Qwen models) or ``"metaspace"`` (SentencePiece-like spaces,
    which prompt assembly must refuse).
    """
    tok = Tokenizer(models.BPE())
    if style == "gpt2":
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    elif style == "qwen2":
        tok.normalizer = normalizers.NFC()
        tok.pre_tokenizer = pre_tokenizers.Sequence(
            [
                pre_tokenizers.Split(Regex(QWEN2_SPLIT), behavior="isolated"),
                pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
            ]
        )
    elif style == "metaspace":
        tok.pre_tokenizer = pre_tokenizers.Sequence(
            [pre_tokenizers.Metaspace(), pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)]
        )
    else:
        raise ValueError(f"unknown tokenizer style {style!r}")
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_CORPUS * 5, trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        additional_special_tokens=["<|im_start|>"],
    )
    if chat_template:
        fast.chat_template = CHATML
    return fast


def _common(vocab: int) -> dict[str, Any]:
    return dict(
        vocab_size=vocab,
        hidden_size=64,
        intermediate_size=96,
        num_hidden_layers=4,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=2048,
        initializer_range=0.25,
    )


def tiny_model(kind: str, vocab: int = 400, attn: str = "sdpa", seed: int = 0, **overrides: Any) -> Any:
    """A tiny random causal LM: 'llama' and 'qwen2' use GQA (4 heads, 2 KV heads); 'gemma3' adds
    sliding-window layers (window 8) so long prompts exercise the windowed mask and cache. A large
    ``initializer_range`` gives peaked, non-uniform attention, so comparisons are not trivially equal."""
    from transformers import Gemma3TextConfig, LlamaConfig, Qwen2Config

    if kind == "llama":
        config: Any = LlamaConfig(**_common(vocab), **overrides)
    elif kind == "qwen2":
        config = Qwen2Config(**_common(vocab), **overrides)
    elif kind == "gemma3":
        config = Gemma3TextConfig(
            **_common(vocab),
            **overrides,
            head_dim=16,
            sliding_window=8,
            layer_types=["sliding_attention", "full_attention", "sliding_attention", "sliding_attention"],
        )
    else:
        raise ValueError(kind)
    config._attn_implementation = attn
    generator_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        model = AutoModelForCausalLM.from_config(config, attn_implementation=attn)
    finally:
        torch.random.set_rng_state(generator_state)
    return model.to(TEST_DEVICE).eval()


class TextPathBuilder(PromptBuilder):
    """The reference prompt builder: every text through the ``transformers`` wrapper, nothing assembled.

    What a slow tokenizer gets from :class:`PromptBuilder`: the fast path (the Rust backend called directly, prompt
    ids assembled from the cut's ids) must give exactly its ids and spans.
    """

    def __init__(self, tokenizer: Any, layout: Any = "auto") -> None:
        super().__init__(tokenizer, layout)
        self._assembler = None

    def _direct_backend(self) -> None:
        return None
