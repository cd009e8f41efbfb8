"""Built-in head sets, shipped as package data: a plain catalogue (the package never reads files outside itself).

``published.json`` holds the sets published with the QRHead paper for Llama/Qwen models; ``bundled.json`` holds
the sets for the bundled offline models. Each model maps preset names (``"nq"``, ``"lme"``, ...) to a head string,
a one-line ``about`` (what the set is, in a user's words) and its provenance; ``"_default"`` names the set used
when the caller does not choose one, and ``"_fusion"`` (where present) the model's own fusion settings.

This module only looks entries up. What a ``heads=`` argument means is :func:`qrhead_integrations.heads.resolve_heads`'s
business, and what a ``"_fusion"`` entry means is :func:`qrhead_integrations.fusion.model_fusion`'s: the catalogue
imports neither, so neither imports back into it in a circle.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any, Final

from ..headset import HeadSet

__all__ = [
    "NO_ENTRY",
    "default_preset",
    "fusion_entry",
    "get_preset",
    "known_models",
    "preset_names",
]

PRESET_FILES = ("bundled.json", "published.json")

NO_ENTRY: Final = object()
"""What :func:`fusion_entry` returns for a model whose presets carry no ``"_fusion"`` (``None`` means "QRHead
alone", so absence needs its own value)."""

_TASK_WORDS = {"multihop": "multi-hop questions", "rerank": "re-ranking queries"}


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
    """The built-in set ``name`` for ``model_id``, or ``None`` when there is no such preset.

    Its provenance holds the model, the preset's name, its one-line ``about`` and the catalogue's provenance.
    """
    sets = _lookup(model_id)
    if sets is None or name.startswith("_") or name not in sets:
        return None
    entry = sets[name]
    recorded = dict(entry.get("provenance", {}))
    about = entry.get("about") or _about_from(recorded)
    provenance = {"model": model_id, "preset": name, "about": about, **recorded}
    return HeadSet(HeadSet.parse(entry["heads"]).heads, provenance=provenance)


def default_preset(model_id: str | None) -> HeadSet | None:
    """The set used for ``model_id`` when the caller passes no heads, or ``None`` for unknown models."""
    sets = _lookup(model_id)
    if sets is None:
        return None
    return get_preset(model_id, sets["_default"])


def fusion_entry(model_id: str | None) -> object:
    """The model's raw ``"_fusion"`` entry, or :data:`NO_ENTRY` when it has none.

    The entry is a mapping of :class:`~qrhead_integrations.fusion.Fusion` fields, or ``None`` for QRHead alone.
    """
    sets = _lookup(model_id)
    if sets is None or "_fusion" not in sets:
        return NO_ENTRY
    entry: object = sets["_fusion"]
    return entry


def _about_from(provenance: dict[str, Any]) -> str:
    """A one-line description for an entry without ``about`` (the paper's sets): the task and the data."""
    task = _TASK_WORDS.get(str(provenance.get("task")), "its task")
    data = provenance.get("data")
    origin = "the QRHead paper's set" if "paper" in str(provenance.get("source", "")) else "a detected set"
    return f"{origin}, for {task}" + (f" (detected on {data})" if data else "")
