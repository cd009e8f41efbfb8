"""Typed errors raised by the engine.

Every error subclasses :class:`QRHeadError` *and* the built-in exception a caller would naturally catch
(``ValueError`` for bad values, ``TypeError`` for wrong types), so both ``except QRHeadError`` and the usual
``except ValueError`` work.
"""

from __future__ import annotations


class QRHeadError(Exception):
    """Base class of every error this package raises on purpose."""


class InvalidInputError(QRHeadError, ValueError):
    """A query or passage has an unusable value (e.g. an empty query)."""


class EmptyQueryError(InvalidInputError):
    """The query is empty or whitespace only: there is nothing to attend from."""


class UnencodableTextError(InvalidInputError):
    r"""A query, passage or title holds a lone surrogate: it is not text any tokenizer can encode.

    A lone surrogate (e.g. ``"\ud800"``) comes from a bad decode. The message names the passage and the
    position; clean the text first, e.g. with ``text.encode("utf-8", "replace").decode("utf-8")``.
    """


class OptionTypeError(InvalidInputError, TypeError):
    """An argument has the wrong type (a ``scorer`` that is not a :class:`QRHeadScorer`, rows that are no list).

    Both a ``ValueError`` (as every other bad option is) and a ``TypeError`` (as Python's own wrong-type errors
    are), so either ``except`` clause catches it.
    """


class NotPicklableError(QRHeadError, TypeError):
    """A :class:`QRHeadScorer` was pickled: it holds a loaded model, which is shared, never copied by value.

    ``copy.copy``/``copy.deepcopy`` of a scorer (and of any component holding one) share it by reference; a
    pickled adapter leaves the model behind and loads it again from its settings on first use.
    """


class PassageTypeError(QRHeadError, TypeError):
    """A passage is not text: not a ``str``, a ``(title, text)`` pair or a mapping with ``text``."""


class HeadSpecError(QRHeadError, ValueError):
    """A head specification cannot be parsed or names a layer/head the model does not have."""


class ModelLoadError(QRHeadError, RuntimeError):
    """A model or tokenizer could not be loaded (missing bundled package, bad path, unsupported file)."""


class UnsupportedModelError(QRHeadError, ValueError):
    """The model's architecture cannot be scored (e.g. no decoder layers with ``layer_idx``)."""


class DataFormatError(QRHeadError, ValueError):
    """An input data file is malformed; the message names the file and line."""


class OutputPathError(QRHeadError, ValueError):
    """An output path can never be written as a file (an existing directory, a parent that is a file, no permission).

    Raised before any work starts, so a long run's result is not lost at the end.
    """


class OutputWriteError(QRHeadError, OSError):
    """Writing a finished result failed (a full disk, a vanished folder); the result was kept elsewhere.

    The message names the path that failed and the file in the temp folder that holds the result, so a long
    run's work is never lost. Also an ``OSError``, as the failed write was.
    """


class TokenCounterError(QRHeadError, RuntimeError):
    """A token counter cannot be built, or answered something that is not a token count.

    It cannot be built for a missing package or encoding file, or something that is not a counter at all; a
    negative, NaN or ``None`` answer is not a count.
    """


class PassageCacheError(QRHeadError, RuntimeError):
    """A passage cache file is damaged or belongs to another model or setting (it is then rebuilt)."""


class PromptTooLongError(InvalidInputError):
    """A reader's prompt (instruction, context and question) does not fit the model's context window."""
