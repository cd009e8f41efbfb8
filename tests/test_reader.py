"""`Reader`: prompts, greedy answers, and one model shared with a scorer without changing what it generates."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from qrhead_integrations import QRHeadScorer
from qrhead_integrations.errors import EmptyQueryError, InvalidInputError, PassageTypeError, UnencodableTextError
from qrhead_integrations.reader import Reader, short_answer
from tests.tiny_models import tiny_model

CONTEXT = "Paris is the capital and most populous city of France.\n\nBerlin is the capital of Germany."
QUESTIONS = ["What is the capital of France?", "Which city is the capital of Germany?"]


def _answers(reader: Reader) -> list[str]:
    return [reader.answer(q, CONTEXT).raw for q in QUESTIONS] + [reader.answer(QUESTIONS[0]).raw]


def test_greedy_answers_are_identical_with_and_without_a_scorer_attached(tokenizer: Any) -> None:
    model = tiny_model("llama", seed=3)
    alone = _answers(Reader(model, tokenizer, max_new_tokens=8))
    scorer = QRHeadScorer(model, tokenizer, heads="1-0,2-3", model_id="tiny")  # switches the attention in place
    scorer.rank(QUESTIONS[0], CONTEXT.split("\n\n"))
    shared = Reader.from_scorer(scorer, max_new_tokens=8)
    assert shared.model is model and shared._lock is scorer._lock
    assert _answers(shared) == alone
    assert any(text for text in alone)  # the random model does generate something to compare


def test_smollm2_shared_with_its_scorer_answers_token_for_token_as_alone(smollm2: Any) -> None:
    """The real model: its scorer's capturing attention is installed; answers equal a fresh plain-sdpa copy's."""
    from qrhead_integrations.models import load_model

    plain = load_model("smollm2-135m-instruct", dtype="float32")
    assert plain.model.config._attn_implementation != smollm2.model.config._attn_implementation
    alone = [Reader(plain.model, plain.tokenizer).answer(q, CONTEXT) for q in QUESTIONS]
    shared = [Reader.from_scorer(smollm2).answer(q, CONTEXT) for q in QUESTIONS]
    assert [a.raw for a in shared] == [a.raw for a in alone]
    assert "paris" in shared[0].text.lower()


def test_prompt_treats_control_tokens_in_the_context_as_text(tokenizer: Any, tiny_llama: Any) -> None:
    reader = Reader(tiny_llama, tokenizer)
    ids = reader.prompt_ids("Who?", "a <|im_end|> b")
    end = tokenizer.convert_tokens_to_ids("<|im_end|>")
    template_ends = reader.prompt_ids("Who?", "a b").count(end)
    assert ids.count(end) == template_ends  # only the template's own end-of-turn markers


def test_closed_book_prompt_is_shorter_and_uses_its_own_instruction(tokenizer: Any, tiny_llama: Any) -> None:
    reader = Reader(tiny_llama, tokenizer)
    assert len(reader.prompt_ids("Who?")) < len(reader.prompt_ids("Who?", CONTEXT))
    assert reader.messages("Who?", None)[0]["content"] == reader.closed_book_instruction
    answer = reader.answer("Who?", None)
    assert answer.input_tokens == len(reader.prompt_ids("Who?")) and answer.output_tokens <= reader.max_new_tokens


def test_plain_tokenizer_without_chat_template(plain_tokenizer: Any, tiny_llama: Any) -> None:
    reader = Reader(tiny_llama, plain_tokenizer, max_new_tokens=4)
    assert reader.answer("Who?", "Some text.").input_tokens > 0


@pytest.mark.parametrize(
    ("call", "error"),
    [
        (lambda r: r.answer("  ", "text"), EmptyQueryError),
        (lambda r: r.answer("Who?", 3), PassageTypeError),
        (lambda r: r.answer("Who?", "a \ud800 b"), UnencodableTextError),
        (lambda r: r.answer(None), PassageTypeError),
        (lambda r: r.answer("Who?", "word " * 3000), InvalidInputError),  # past the model's 2048 positions
    ],
)
def test_bad_input_is_a_typed_error(tokenizer: Any, tiny_llama: Any, call: Any, error: type[Exception]) -> None:
    with pytest.raises(error):
        call(Reader(tiny_llama, tokenizer))


def test_constructor_checks_its_options(tokenizer: Any, tiny_llama: Any) -> None:
    with pytest.raises(InvalidInputError):
        Reader(tiny_llama, tokenizer, max_new_tokens=0)
    with pytest.raises(InvalidInputError):
        Reader(tiny_llama, tokenizer, instruction=None)  # type: ignore[arg-type]


def test_shared_lock_serialises_reader_and_scorer(tiny_scorer: Any) -> None:
    reader = Reader.from_scorer(tiny_scorer, max_new_tokens=2)
    errors: list[BaseException] = []

    def work(i: int) -> None:
        try:
            if i % 2:
                reader.answer("Who?", CONTEXT)
            else:
                tiny_scorer.rank("Who?", CONTEXT.split("\n\n"))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors


@pytest.mark.parametrize(
    ("generated", "answer"),
    [
        ("Rush", "Rush"),
        ("Answer: Rush\nBecause the drummer...", "Rush"),
        ('\n  "Neil Peart"  ', "Neil Peart"),
        ("The answer is Rush", "Rush"),
        ("", ""),
    ],
)
def test_short_answer(generated: str, answer: str) -> None:
    assert short_answer(generated) == answer
