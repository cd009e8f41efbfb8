"""A model's head set and fusion chosen together, when it has one set per task: each set, or their union (#13).

Two sets each detected on one task's ``select`` split (HotpotQA rows 0-59; SciFact ``select``) are the first two
candidates; their union (the first set's heads, then the second's it lacks) is the third. Every set is crossed with
no fusion and the defaults study's weight grid in both forms (ranks, z-scores), and judged on the dev queries no
set was detected on: SciFact ``tune`` (87 queries, product layout best-last) and HotpotQA rows 60-99 (40,
shuffled). The choice is the defaults study's pooled rule (the best mean over both tasks among the candidates at
or above the stronger model-free baseline on each); two-fold cross-validation over random halvings says how well
the rule's pick holds on queries it did not see. A set is a preset name of the model or a ``"layer-head,..."``
list. The 1.5B (its two shipped sets), after caching both tune splits:

    python research/study_cache.py --model qwen2.5-coder-1.5b-instruct --task rerank --order reversed \\
        --tokens 128 --split tune
    python research/study_cache.py --model qwen2.5-coder-1.5b-instruct --task multihop --order shuffled \\
        --tokens 128 --split tune
    python research/study_two_task_heads.py --model qwen2.5-coder-1.5b-instruct \\
        --json reports/large_defaults_study.json --markdown reports/large_defaults_study.md

The 0.5B, whose shipped ``multihop`` set read all of HotpotQA 0-99: with the set ``heads_from_cache.py --model
qwen2.5-coder-0.5b-instruct --task multihop`` detects on rows 0-59 instead (printed, not shipped):

    python research/study_two_task_heads.py --model qwen2.5-coder-0.5b-instruct \\
        --first 16-7,16-3,13-13,16-0,13-2,16-2,11-12,13-0,9-8,16-9,9-13,16-12,11-9,14-9,16-6,11-1 \\
        --json reports/two_task_heads_qwen.json --markdown reports/two_task_heads_qwen.md
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from _report import write_reports
from study_cache import CACHE, dev_examples
from study_defaults import (
    FUSION_GRID,
    TASKS,
    DevScores,
    Halving,
    PooledData,
    cross_validated_choice,
    figure,
    first_stage_figure,
    flat_heads,
    items,
    lexical_figure,
    model_heads,
    pooled_choice,
    product_cache,
    union_heads,
)

from qrhead_integrations.fusion import DEFAULT_FUSION, Fusion, model_fusion
from qrhead_integrations.presets import default_preset

Candidate = tuple[str, Fusion | None]


def head_sets(model: str, first_spec: str, second_spec: str) -> dict[str, list[int]]:
    """The two sets and their union, as flat ``layer * heads + head`` indices into a cache's rows."""
    names = [
        spec if not spec[0].isdigit() else label for spec, label in ((first_spec, "first"), (second_spec, "second"))
    ]
    first, second = model_heads(model, first_spec), model_heads(model, second_spec)
    sets = {names[0]: first, names[1]: second, f"{names[0]}+{names[1]}": union_heads(first, second)}
    return {name: flat_heads(model, s) for name, s in sets.items()}


def fusions() -> list[Fusion | None]:
    """No fusion, then every grid cell in both forms."""
    out: list[Fusion | None] = [None]
    for form in ("ranks", "scores"):
        out += [Fusion(weight=w, lexical=lex, form=form) for w, lex in FUSION_GRID if w or lex]
    return out


def simpler_candidates(sets: dict[str, list[int]]) -> list[Candidate]:
    """Each single set alone and with the small models' fusion: what ships instead if it is as good."""
    return [(name, fusion) for name in sets if "+" not in name for fusion in (None, DEFAULT_FUSION)]


def per_query(data: list[DevScores], heads: list[int], name: str, fusion: Fusion | None) -> list[float]:
    """Each query's figure under one configuration."""
    return [figure([item], heads, name, fusion) for item in data]


