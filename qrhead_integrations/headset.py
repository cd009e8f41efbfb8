"""The head-set value: which (layer, head) attention heads a scorer reads, with their scores and provenance.

The text form is the one the QRHead paper publishes: ``"13-18,13-21,8-11"`` — ``layer-head`` pairs, 0-indexed,
best first. A :class:`HeadSet` is an immutable value; it can be saved to and loaded from JSON together with the
per-head detection scores and where it came from (model, data, method, date), so a head file is self-describing.
"""

from __future__ import annotations

import json
import math
import numbers
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ._checks import check_int
from ._files import write_text_atomic
from .errors import HeadSpecError

Head = tuple[int, int]
"""One attention head: ``(layer, head)``, both 0-indexed."""

HEADSET_FORMAT_VERSION = 1


def _index(value: object) -> int | None:
    """``value`` as a layer or head index when it is a non-negative integer (``bool`` is not one), else ``None``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or int(value) < 0:
        return None
    return int(value)


def _pair(item: object) -> Head:
    """One ``(layer, head)`` pair of non-negative ints (numpy ints too); a typed error naming ``heads`` otherwise.

    Why strict: ``int(0.7)`` is layer 0 and ``int(True)`` layer 1, so converting would read a head nobody asked for.
    """
    if isinstance(item, str | bytes | bytearray) or not isinstance(item, Sequence) or len(item) != 2:
        raise HeadSpecError(f"heads: {item!r} is not a (layer, head) pair")
    layer, head = _index(item[0]), _index(item[1])
    if layer is None or head is None:
        raise HeadSpecError(f"heads: {tuple(item)!r} is not a (layer, head) pair of non-negative ints")
    return layer, head


def _parse_pair(token: str) -> Head:
    parts = token.strip().split("-")
    if len(parts) != 2 or not all(p.strip().isdigit() for p in parts):
        raise HeadSpecError(f"cannot parse head {token!r}: expected 'layer-head' with two non-negative integers")
    return int(parts[0]), int(parts[1])


@dataclass(frozen=True)
class HeadSet:
    """An ordered set of attention heads (best first), optionally with a score per head.

    Attributes:
        heads: ``(layer, head)`` pairs, unique, in rank order.
        scores: one detection score per head (same order), or ``None`` when the set was written by hand.
        provenance: free-form facts about where the set came from (model, data, split, method, count, date).
    """

    heads: tuple[Head, ...]
    scores: tuple[float, ...] | None = None
    provenance: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        """Check the heads (non-negative ``(layer, head)`` ints, no repeat) and their scores."""
        if isinstance(self.heads, str | bytes | bytearray) or not isinstance(self.heads, Sequence):
            raise HeadSpecError(f"heads must be a tuple of (layer, head) pairs, got {type(self.heads).__name__}")
        object.__setattr__(self, "heads", tuple(_pair(item) for item in self.heads))  # plain ints, checked
        if not self.heads:
            raise HeadSpecError("a head set needs at least one head")
        seen: set[Head] = set()
        for layer, head in self.heads:
            if (layer, head) in seen:
                raise HeadSpecError(f"head {layer}-{head} is listed twice")
            seen.add((layer, head))
        if self.scores is not None and len(self.scores) != len(self.heads):
            raise HeadSpecError(f"{len(self.scores)} scores for {len(self.heads)} heads")
        if not isinstance(self.provenance, Mapping):
            raise HeadSpecError(f"head set provenance must be a mapping, got {type(self.provenance).__name__}")

    # ----------------------------------------------------------------------------------------- construction
    @classmethod
    def parse(cls, spec: str) -> HeadSet:
        """Parse ``"13-18,13-21"`` (commas and/or whitespace between pairs)."""
        tokens = [t for t in spec.replace(",", " ").split() if t]
        if not tokens:
            raise HeadSpecError("empty head specification")
        return cls(tuple(_parse_pair(t) for t in tokens))

    @classmethod
    def from_pairs(cls, pairs: Iterable[Sequence[int]]) -> HeadSet:
        """Build from ``[(layer, head), ...]`` (lists or tuples of non-negative ints, numpy ints included).

        Raises:
            HeadSpecError: ``pairs`` is not a list of pairs, or a pair is not two non-negative ints (a float,
                a ``bool`` or a string is refused, not converted).
        """
        if isinstance(pairs, str | bytes | bytearray) or not isinstance(pairs, Iterable):
            raise HeadSpecError(f"heads must be a list of (layer, head) pairs, got {type(pairs).__name__}")
        return cls(tuple(_pair(pair) for pair in pairs))

    @classmethod
    def all_heads(cls, num_layers: int, num_heads: int, layers: Iterable[int] | None = None) -> HeadSet:
        """Every head of the given layers (all layers by default): the ICR baseline, or a whole-layer set."""
        chosen = range(num_layers) if layers is None else layers
        return cls(
            tuple((layer, h) for layer in chosen for h in range(num_heads)),
            provenance={"method": "all" if layers is None else "layers"},
        )

    # -------------------------------------------------------------------------------------------- queries
    def __len__(self) -> int:
        """How many heads."""
        return len(self.heads)

    def __iter__(self) -> Iterator[Head]:
        """The heads, in order (best first for a detected set)."""
        return iter(self.heads)

    def __str__(self) -> str:
        """The ``"layer-head,..."`` form that :meth:`parse` reads."""
        return ",".join(f"{layer}-{head}" for layer, head in self.heads)

    @property
    def layers(self) -> tuple[int, ...]:
        """Sorted distinct layers that hold at least one head."""
        return tuple(sorted({layer for layer, _ in self.heads}))

    @property
    def deepest_layer(self) -> int:
        """The deepest layer that holds a head: the forward pass can stop right after it."""
        return max(layer for layer, _ in self.heads)

    def by_layer(self) -> dict[int, list[int]]:
        """``{layer: [head, ...]}`` in set order, for the capture code."""
        out: dict[int, list[int]] = {}
        for layer, head in self.heads:
            out.setdefault(layer, []).append(head)
        return out

    def top(self, k: int) -> HeadSet:
        """The first ``k`` heads (the set is kept in rank order)."""
        check_int(k, "top(k)'s k", minimum=1, error=HeadSpecError)
        scores = None if self.scores is None else self.scores[:k]
        return HeadSet(self.heads[:k], scores, dict(self.provenance))

    def validate(self, num_layers: int, num_heads: int) -> HeadSet:
        """Raise :class:`HeadSpecError` naming the first head the model does not have; return ``self``."""
        for layer, head in self.heads:
            if layer >= num_layers:
                raise HeadSpecError(f"head {layer}-{head}: the model has {num_layers} layers (0..{num_layers - 1})")
            if head >= num_heads:
                raise HeadSpecError(
                    f"head {layer}-{head}: the model has {num_heads} heads per layer (0..{num_heads - 1})"
                )
        return self

    # ----------------------------------------------------------------------------------------------- JSON
    def to_dict(self) -> dict[str, Any]:
        """The JSON form: format version, heads, scores and provenance."""
        return {
            "format_version": HEADSET_FORMAT_VERSION,
            "heads": str(self),
            "scores": None if self.scores is None else [float(s) for s in self.scores],
            "provenance": dict(self.provenance),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> HeadSet:
        """A head set from its JSON form (``heads`` as a string or as pairs)."""
        if "heads" not in data:
            raise HeadSpecError("head set JSON has no 'heads' field")
        heads_field = data["heads"]
        parsed = cls.parse(heads_field) if isinstance(heads_field, str) else cls.from_pairs(heads_field)
        provenance = data.get("provenance") or {}
        if not isinstance(provenance, Mapping):
            raise HeadSpecError(f"head set JSON field 'provenance' must be an object, got {type(provenance).__name__}")
        return cls(parsed.heads, _scores(data.get("scores")), dict(provenance))

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write JSON atomically (a temp file renamed into place), so an interrupted run leaves no half file."""
        target = Path(path)
        write_text_atomic(target, json.dumps(self.to_dict(), indent=2) + "\n")
        return target

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> HeadSet:
        """A head set from a JSON file (see :meth:`save`)."""
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except UnicodeDecodeError as exc:
            raise HeadSpecError(f"{path}: not UTF-8 text (byte {exc.object[exc.start]:#04x} at {exc.start})") from exc
        except (json.JSONDecodeError, RecursionError) as exc:
            raise HeadSpecError(f"{path}: not valid JSON ({type(exc).__name__}: {exc})") from exc
        if not isinstance(data, dict):
            raise HeadSpecError(f"{path}: expected a JSON object with a 'heads' field")
        try:
            return cls.from_dict(data)
        except HeadSpecError as exc:
            raise HeadSpecError(f"{path}: {exc}") from exc


def _scores(value: object) -> tuple[float, ...] | None:
    """A head set's ``scores`` field: ``None`` or a list of finite numbers; a typed error naming the field."""
    if value is None:
        return None
    if isinstance(value, str | bytes | bytearray | Mapping) or not isinstance(value, Iterable):
        raise HeadSpecError(f"head set field 'scores' must be a list of numbers, got {type(value).__name__}")
    out = []
    for i, score in enumerate(value):
        if isinstance(score, bool) or not isinstance(score, numbers.Real) or not math.isfinite(float(score)):
            raise HeadSpecError(f"head set field 'scores'[{i}] must be a finite number, got {score!r}")
        out.append(float(score))
    return tuple(out)
