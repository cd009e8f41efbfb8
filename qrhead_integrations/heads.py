"""Head specifications: every form a ``heads=`` argument takes, resolved to a validated :class:`HeadSet`.

The value type lives in :mod:`.headset` and the shipped sets in :mod:`.presets` (a plain catalogue); this module
is the one place that knows how a caller's specification maps onto them, so the catalogue never needs to know
about specifications and the import graph stays a tree (``heads`` → ``presets`` → ``headset``).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Union

from .errors import HeadSpecError
from .headset import HEADSET_FORMAT_VERSION, Head, HeadSet
from .presets import default_preset, get_preset, preset_names

__all__ = ["HEADSET_FORMAT_VERSION", "Head", "HeadSet", "HeadSpec", "resolve_heads"]

HeadSpec = Union["HeadSet", str, "os.PathLike[str]", Sequence[Head], None]
"""What every ``heads=`` argument accepts (see :func:`resolve_heads`): ``None`` (the model's default preset), a
:class:`HeadSet`, ``"all"``, ``"layer:N"``, a preset name, a ``"layer-head,..."`` string, a head-set JSON file,
or ``(layer, head)`` pairs."""


def resolve_heads(
    spec: HeadSpec,
    *,
    model_id: str | None,
    num_layers: int,
    num_heads: int,
) -> HeadSet:
    """Turn any accepted head specification into a :class:`HeadSet` validated against the model.

    Accepted: ``None`` (the model's default preset; every head — the ICR baseline — with a warning for a model
    without presets), a :class:`HeadSet`, ``"all"``, ``"layer:16"`` / ``"layers:14,16"`` (every head of those
    layers), a preset name (``"nq"``), a ``"13-18,13-21"`` string, a path to a head-set JSON file, or a sequence
    of ``(layer, head)`` pairs.
    """
    heads = _resolve_unvalidated(spec, model_id=model_id, num_layers=num_layers, num_heads=num_heads)
    return heads.validate(num_layers, num_heads)


def _resolve_unvalidated(spec: object, *, model_id: str | None, num_layers: int, num_heads: int) -> HeadSet:
    if spec is None:
        preset = default_preset(model_id)
        if preset is not None:
            return preset
        warnings.warn(
            f"no built-in head set for model {model_id!r}: scoring with all {num_layers * num_heads} heads "
            "(the ICR baseline). Detect heads for this model with `qrhead detect` for better rankings.",
            stacklevel=4,
        )
        return HeadSet.all_heads(num_layers, num_heads)
    if isinstance(spec, HeadSet):
        return spec
    if isinstance(spec, os.PathLike) or (isinstance(spec, str) and spec.endswith(".json")):
        path = Path(spec)
        if not path.is_file():
            raise HeadSpecError(f"head file {str(path)!r} does not exist")
        return HeadSet.load(path)
    if isinstance(spec, str):
        text = spec.strip()
        if text.lower() == "all":
            return HeadSet.all_heads(num_layers, num_heads)
        prefix, _, rest = text.partition(":")
        if prefix.lower() in ("layer", "layers") and rest:
            try:
                layers = [int(x) for x in rest.replace(",", " ").split()]
            except ValueError as exc:
                raise HeadSpecError(f"cannot parse layers in {spec!r}") from exc
            for layer in layers:
                if not 0 <= layer < num_layers:
                    raise HeadSpecError(f"layer {layer}: the model has {num_layers} layers (0..{num_layers - 1})")
            return HeadSet.all_heads(num_layers, num_heads, layers=layers)
        # A preset name first: names may hold hyphens too ("rerank-best-last"); no preset is named like a list.
        preset = get_preset(model_id, text)
        if preset is not None:
            return preset
        if "-" not in text:
            names = preset_names(model_id)
            known = f"presets for this model: {names}" if names else "this model has no presets"
            raise HeadSpecError(
                f"unknown head preset {spec!r} for model {model_id!r} ({known}; or use 'all', "
                "'layer:N', a 'layer-head,...' list or a head-set JSON file)"
            )
        return HeadSet.parse(text)
    if isinstance(spec, Sequence) and not isinstance(spec, bytes | bytearray):
        return HeadSet.from_pairs(spec)
    raise HeadSpecError(
        f"unsupported head specification of type {type(spec).__name__}: heads must be None, a HeadSet, a "
        "preset name or 'layer-head,...' string, a head-set JSON path or a list of (layer, head) pairs"
    )
