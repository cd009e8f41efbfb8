"""The tables of docs/results.md and the eval reports' Markdown and charts, all rebuilt from the reports' JSON.

    python benchmarks/results_tables.py                          # print the tables
    python benchmarks/results_tables.py --write docs/results.md  # replace the block between the markers
    python benchmarks/results_tables.py --render                 # each `qrhead eval` report's .md and .png

Every figure comes from a report's JSON (``benchmarks/results.sh`` writes them); a run whose report is missing
shows as "—" (not run yet). ``--render`` rewrites the Markdown table and bar chart of every ``qrhead eval``
report in ``reports/`` from its JSON, as ``qrhead eval --markdown --plot`` wrote them.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
REPORTS = REPO / "reports"
BEGIN, END = "<!-- results:begin -->", "<!-- results:end -->"
MODELS = {"smollm2": "SmolLM2-135M", "qwen": "Qwen2.5-Coder-0.5B"}
DEFAULT_MODELS = {**MODELS, "large": "Qwen2.5-Coder-1.5B"}  # the defaults table lists the 1.5B too
DATASETS = {
    "hotpotqa": ("HotpotQA dev rows 100–199", "recall@2", "recall@5", "file order"),
    "scifact": ("SciFact train queries 100–149, BM25 top 20 re-ranked", "ndcg@10", "mrr@10", "BM25 best last"),
}
SYSTEM_NAMES = {
    "qrhead": "**QRHead** (detected `multihop` heads)",
    "bm25": "BM25",
    "dense": "dense (all-MiniLM-L6-v2)",
    "all_heads": "all heads (ICR)",
    "fusion": "RRF(QRHead, BM25)",
    "fusion_dense": "RRF(QRHead, dense)",
}
VARIANT_ROWS = {
    "scifact": [
        ("rerank", "qrhead", "QRHead (in-task `rerank` heads)"),
        ("rerank", "fusion", "RRF(QRHead `rerank`, BM25)"),
    ],
}
"""Extra rows from a variant run (report ``eval_<dataset>_<model>_<variant>``, first order only)."""


def _load(name: str) -> dict[str, Any] | None:
    path = REPORTS / f"{name}.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def _table(dataset: str) -> list[str]:
    title, primary, secondary, retriever_order = DATASETS[dataset]
    runs = {
        (model, order): _load(f"eval_{dataset}_{model}" + ("_shuffled" if order == "shuffled" else ""))
        for model in MODELS
        for order in ("retriever", "shuffled")
    }
    columns = [(m, o) for m in MODELS for o in ("retriever", "shuffled")]
    header = [f"{MODELS[m]}, {retriever_order if o == 'retriever' else 'shuffled'}" for m, o in columns]
    lines = [
        f"**{title}** — {primary} ({secondary}); best per column in bold",
        "",
        "| system | " + " | ".join(header) + " |",
        "|---" * (len(columns) + 1) + "|",
    ]
    rows: list[tuple[str, dict[tuple[str, str], dict[str, Any] | None], bool]] = [
        (label, {key: (r["metrics"].get(system) if r is not None else None) for key, r in runs.items()}, False)
        for system, label in SYSTEM_NAMES.items()
    ]
    for variant, system, label in VARIANT_ROWS.get(dataset, []):
        reports = {m: _load(f"eval_{dataset}_{m}_{variant}") for m in MODELS}
        variant_cells = {
            (m, o): (r["metrics"].get(system) if r is not None and o == "retriever" else None)
            for m, r in reports.items()
            for o in ("retriever", "shuffled")
        }
        rows.append((label, variant_cells, True))
    best = {
        key: max((values[primary] for _, row, _ in rows if (values := row[key]) is not None), default=None)
        for key in columns
    }
    for label, row, is_variant in rows:
        cells = []
        for key in columns:
            values = row[key]
            if runs[key] is None:
                cells.append("—")
            elif values is None:  # n/r: not run in this configuration (variants and all heads: first order only)
                cells.append("—" if is_variant and key[1] == "retriever" else "n/r")
            else:
                text = f"{values[primary]:.3f} ({values[secondary]:.3f})"
                cells.append(f"**{text}**" if values[primary] == best[key] else text)
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    timing = []
    for key in columns:
        report = runs[key]
        if report is not None:
            info = report["info"]
            timing.append(
                f"{MODELS[key[0]]} {key[1]}: {info['n_queries']} queries, {info['seconds_per_query']:.1f} s/query "
                f"({'qrhead + all heads' if 'all_heads' in report['metrics'] else 'qrhead'}, dense, BM25), "
                f"report `reports/eval_{dataset}_{key[0]}{'_shuffled' if key[1] == 'shuffled' else ''}.md`"
            )
    for variant in dict.fromkeys(v for v, _, _ in VARIANT_ROWS.get(dataset, [])):
        for model, name in MODELS.items():
            report = _load(f"eval_{dataset}_{model}_{variant}")
            if report is not None:
                info = report["info"]
                timing.append(
                    f"{name} `{variant}` heads: {info['n_queries']} queries, {info['seconds_per_query']:.1f} s/query "
                    f"(qrhead, BM25), report `reports/eval_{dataset}_{model}_{variant}.md`"
                )
    lines += ["", *(f"- {t}" for t in timing)]
    return lines


DEFAULT_RUNS = (
    ("hotpotqa", "", "HotpotQA 100–{last}, file order", "recall@2"),
    ("hotpotqa", "_shuffled", "HotpotQA 100–{last}, shuffled", "recall@2"),
    ("scifact", "", "SciFact train 100–{last}, BM25 top 20 in BM25's order", "ndcg@10"),
)
"""Each default run: data, report suffix, label (``{last}``: the last row the report read; all start at 100), metric."""


def _defaults_table() -> list[str]:
    """What the adapters do with no options (the ``default`` system) beside BM25, per bundled model."""
    lines = [
        "**The defaults on the evaluation rows** — the `default` system (`QRHeadScorer.rank` with every default, as "
        "each adapter calls it) vs BM25; Δ = default − BM25",
        "",
        "| model | data | metric | default | BM25 | Δ | attention alone | s/query (default) | report |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for model, name in DEFAULT_MODELS.items():
        # float32 runs, then the bf16 ones (the automatic dtype on CPUs with AMX bf16), where they exist.
        for tag, shown in (("", name), ("_bf16", f"{name}, bf16")):
            for dataset, suffix, label, metric in DEFAULT_RUNS:
                report_name = f"default_{dataset}_{model}{suffix}{tag}"
                report = _load(report_name)
                if report is None:
                    continue
                default, bm25 = report["metrics"]["default"][metric], report["metrics"]["bm25"][metric]
                alone = report["metrics"].get("default_qrhead", {}).get(metric)
                seconds = report["info"]["seconds"].get("default", 0.0) / max(1, report["info"]["n_queries"])
                rows = label.format(last=99 + report["info"]["n_queries"])
                lines.append(
                    f"| {shown} | {rows} | {metric} | {_bold(default, bm25)} | {_bold(bm25, default)} | "
                    f"{default - bm25:+.3f} | {'—' if alone is None else f'{alone:.3f}'} | {seconds:.1f} | "
                    f"`reports/{report_name}.md` |"
                )
            compression = _load(f"compression_{model}{tag}")
            if compression is not None and "default" in compression["metrics"]:
                metrics = compression["metrics"]
                default, bm25 = metrics["default"]["gold_kept"], metrics["bm25"]["gold_kept"]
                lines.append(
                    f"| {shown} | HotpotQA 100–199, compressed to 25% | gold passages kept | {_bold(default, bm25)} | "
                    f"{_bold(bm25, default)} | {default - bm25:+.3f} | {metrics['qrhead']['gold_kept']:.3f} | "
                    f"{compression['info']['qrhead_seconds_per_question']:.1f} | "
                    f"`reports/compression_{model}{tag}.md` |"
                )
    return lines


def _bold(value: float, other: float) -> str:
    """The value, in bold when it is the better of the two."""
    return f"**{value:.3f}**" if value >= other else f"{value:.3f}"


def tables() -> str:
    lines = [BEGIN, "", *_defaults_table(), ""]
    for dataset in DATASETS:
        lines += [*_table(dataset), ""]
    lines += [
        "n/r: not run in that configuration (all heads runs with the first order only); —: no report yet.",
        "",
        END,
    ]
    return "\n".join(lines)


def render() -> list[Path]:
    """Rewrite the Markdown table and the bar chart of every ``qrhead eval`` report from its JSON."""
    from qrhead_integrations._files import write_text_atomic
    from qrhead_integrations.evaluation.report import EvalReport, markdown_table, plot_report

    written = []
    for path in sorted(REPORTS.glob("*.json")):
        data = json.loads(path.read_text(encoding="utf-8"))
        if not str(data.get("info", {}).get("command", "")).startswith("qrhead eval"):
            continue  # a benchmark's or a study's report: its script writes its Markdown
        report = EvalReport.from_dict(data)
        write_text_atomic(path.with_suffix(".md"), markdown_table(report, comparisons=True))
        plot_report(report, path.with_suffix(".png"))
        written.append(path)
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--write", type=Path, help="replace the block between the markers in this file")
    parser.add_argument("--render", action="store_true", help="rewrite each eval report's .md and .png from its JSON")
    args = parser.parse_args()
    if args.render:
        print(f"rendered {len(render())} eval reports (.md, .png) from their JSON")
    text = tables()
    if args.write is None:
        if not args.render:
            print(text)
        return
    page = args.write.read_text(encoding="utf-8")
    if BEGIN not in page or END not in page:
        raise SystemExit(f"{args.write}: no {BEGIN} ... {END} block to replace")
    head, rest = page.split(BEGIN, 1)
    tail = rest.split(END, 1)[1]
    tmp = args.write.with_suffix(".tmp")
    tmp.write_text(head + text + tail, encoding="utf-8")
    os.replace(tmp, args.write)


if __name__ == "__main__":
    main()
