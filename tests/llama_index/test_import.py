"""An optional extra: a clear ImportError without LlamaIndex, and no LlamaIndex import in the engine."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run_python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)


def test_missing_llama_index_names_the_extra() -> None:
    code = (
        "import sys\n"
        "sys.modules['llama_index'] = None  # as if llama-index-core were not installed\n"
        "try:\n"
        "    import qrhead_integrations.llama_index\n"
        "except ImportError as exc:\n"
        "    print(exc)\n"
        "else:\n"
        "    raise SystemExit('no ImportError')\n"
    )
    result = run_python(code)
    assert result.returncode == 0, result.stderr
    assert "pip install 'qrhead-integrations[llamaindex]'" in result.stdout


def test_engine_does_not_import_llama_index() -> None:
    code = (
        "import sys\n"
        "import qrhead_integrations, qrhead_integrations.scorer\n"
        "loaded = [m for m in sys.modules if m == 'llama_index' or m.startswith('llama_index.')]\n"
        "assert not loaded, loaded\n"
    )
    result = run_python(code)
    assert result.returncode == 0, result.stderr
