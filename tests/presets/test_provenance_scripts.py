"""A preset's provenance names the scripts that detected it; they must exist where it says (a reader follows them)."""

from __future__ import annotations

import json
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CATALOGUES = sorted((REPO / "qrhead_integrations" / "presets").glob("*.json"))


def test_every_script_a_preset_names_exists() -> None:
    named = set()
    for catalogue in CATALOGUES:
        named |= set(re.findall(r"[\w./-]+\.py", catalogue.read_text(encoding="utf-8")))
    assert named, "the bundled presets name the scripts that detected them"
    missing = sorted(path for path in named if not (REPO / path).is_file())
    assert not missing, missing


def test_the_catalogues_are_valid_json() -> None:
    for catalogue in CATALOGUES:
        assert isinstance(json.loads(catalogue.read_text(encoding="utf-8")), dict)
