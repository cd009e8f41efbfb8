"""The one check of an integer option (``top_n``, ``rows_per_forward``, ``batch_size``, ``max_layer``...).

Every public entry point checks its integer options before any model work, with the same rule and the same
message: ``bool`` is refused (``True`` is an ``int`` to Python, never a count to a caller), floats are refused
(``2.0`` rows is a mistake worth naming), and the bounds are stated in the message.
"""

from __future__ import annotations

import numbers
from typing import Literal, overload

from .errors import InvalidInputError, QRHeadError


@overload
def check_int(
    value: object,
    name: str,
    *,
    minimum: int = ...,
    maximum: int | None = ...,
    optional: Literal[False] = ...,
    hint: str = ...,
    error: type[QRHeadError] = ...,
) -> int: ...


@overload
def check_int(
    value: object,
    name: str,
    *,
    minimum: int = ...,
    maximum: int | None = ...,
    optional: bool,
    hint: str = ...,
    error: type[QRHeadError] = ...,
) -> int | None: ...


def check_int(
    value: object,
    name: str,
    *,
    minimum: int = 0,
    maximum: int | None = None,
    optional: bool = False,
    hint: str = "",
    error: type[QRHeadError] = InvalidInputError,
) -> int | None:
    """``value`` as an ``int`` if it is an integer within the bounds (or ``None`` when ``optional``).

    Args:
        value: what the caller passed.
        name: the option's name, as the caller spells it (``"top_n"``, ``"--top-k"``).
        minimum: the smallest value allowed.
        maximum: the largest value allowed (``None``: no upper bound).
        optional: whether ``None`` is allowed (it is returned as is).
        hint: a few words after the range, saying what the bound means.
        error: the exception class to raise (a :class:`~qrhead_integrations.errors.QRHeadError`).

    Raises:
        InvalidInputError: (or ``error``) anything else, naming the option, its range and the value.
    """
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise error(_message(name, minimum, maximum, optional, hint, value))
    number = int(value)
    if number < minimum or (maximum is not None and number > maximum):
        raise error(_message(name, minimum, maximum, optional, hint, value))
    return number


def _message(name: str, minimum: int, maximum: int | None, optional: bool, hint: str, value: object) -> str:
    bounds = f">= {minimum}" if maximum is None else f"in {minimum}..{maximum}"
    none = " or None" if optional else ""
    why = f" ({hint})" if hint else ""
    return f"{name} must be an int {bounds}{none}{why}, got {value!r}"
