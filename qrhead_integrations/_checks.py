"""The one check of an integer option (``top_n``, ``rows_per_forward``, ``batch_size``, ``max_layer``...).

Every public entry point checks its integer options before any model work, with the same rule and the same
message: ``bool`` is refused (``True`` is an ``int`` to Python, never a count to a caller), floats are refused
(``2.0`` rows is a mistake worth naming), and the bounds are stated in the message.
"""

from __future__ import annotations

import math
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


def check_bool(value: object, name: str) -> bool:
    """``value`` if it is a ``bool`` (numpy's too); a typed error naming the option otherwise.

    Why strict: ``"no"`` and ``"false"`` are truthy, so accepting any value would turn a switch on by mistake.

    Raises:
        InvalidInputError: anything else, naming the option and the value.
    """
    if isinstance(value, bool) or type(value).__name__ == "bool_":  # numpy.bool_ without importing numpy
        return bool(value)
    raise InvalidInputError(f"{name} must be True or False, got {value!r}")


def check_choice(value: object, name: str, choices: tuple[str, ...]) -> str:
    """``value`` if it is one of ``choices``; a typed error naming the option and the choices otherwise.

    Raises:
        InvalidInputError: anything else (a value of another type too, without comparing it).
    """
    if isinstance(value, str) and value in choices:
        return value
    listed = ", ".join(repr(choice) for choice in choices)
    raise InvalidInputError(f"{name} must be one of {listed}, got {value!r}")


def check_real(value: object, name: str, *, optional: bool = False, finite: bool = True) -> float | None:
    """``value`` as a ``float`` if it is a real number (not ``bool``, not NaN; finite when ``finite``).

    Raises:
        InvalidInputError: anything else, naming the option and the value.
    """
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        none = " or None" if optional else ""
        raise InvalidInputError(f"{name} must be a number{none}, got {value!r}")
    number = float(value)
    if math.isnan(number) or (finite and math.isinf(number)):
        raise InvalidInputError(f"{name} must be a {'finite ' if finite else ''}number, got {value!r}")
    return number
