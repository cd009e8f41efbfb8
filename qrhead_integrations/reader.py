"""`Reader`: answer a question from a context with a causal LM — the same loaded model the scorer reads heads from.

A RAG pipeline on a laptop holds one model in memory, not two: the model that re-ranks or compresses the
passages (through its heads) can also write the answer. :meth:`Reader.from_scorer` shares the scorer's model,
tokenizer and lock. Sharing is safe: the scorer's capturing attention computes plain sdpa when no recording is
active (:func:`~qrhead_integrations.capture.prepare_model`), so greedy outputs are identical with or without a
scorer attached (``tests/test_reader.py`` checks token for token).

Prompts go through the model's chat template; the question and context are user text, tokenised with
``split_special_tokens=True`` so a passage containing ``<|im_end|>`` cannot end the turn early (the same rule as
the scorer's prompts, :mod:`qrhead_integrations.prompt`).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from ._checks import check_int
from .errors import InvalidInputError, PromptTooLongError
from .models import DEFAULT_MODEL, load_model
from .passages import check_text
from .prompt import bos_ids, check_query, split_template

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

    from .scorer import QRHeadScorer

DEFAULT_INSTRUCTION = (
    "Answer the question using the context. Reply with the answer only: a short phrase of a few words, "
    "no explanation and no full sentence."
)
"""The reader's system message: short answers, as exact-match and token-F1 scoring of QA data expect."""
CLOSED_BOOK_INSTRUCTION = (
    "Answer the question. Reply with the answer only: a short phrase of a few words, no explanation and no "
    "full sentence."
)
"""The system message when there is no context (closed book): the same answer form, nothing to read."""


@dataclass(frozen=True)
class ReaderAnswer:
    """One generated answer and what it cost.

    Attributes:
        text: the answer, first line only, stripped of a leading ``Answer:`` and surrounding quotes/spaces.
        raw: everything the model generated (special tokens removed).
        input_tokens: tokens of the whole prompt the model read (chat template, instruction, context, question).
        output_tokens: tokens generated.
        seconds: wall-clock time of the generation.
    """

    text: str
    raw: str
    input_tokens: int
    output_tokens: int
    seconds: float


