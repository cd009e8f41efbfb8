"""scripts/setup.sh asks PyTorch's CPU wheel index for torch first and falls back to the configured index.

No network: the venv's ``python`` is a shim that logs each call; a pip call naming an index URL fails (an
unreachable index, as on a mirror-only network) or succeeds, as the test chooses.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

SETUP = Path(__file__).resolve().parents[1] / "scripts" / "setup.sh"

_SHIM = """#!/usr/bin/env bash
echo "$*" >> "{log}"
case "$*" in
  *"import torch"*) exit 1 ;;
  *"--index-url"*) exit {index_rc} ;;
esac
exit 0
"""


def _run_setup(tmp_path: Path, *, index_rc: int) -> list[str]:
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    log = tmp_path / "calls.log"
    shim = venv / "bin" / "python"
    shim.write_text(_SHIM.format(log=log, index_rc=index_rc))
    shim.chmod(0o755)
    env = {**os.environ, "VENV": str(venv), "TORCH_CPU_INDEX": "https://cpu.invalid/whl/cpu"}
    subprocess.run(["bash", str(SETUP)], env=env, check=True, capture_output=True, timeout=60)
    return [line for line in log.read_text().splitlines() if line.startswith("-m pip install") and "torch==" in line]


def test_torch_comes_from_the_cpu_index_when_it_answers(tmp_path: Path) -> None:
    calls = _run_setup(tmp_path, index_rc=0)
    assert len(calls) == 1
    assert "--index-url https://cpu.invalid/whl/cpu" in calls[0]


def test_torch_falls_back_to_the_configured_index_after_the_cpu_index(tmp_path: Path) -> None:
    calls = _run_setup(tmp_path, index_rc=1)
    assert len(calls) == 2
    assert "--index-url https://cpu.invalid/whl/cpu" in calls[0]
    assert "--index-url" not in calls[1] and "torch==" in calls[1]
