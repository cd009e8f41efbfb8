"""The extra is optional: a clear install hint without langchain-core, and an engine that never imports it."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest


def test_missing_langchain_core_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "langchain_core", None)  # makes `import langchain_core` fail
    monkeypatch.delitem(sys.modules, "qrhead_integrations.langchain", raising=False)
    with pytest.raises(ImportError, match=r"pip install 'qrhead-integrations\[langchain\]'"):
        importlib.import_module("qrhead_integrations.langchain")


def test_the_engine_does_not_import_langchain() -> None:
    code = (
        "import sys, qrhead_integrations\n"
        "from qrhead_integrations import scorer, prompt, models\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('langchain_core', 'langchain_classic')))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
