"""Built-in head sets, shipped as package data (the package never reads files outside itself at run time).

``published.json`` holds the sets published with the QRHead paper for Llama/Qwen models; ``bundled.json`` holds
the sets for the bundled offline models. Each model maps preset names (``"nq"``, ``"lme"``, ...) to a head string
and its provenance; ``"_default"`` names the set used when the caller does not choose one.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any

from ..fusion import DEFAULT_FUSION, Fusion
from ..heads import HeadSet, resolve_heads

__all__ = [
    "default_preset",
    "get_preset",
    "known_models",
    "model_fusion",
    "preset_names",
    "resolve_heads",
]

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
    """The fusion a model's rankings use by default, chosen on that model's dev data.

    That is its presets' ``"_fusion"`` entry (a ``{"weight", "lexical"}`` mapping, with an optional
    ``"agreement"`` and ``"form"`` (``"ranks"`` if absent), or ``null`` for QRHead alone); else
    :data:`~qrhead_integrations.fusion.DEFAULT_FUSION`.
    """
    sets = _lookup(model_id)
    if sets is None or "_fusion" not in sets:
        return DEFAULT_FUSION
    entry = sets["_fusion"]
    if entry is None:
        return None
    return Fusion(
        weight=entry["weight"],
        lexical=entry["lexical"],
        agreement=entry.get("agreement"),
        form=entry.get("form", "ranks"),
    )