def paired(candidate: list[float], reference: list[float]) -> dict[str, float]:
    """A candidate against a reference, query by query: mean difference, better, worse, equal."""
    diffs = [a - b for a, b in zip(candidate, reference, strict=True)]
    return {
        "diff": sum(diffs) / len(diffs),
        "better": sum(d > 1e-9 for d in diffs),
        "worse": sum(d < -1e-9 for d in diffs),
        "equal": sum(abs(d) <= 1e-9 for d in diffs),
    }


def cross_validated_per_query(
    data: PooledData, model: str, sets: dict[str, list[int]], held_out: list[tuple[Candidate, Halving]]
) -> dict[str, list[float]]:
    """Each query's figure under the rule's picks made without it (the cross-validation's held-out halves; every
    halving holds each query out once), averaged over the halvings: the rule's own honest figure, per query."""
    out = {}
    for task, name in TASKS.items():
        total = [0.0] * len(data[model][task])
        count = [0] * len(total)
        for (heads, fusion), indices in held_out:
            for i in indices[model][task]:
                total[i] += figure([data[model][task][i]], sets[heads], name, fusion)
                count[i] += 1
        out[task] = [t / c for t, c in zip(total, count, strict=True)]
    return out


def label(candidate: Candidate) -> str:
    heads, fusion = candidate
    if fusion is None:
        return f"{heads} · alone"
    return f"{heads} · {fusion.weight}/{fusion.lexical} {fusion.form}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True)
    parser.add_argument("--first", default="multihop", help="the multi-hop set: a preset name or heads")
    parser.add_argument("--second", default="rerank-best-last", help="the SciFact set: a preset name or heads")
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--cache-dir", type=Path, default=CACHE)
    parser.add_argument("--splits", type=int, default=10, help="random halvings for the cross-validation")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--markdown", type=Path)
    args = parser.parse_args()
    model = args.model
    sets = head_sets(model, args.first, args.second)
    data: PooledData = {model: {}}
    for task in TASKS:
        scores = product_cache(model, task, args.tokens, args.cache_dir)
        data[model][task] = items(dev_examples(task), scores, "tune")
    candidates: list[Candidate] = [(name, fusion) for name in sets for fusion in fusions()]

    def figures(candidate: Candidate, pooled: PooledData) -> dict[str, dict[str, float]]:
        heads, fusion = candidate
        return {m: {t: figure(pooled[m][t], sets[heads], TASKS[t], fusion) for t in TASKS} for m in pooled}

    chosen = pooled_choice(candidates, figures, label, data)
    validated = cross_validated_choice(candidates, figures, label, data, args.splits, held_out=True)
    rows = {}
    for name in sets:
        for fusion in (None, Fusion(weight=0.2, lexical=0.3), Fusion(weight=0.1, lexical=0.5, form="scores")):
            rows[label((name, fusion))] = figures((name, fusion), data)[model]
    rows[f"rule's choice: {chosen['cell']}"] = chosen["figures"][model]
    shipped_set, shipped_fusion = default_preset(model), model_fusion(model)
    if shipped_set is None:
        raise SystemExit(f"{model} has no default head set to compare with")
    shipped_heads = flat_heads(model, shipped_set)
    shipped_label = f"shipped: {shipped_set.provenance['preset']} · " + (
        "alone" if shipped_fusion is None else f"{shipped_fusion.weight}/{shipped_fusion.lexical} {shipped_fusion.form}"
    )
    rows[shipped_label] = {t: figure(data[model][t], shipped_heads, TASKS[t], shipped_fusion) for t in TASKS}
    shipped_queries = {t: per_query(data[model][t], shipped_heads, TASKS[t], shipped_fusion) for t in TASKS}
    rule_queries = cross_validated_per_query(data, model, sets, validated["held_out"])
    simpler = {
        label((name, fusion)): {t: per_query(data[model][t], sets[name], TASKS[t], fusion) for t in TASKS}
        for name, fusion in simpler_candidates(sets)
    }
    against_shipped = {c: {t: paired(q[t], shipped_queries[t]) for t in TASKS} for c, q in simpler.items()}
    against_rule = {c: {t: paired(q[t], rule_queries[t]) for t in TASKS} for c, q in simpler.items()}
    pool: list[DevScores] = data[model]["rerank"]
    hop: list[DevScores] = data[model]["multihop"]
    report: dict[str, Any] = {
        "model": model,
        "queries": {t: len(d) for t, d in data[model].items()},
        "baselines": {
            "rerank": {"first stage": first_stage_figure(pool, "ndcg@10"), "bm25": lexical_figure(pool, "ndcg@10")},
            "multihop": {"first stage": first_stage_figure(hop, "recall@2"), "bm25": lexical_figure(hop, "recall@2")},
        },
        "rows": rows,
        "choice": {"cell": chosen["cell"], "qualified": chosen["qualified"], "mean": chosen["mean"]},
        "cross_validated": {"figures": validated["figures"][model], "picks": validated["picks"]},
        "shipped": shipped_label,
        "against_shipped": against_shipped,
        "against_cross_validated": against_rule,
        "candidates": len(candidates),
    }
    text = markdown(report)
    write_reports(report, text, json_path=args.json, markdown_path=args.markdown)
    print(text)


