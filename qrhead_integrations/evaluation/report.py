"""Evaluation reports: the result object, its atomic JSON file, a Markdown table and a bar-chart PNG.

Files are written to a temporary name in the target folder and renamed into place (``os.replace`` is atomic),
so Ctrl-C or a crash mid-write never leaves a half-written report where a finished one is expected.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from .._files import atomic_path, write_text_atomic

SYSTEM_ORDER = ("default", "default_qrhead", "qrhead", "bm25", "dense", "all_heads", "fusion", "fusion_dense")
"""How systems are listed in tables and plots (others follow in insertion order)."""


@dataclass
class EvalReport:
    """The result of one evaluation run.

    Attributes:
        metrics: ``{system: {metric: mean}}``, e.g. ``{"qrhead": {"ndcg@10": 0.71}, "bm25": {...}}``.
        per_query: ``{system: {query id: {metric: value}}}`` for significance tests and error analysis.
        info: how the run was made: model, heads, data, split, n_queries, order, top_k, versions, timings...
    """

    metrics: dict[str, dict[str, float]]
    per_query: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def systems(self) -> list[str]:
        """System names in display order."""
        known = [name for name in SYSTEM_ORDER if name in self.metrics]
        return known + [name for name in self.metrics if name not in SYSTEM_ORDER]

    @property
    def metric_names(self) -> list[str]:
        """Metric names in the order of the first system's entry."""
        first = next(iter(self.metrics.values()), {})
        return list(first)

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape ``{"metrics": ..., "per_query": ..., "info": ...}``."""
        return {"metrics": self.metrics, "per_query": self.per_query, "info": self.info}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EvalReport:
        """Rebuild a report from :meth:`to_dict` output (e.g. a JSON file read back)."""
        return cls(metrics=data["metrics"], per_query=data.get("per_query", {}), info=data.get("info", {}))

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> EvalReport:
        """Read a report JSON file."""
        return cls.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))


def write_report(report: EvalReport, path: str | os.PathLike[str]) -> Path:
    """Write the report as indented JSON, atomically; return the path."""
    return write_text_atomic(path, json.dumps(report.to_dict(), indent=2, ensure_ascii=False) + "\n")


def markdown_table(report: EvalReport, *, digits: int = 3, bold_best: bool = True, comparisons: bool = False) -> str:
    """A Markdown table of systems × metrics (the best value of each metric in bold).

    With ``comparisons``, a list of :func:`default_comparisons` follows the table (needs per-query results).
    """
    names = report.metric_names
    best = {m: max(report.metrics[s].get(m, float("-inf")) for s in report.systems) for m in names}
    lines = ["| system | " + " | ".join(names) + " |", "| --- |" + " --- |" * len(names)]
    for system in report.systems:
        cells = []
        for metric in names:
            value = report.metrics[system].get(metric)
            text = "—" if value is None else f"{value:.{digits}f}"
            strong = bold_best and value is not None and round(value, digits) == round(best[metric], digits)
            cells.append(f"**{text}**" if strong else text)
        lines.append(f"| {system} | " + " | ".join(cells) + " |")
    if comparisons:
        lines.append("")
        lines += [f"- {comparison}" for comparison in default_comparisons(report)]
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class PairedComparison:
    """System ``a`` against system ``b`` on one metric, query by query.

    Attributes:
        a, b: the system names.
        metric: the metric compared.
        diff: mean of ``a - b`` over the queries both systems have.
        wins, losses, ties: queries where ``a`` is higher, lower, equal.
        p_not_better: share of paired-bootstrap resamples whose mean difference is <= 0 (small: ``a`` is
            reliably better; near 0.5: no difference; large: ``b`` is better).
    """

    a: str
    b: str
    metric: str
    diff: float
    wins: int
    losses: int
    ties: int
    p_not_better: float

    def __str__(self) -> str:
        """One line: the difference, the wins, losses and ties, and the bootstrap probability of no gain."""
        return (
            f"{self.a} vs {self.b} on {self.metric}: {self.diff:+.3f} (better on {self.wins}, worse on {self.losses}, "
            f"equal on {self.ties} queries; paired bootstrap P(no gain) = {self.p_not_better:.2f})"
        )


def paired_comparison(
    report: EvalReport, a: str, b: str, metric: str, *, samples: int = 2000, seed: int = 0
) -> PairedComparison:
    """Compare two systems of a report query by query (wins/losses/ties and a seeded paired bootstrap).

    Raises:
        KeyError: a system or the metric is not in the report's per-query results.
    """
    rows_a, rows_b = report.per_query[a], report.per_query[b]
    diffs = [rows_a[q][metric] - rows_b[q][metric] for q in rows_a if q in rows_b]
    eps = 1e-12
    wins, losses = sum(d > eps for d in diffs), sum(d < -eps for d in diffs)
    rng = random.Random(seed)
    n = len(diffs)
    not_better = sum(sum(rng.choices(diffs, k=n)) <= 0 for _ in range(samples)) if n else samples
    return PairedComparison(
        a, b, metric, sum(diffs) / n if n else 0.0, wins, losses, n - wins - losses, not_better / samples
    )


def default_comparisons(report: EvalReport) -> list[PairedComparison]:
    """The comparisons a report prints, on its first metric.

    ``qrhead`` against every other system, each fusion against ``qrhead``, and ``default`` (what the adapters do)
    against ``bm25``, ``qrhead`` and its own unfused scores (``default_qrhead``).
    """
    if not report.metric_names:
        return []
    metric = report.metric_names[0]
    fused = ("fusion", "fusion_dense")
    own = ("default", "default_qrhead")
    pairs: list[tuple[str, str]] = []
    if "qrhead" in report.per_query:
        pairs += [("qrhead", name) for name in report.systems if name not in ("qrhead", *fused, *own)]
        pairs += [(name, "qrhead") for name in fused if name in report.per_query]
    if "default" in report.per_query:
        pairs += [("default", name) for name in ("bm25", "qrhead", "default_qrhead") if name in report.per_query]
    if "default_qrhead" in report.per_query and "bm25" in report.per_query:
        pairs.append(("default_qrhead", "bm25"))
    present = report.per_query
    return [paired_comparison(report, a, b, metric) for a, b in pairs if a in present and b in present]


def plot_report(report: EvalReport, path: str | os.PathLike[str], *, title: str | None = None) -> Path:
    """Write a grouped bar chart (metrics on the x axis, one bar per system) as a PNG, atomically.

    Uses matplotlib's Agg backend through a bare ``Figure``, so no display is needed and the global pyplot
    state is untouched.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    systems, names = report.systems, report.metric_names
    fig = Figure(figsize=(max(6.0, 1.3 * len(names) + 0.4 * len(systems) + 2), 4.2))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    width = 0.8 / max(1, len(systems))
    for i, system in enumerate(systems):
        values = [report.metrics[system].get(m, 0.0) for m in names]
        offsets = [j - 0.4 + width * (i + 0.5) for j in range(len(names))]
        bars = ax.bar(offsets, values, width, label=system)
        ax.bar_label(bars, fmt="%.2f", fontsize=6, padding=1)
    ax.set_xticks(range(len(names)), names)
    ax.set_ylim(0, 1.08)
    ax.set_ylabel("score")
    ax.legend(fontsize=8, ncols=min(len(systems), 6), loc="upper center", bbox_to_anchor=(0.5, -0.1))
    ax.set_title(title or _default_title(report), fontsize=9)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120, format="png")
    return Path(path)


