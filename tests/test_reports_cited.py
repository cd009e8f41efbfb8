"""The reports are the docs' evidence: every report a doc cites exists, and every report in ``reports/`` is cited.

A *report* is one run's output under one name: ``reports/NAME.json`` (with the command that made it) and the
Markdown table and chart rendered from it (``NAME.md``, ``NAME.png``) — citing any of them cites the report, and
citing ``reports/FOLDER/`` cites a folder of one run's files. The citing texts are the pages a reader follows:
README.md, docs/, benchmarks/README.md and research/README.md, and the package itself (docstrings and preset
provenance name reports too). Delete a report nothing cites, or cite it; fix a citation that points nowhere.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
REPORTS = REPO / "reports"
CITATION = re.compile(r"reports/[A-Za-z0-9_.\-/]*[A-Za-z0-9_/]")
SCRIPT = re.compile(r"\b(?:benchmarks|research|scripts)/[A-Za-z0-9_]+\.(?:py|sh)\b")


def doc_pages() -> list[Path]:
    """The pages a reader follows: the README, the docs site, the two script folders' READMEs."""
    pages = [REPO / "README.md", REPO / "benchmarks" / "README.md", REPO / "research" / "README.md"]
    return pages + sorted((REPO / "docs").rglob("*.md"))


def citing_texts() -> dict[Path, str]:
    """Every text whose report citations count: the doc pages, and the package's modules and preset files."""
    package = REPO / "qrhead_integrations"
    files = doc_pages() + sorted(package.rglob("*.py")) + sorted(package.rglob("*.json"))
    return {path: path.read_text(encoding="utf-8") for path in files}


def citations(texts: dict[Path, str]) -> dict[str, list[Path]]:
    """``reports/...`` paths as written, with the files that write them."""
    found: dict[str, list[Path]] = {}
    for path, text in texts.items():
        for match in CITATION.findall(text):
            found.setdefault(match, []).append(path)
    return found


def report_of(path: Path, reports: Path) -> str:
    """The report a file belongs to: ``reports/NAME`` for a top-level file, ``reports/FOLDER/`` inside a folder."""
    relative = path.relative_to(reports)
    if len(relative.parts) > 1:
        return f"reports/{relative.parts[0]}/"
    return f"reports/{relative.name.split('.')[0]}"


def uncited(reports: Path, cited: set[str]) -> list[str]:
    """Files under ``reports`` whose report no citation names (a cited file cites its report's other files)."""
    named = {report_of(reports.parent / c, reports) for c in cited if (reports.parent / c).is_file()}
    named |= {c if c.endswith("/") else c + "/" for c in cited if (reports.parent / c).is_dir()}
    files = sorted(p for p in reports.rglob("*") if p.is_file())
    return [str(p.relative_to(reports.parent)) for p in files if report_of(p, reports) not in named]


def test_every_cited_report_exists() -> None:
    missing = {c: [str(p.relative_to(REPO)) for p in by] for c, by in citations(citing_texts()).items()}
    missing = {c: by for c, by in missing.items() if not (REPO / c).exists()}
    assert not missing, f"cited but not in the repository: {missing}"


def test_every_report_is_cited() -> None:
    left = uncited(REPORTS, set(citations(citing_texts())))
    assert not left, f"reports nothing cites (cite them in a doc, or delete them): {left}"


def test_an_uncited_file_and_a_dangling_citation_are_caught(tmp_path: Path) -> None:
    """The checks above can fail: a file beside a cited report counts, a stray one or a stray folder does not."""
    reports = tmp_path / "reports"
    (reports / "gpu").mkdir(parents=True)
    for name in ("a.json", "a.md", "a.png", "b.json", "gpu/log.txt", "c.md"):
        (reports / name).write_text("{}", encoding="utf-8")
    assert uncited(reports, {"reports/a.md", "reports/gpu/"}) == ["reports/b.json", "reports/c.md"]
    assert uncited(reports, {"reports/a.json", "reports/b.json", "reports/c.md"}) == ["reports/gpu/log.txt"]
    assert citations({tmp_path / "x.md": "see `reports/a.md`, reports/gpu/ and reports/zz.md."}) == {
        "reports/a.md": [tmp_path / "x.md"],
        "reports/gpu/": [tmp_path / "x.md"],
        "reports/zz.md": [tmp_path / "x.md"],
    }


def test_every_json_report_records_the_command_that_made_it() -> None:
    """A report anyone can re-run: its JSON says how (``command``, or ``info.command`` for ``qrhead eval``'s, or
    each run's ``command`` for a report that gathers several runs); a report its script writes as Markdown only
    says it in a ``Command:`` line."""
    for path in sorted(REPORTS.rglob("*.json")):
        data = json.loads(path.read_text(encoding="utf-8"))
        runs = data.get("runs") if isinstance(data.get("runs"), list) else [data]
        assert runs, path.name
        for run in runs:
            command = run.get("command") or run.get("info", {}).get("command")
            assert isinstance(command, str) and command.split()[0] in ("python", "qrhead"), path.name
    for path in sorted(REPORTS.glob("*.md")):
        if not path.with_suffix(".json").exists():
            assert "Command: `python " in path.read_text(encoding="utf-8"), path.name


def test_every_script_a_doc_names_exists() -> None:
    """A page that says ``python benchmarks/x.py`` or ``research/x.py`` points at a script that is there."""
    missing = {
        f"{page.relative_to(REPO)}: {script}"
        for page in doc_pages()
        for script in SCRIPT.findall(page.read_text(encoding="utf-8"))
        if not (REPO / script).is_file()
    }
    assert not missing, sorted(missing)