def markdown(report: dict[str, Any]) -> str:
    base = report["baselines"]
    q = report["queries"]
    cv = report["cross_validated"]
    picks = sorted(dict.fromkeys(cv["picks"]), key=cv["picks"].count, reverse=True)  # ties: first picked first
    lines = [
        f"# {report['model']}: head set and fusion chosen together (dev queries no set read)",
        "",
        f"SciFact `tune` ({q['rerank']} queries, nDCG@10; first stage {base['rerank']['first stage']:.3f}, BM25 over "
        f"the candidates {base['rerank']['bm25']:.3f}) and HotpotQA rows 60-99 ({q['multihop']} questions, "
        f"recall@2; BM25 over the candidates {base['multihop']['bm25']:.3f}). `research/study_two_task_heads.py`; "
        f"{report['candidates']} candidates (3 sets × no fusion and {len(FUSION_GRID) - 1} grid cells in two forms).",
        "",
        "| heads · fusion | SciFact | HotpotQA |",
        "|---|---|---|",
    ]
    for name, values in report["rows"].items():
        lines.append(f"| {name} | {values['rerank']:.3f} | {values['multihop']:.3f} |")
    lines += [
        "",
        f"The rule's choice: **{report['choice']['cell']}** ({report['choice']['qualified']} candidates qualify). "
        f"Cross-validated (the rule on one half, scored on the other): SciFact {cv['figures']['rerank']:.3f}, "
        f"HotpotQA {cv['figures']['multihop']:.3f}; picks: " + ", ".join(f"{p} ×{cv['picks'].count(p)}" for p in picks),
    ]
    if report.get("against_shipped"):
        lines += [
            "",
            "Simpler configurations, query by query (difference of the means; better / worse / equal), against "
            f"the shipped one ({report['shipped']}, chosen on these queries) and against the cross-validated rule "
            "(each query scored by the picks made on the other half, averaged over the halvings: what choosing on "
            "dev queries earns on queries it did not see):",
            "",
            "| configuration | SciFact vs shipped | HotpotQA vs shipped | SciFact vs CV rule | HotpotQA vs CV rule |",
            "|---|---|---|---|---|",
        ]
        for name, tasks in report["against_shipped"].items():
            rule = report.get("against_cross_validated", {}).get(name)
            cells = [_cell(tasks[t]) for t in ("rerank", "multihop")]
            cells += [_cell(rule[t]) if rule else "" for t in ("rerank", "multihop")]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _cell(pair: dict[str, float]) -> str:
    return f"{pair['diff']:+.3f} ({pair['better']} / {pair['worse']} / {pair['equal']})"


if __name__ == "__main__":
    main()
