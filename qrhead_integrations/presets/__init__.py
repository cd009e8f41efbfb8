"""Built-in head sets, shipped as package data (the package never reads files outside itself at run time).

``published.json`` holds the sets published with the QRHead paper for Llama/Qwen models; ``bundled.json`` holds
the sets for the bundled offline models. Each model maps preset names (``"nq"``, ``"lme"``, ...) to a head string
and its provenance; ``"_default"`` names the set used when the caller does not choose one.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Sequence
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from ..errors import HeadSpecError
from ..fusion import DEFAULT_FUSION, Fusion
from ..heads import HeadSet

PRESET_FILES = ("bundled.json", "published.json")


@cache
def _catalogue() -> dict[str, dict[str, Any]]:
    models: dict[str, dict[str, Any]] = {}
    for name in PRESET_FILES:
        text = resources.files(__name__).joinpath(name).read_text(encoding="utf-8")
        for model_id, sets in json.loads(text)["models"].items():
            models[model_id.lower()] = sets
    return models


def _lookup(model_id: str | None) -> dict[str, Any] | None:
    """Find a model's presets by exact id, case-insensitively, or by the id's last path component."""
    if not model_id:
        return None
    catalogue = _catalogue()
    key = model_id.lower().rstrip("/")
    if key in catalogue:
        return catalogue[key]
    tail = key.rsplit("/", 1)[-1]
    matches = [sets for mid, sets in catalogue.items() if mid.rsplit("/", 1)[-1] == tail]
    return matches[0] if len(matches) == 1 else None


def known_models() -> list[str]:
    """Model ids that have built-in head sets."""
    return sorted(_catalogue())


def preset_names(model_id: str | None) -> list[str]:
    """Names of the built-in head sets for ``model_id`` (empty when none)."""
    sets = _lookup(model_id)
    return [] if sets is None else [name for name in sets if not name.startswith("_")]


def get_preset(model_id: str | None, name: str) -> HeadSet | None:
    """The built-in set ``name`` for ``model_id``, or ``None`` when there is no such preset."""
    sets = _lookup(model_id)
    if sets is None or name.startswith("_") or name not in sets:
        return None
    entry = sets[name]
    provenance = {"model": model_id, "preset": name, **entry.get("provenance", {})}
    return HeadSet(HeadSet.parse(entry["heads"]).heads, provenance=provenance)


def default_preset(model_id: str | None) -> HeadSet | None:
    """The set used for ``model_id`` when the caller passes no heads, or ``None`` for unknown models."""
    sets = _lookup(model_id)
    if sets is None:
        return None
    return get_preset(model_id, sets["_default"])


def model_fusion(model_id: str | None) -> Fusion | None:
    """The fusion a model's rankings use by default: its presets' ``"_fusion"`` entry (a ``{"weight",
    "lexical"}`` mapping, or ``null`` for QRHead alone), chosen on that model's dev data; else
    :data:`~qrhead_integrations.fusion.DEFAULT_FUSION`."""
    sets = _lookup(model_id)
    if sets is None or "_fusion" not in sets:
        return DEFAULT_FUSION
    entry = sets["_fusion"]
    return None if entry is None else Fusion(weight=entry["weight"], lexical=entry["lexical"])


def resolve_heads(
    spec: Any,
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


def _resolve_unvalidated(spec: Any, *, model_id: str | None, num_layers: int, num_heads: int) -> HeadSet:
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
        if "-" not in text:
            preset = get_preset(model_id, text)
            if preset is None:
                names = preset_names(model_id)
                known = f"presets for this model: {names}" if names else "this model has no presets"
                raise HeadSpecError(
                    f"unknown head preset {spec!r} for model {model_id!r} ({known}; or use 'all', "
                    "'layer:N', a 'layer-head,...' list or a head-set JSON file)"
                )
            return preset
        return HeadSet.parse(text)
    if isinstance(spec, Sequence):
        return HeadSet.from_pairs(spec)
    raise HeadSpecError(f"unsupported head specification of type {type(spec).__name__}")