def _default_title(report: EvalReport) -> str:
    info = report.info
    parts = [str(info.get("data_name") or info.get("data", "")), str(info.get("model", ""))]
    if "n_queries" in info:
        parts.append(f"n={info['n_queries']}")
    if "order" in info:
        parts.append(f"order={info['order']}")
    return " · ".join(p for p in parts if p)


def versions(*, dense: bool = False) -> dict[str, str]:
    """Installed versions of the packages a result depends on, and the checkout's commit.

    That is what a report needs to be reproduced (kept with the report writer, not in the evaluation loop).
    """
    from .. import __version__

    found = {"qrhead-integrations": __version__}
    # PyStemmer decides whether BM25 stems (it is used when installed), which changes BM25's figures.
    names = ["torch", "transformers", "bm25s", "PyStemmer", *(["sentence-transformers"] if dense else [])]
    for name in names:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "not installed"
    commit = _git_commit()
    if commit:
        found["git"] = commit
    return found


def _git_commit() -> str | None:
    """The checkout's commit (``+dirty`` when files differ) when the package runs from a git work tree."""
    folder = Path(__file__).resolve().parents[2]  # the checkout holding the package, if any
    if not (folder / ".git").exists():
        return None
    try:
        head = subprocess.run(
            ["git", "-C", str(folder), "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=10
        )
        dirty = subprocess.run(
            ["git", "-C", str(folder), "status", "--porcelain", "--untracked-files=no", "--", "qrhead_integrations"],
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if head.returncode != 0:
        return None
    return head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
