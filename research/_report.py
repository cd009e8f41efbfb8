"""The research scripts write their reports as the benchmarks do: this module is ``benchmarks/_report.py``.

Both folders hold scripts, not packages, and Python puts only a script's own folder on ``sys.path``; so this file
loads the one implementation by its path instead of keeping a copy that could drift.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

_PATH = Path(__file__).resolve().parents[1] / "benchmarks" / "_report.py"
_SPEC = importlib.util.spec_from_file_location("_benchmarks_report", _PATH)
assert _SPEC is not None and _SPEC.loader is not None
_MODULE = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(_MODULE)

REPO = _MODULE.REPO
command = _MODULE.command
relative = _MODULE.relative
write_reports = _MODULE.write_reports
