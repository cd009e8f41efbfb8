"""Every benchmark and research script imports names the package still has (a renamed or moved function fails
here, not when a maintainer re-runs a study an hour into its cache)."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = sorted([*ROOT.glob("benchmarks/*.py"), *ROOT.glob("research/*.py"), *ROOT.glob("examples/*.py")])


def _package_imports(path: Path) -> list[tuple[str, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("qrhead_integrations"):
            found.extend((node.module, alias.name) for alias in node.names)
        elif isinstance(node, ast.Import):
            found.extend((alias.name, "") for alias in node.names if alias.name.startswith("qrhead_integrations"))
    return found


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_the_package_names_a_script_imports_exist(script: Path) -> None:
    missing = []
    for module, name in _package_imports(script):
        loaded = importlib.import_module(module)
        if name and not hasattr(loaded, name):
            try:
                importlib.import_module(f"{module}.{name}")
            except ImportError:
                missing.append(f"{module}.{name}")
    assert not missing, f"{script.name} imports names the package no longer has: {missing}"


def test_the_check_sees_a_missing_name(tmp_path: Path) -> None:
    fake = tmp_path / "fake.py"
    fake.write_text("from qrhead_integrations.presets import model_fusion_gone\n", encoding="utf-8")
    assert _package_imports(fake) == [("qrhead_integrations.presets", "model_fusion_gone")]
    assert not hasattr(importlib.import_module("qrhead_integrations.presets"), "model_fusion_gone")