class Reader:
    """Greedy short-answer generation over a context, with the prompt's token count.

    Args:
        model: a causal LM (``transformers``), in eval mode.
        tokenizer: its tokenizer.
        max_new_tokens: the most tokens an answer may take (short answers need few; generation stops earlier
            at the end of the turn).
        instruction: the system message when a context is given.
        closed_book_instruction: the system message when none is.
        lock: serialises model calls; :meth:`from_scorer` passes the scorer's, so one model shared by a scorer
            and a reader is never run by two threads at once.
    """

    def __init__(
        self,
        model: PreTrainedModel,
        tokenizer: PreTrainedTokenizerBase,
        *,
        max_new_tokens: int = 24,
        instruction: str = DEFAULT_INSTRUCTION,
        closed_book_instruction: str = CLOSED_BOOK_INSTRUCTION,
        lock: threading.Lock | None = None,
    ) -> None:
        check_int(max_new_tokens, "max_new_tokens", minimum=1)
        for name, value in (("instruction", instruction), ("closed_book_instruction", closed_book_instruction)):
            if not isinstance(value, str):
                raise InvalidInputError(f"{name} must be a str, got {type(value).__name__}")
        self.model = model
        self.tokenizer = tokenizer
        self.max_new_tokens = int(max_new_tokens)
        self.instruction = instruction
        self.closed_book_instruction = closed_book_instruction
        self._lock = lock if lock is not None else threading.Lock()

    @classmethod
    def from_pretrained(
        cls,
        model: str | os.PathLike[str] = DEFAULT_MODEL,
        *,
        device: str | torch.device | None = None,
        dtype: str | torch.dtype | None = None,
        quantize: str | None = None,
        model_kwargs: Mapping[str, Any] | None = None,
        **options: Any,  # noqa: ANN401 - the constructor's keyword options
    ) -> Reader:
        """Load a reader: a bundled model name, a folder, a ``.gguf`` file or a hub id (see ``load_model``)."""
        loaded = load_model(model, device=device, dtype=dtype, quantize=quantize, model_kwargs=model_kwargs)
        return cls(loaded.model, loaded.tokenizer, **options)

    @classmethod
    def from_scorer(cls, scorer: QRHeadScorer, **options: Any) -> Reader:  # noqa: ANN401 - constructor options
        """A reader over the scorer's own model and tokenizer: one copy of the weights for both jobs."""
        return cls(scorer.model, scorer.tokenizer, lock=scorer._lock, **options)

    # ------------------------------------------------------------------------------------------- prompts
    def messages(self, question: str, context: str | None) -> list[dict[str, str]]:
        """The chat messages for one question (``context=None``: closed book)."""
        if context is None:
            return [
                {"role": "system", "content": self.closed_book_instruction},
                {"role": "user", "content": f"Question: {question}\nAnswer:"},
            ]
        return [
            {"role": "system", "content": self.instruction},
            {"role": "user", "content": f"Context:\n{context}\n\nQuestion: {question}\nAnswer:"},
        ]

    def prompt_ids(self, question: str, context: str | None = None) -> list[int]:
        """Token ids of the whole prompt; user text can never become a control token."""
        check_query(question)
        if context is not None:
            check_text(context, "the context")
        messages = self.messages(question, context)
        user = messages[-1]["content"]
        before, after = self._template_parts(messages[:-1])
        return before + self._user_ids(user) + after

    def _template_parts(self, system: list[dict[str, str]]) -> tuple[list[int], list[int]]:
        """The template's token ids before and after the user message (markup may hold special tokens)."""
        parts = split_template(self.tokenizer, system) if getattr(self.tokenizer, "chat_template", None) else None
        if parts is not None:
            return self._markup_ids(parts[0]), self._markup_ids(parts[1])
        # No chat template (a base model): the instruction as plain text above the user text.
        return bos_ids(self.tokenizer) + self._user_ids(system[0]["content"] + "\n\n"), []

    def _markup_ids(self, text: str) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def _user_ids(self, text: str) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=False, split_special_tokens=True)["input_ids"])

    def count_tokens(self, text: str) -> int:
        """Tokens of ``text`` as user text in this reader's tokenizer (budgets are counted with this)."""
        return len(self._user_ids(text))

    # ------------------------------------------------------------------------------------------ answering
    @torch.inference_mode()
    def answer(self, question: str, context: str | None = None) -> ReaderAnswer:
        """Answer ``question`` from ``context`` (``None``: from the model's own knowledge), greedily.

        Raises:
            EmptyQueryError: the question is empty.
            PassageTypeError: ``context`` is not a ``str`` or ``None``.
            UnencodableTextError: the question or context holds a lone surrogate.
            PromptTooLongError: the prompt and ``max_new_tokens`` exceed the model's context window.
        """
        ids = self.prompt_ids(question, context)
        limit = getattr(self.model.config, "max_position_embeddings", None)
        if limit is not None and len(ids) + self.max_new_tokens > limit:
            raise PromptTooLongError(
                f"the prompt takes {len(ids)} tokens; with max_new_tokens={self.max_new_tokens} it exceeds the "
                f"model's {limit}-token context: shorten the context (compress it first)"
            )
        device = next(self.model.parameters()).device
        inputs = torch.tensor([ids], device=device)
        stop = stop_token_ids(self.tokenizer)
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else (stop or [0])[0]
        with self._lock:
            started = time.perf_counter()
            output = self.model.generate(  # type: ignore[operator]
                inputs,
                attention_mask=torch.ones_like(inputs),
                max_new_tokens=self.max_new_tokens,
                do_sample=False,
                num_beams=1,
                eos_token_id=stop or None,
                pad_token_id=pad,
                # A short answer is one line: stop at the line end instead of generating an explanation.
                stop_strings=["\n"],
                tokenizer=self.tokenizer,
                temperature=None,
                top_p=None,
                top_k=None,
            )
            seconds = time.perf_counter() - started
        new = [int(t) for t in output[0, len(ids) :] if int(t) not in stop]
        raw = str(self.tokenizer.decode(new, skip_special_tokens=True))
        return ReaderAnswer(short_answer(raw), raw, len(ids), len(new), seconds)


def stop_token_ids(tokenizer: PreTrainedTokenizerBase) -> list[int]:
    """The ids that end an answer: EOS and the chat template's end-of-turn token, when it has one."""
    ids = [tokenizer.eos_token_id] if isinstance(tokenizer.eos_token_id, int) else []
    for token in ("<|im_end|>", "<|eot_id|>", "<end_of_turn>"):
        found = tokenizer.convert_tokens_to_ids(token)
        if isinstance(found, int) and found != tokenizer.unk_token_id and found not in ids:
            ids.append(found)
    return ids


def short_answer(generated: str) -> str:
    """The answer part of a generation: its first non-empty line, without an ``Answer:`` prefix or quotes.

    Small instruction models often echo the prompt's ``Answer:`` or add an explanation on the next line; exact
    match would count those against an otherwise right answer.
    """
    for line in generated.splitlines():
        text = line.strip()
        if text:
            break
    else:
        return ""
    lowered = text.lower()
    for prefix in ("answer:", "the answer is", "a:"):
        if lowered.startswith(prefix):
            text = text[len(prefix) :].strip()
            break
    return text.strip().strip("\"'`*").strip()
