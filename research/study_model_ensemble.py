"""Two bundled models read together: does SmolLM2's attention add to Qwen 0.5B's (issue #13, dev caches only)?

Each model's default heads give a per-passage score on the same dev queries (its own prompt, its own cache);
the two are mixed as per-query z-scores, ``w * SmolLM2 + (1 - w) * Qwen``, and the mix is ranked alone and at the
default fusion (Qwen's, the default model's). ``w = 0`` is Qwen alone, ``w = 1`` SmolLM2 alone. SciFact is read on
the ``tune`` split only (Qwen's default heads were detected on ``select``); HotpotQA on dev rows 0-99, where the
SmolLM2 ``multihop`` heads' detection rows lie (read its HotpotQA side as in-sample). The cost of a mix is both
forwards: ≈1.3× Qwen's time.

    python research/study_model_ensemble.py --model smollm2-135m-instruct --model qwen2.5-coder-0.5b-instruct \\
        --json reports/model_ensemble_study.json --markdown reports/model_ensemble_study.md
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from _report import write_reports
from study_cache import dev_examples, study_parser
from study_defaults import TASKS, default_heads, metric, product_cache

from qrhead_integrations.fusion import fuse_with_first_stage, model_fusion, z_scores

WEIGHTS = (0.0, 0.25, 0.5, 0.75, 1.0)
"""The first model's share of the mix."""


def study(first: str, second: str, tokens: int, cache_dir: Path) -> dict[str, Any]:
    """Each mix's figure per task, alone and at the second (default) model's fusion, with the baselines."""
    fusion = model_fusion(second)
    heads = {first: default_heads(first), second: default_heads(second)}
    out: dict[str, Any] = {"fusion": str(fusion), "tasks": {}}
    for task, name in TASKS.items():
        caches = {m: product_cache(m, task, tokens, cache_dir) for m in (first, second)}
        splits = ["tune"] if task == "rerank" else ["select", "tune"]
        kept = [e for e in dev_examples(task) if e.split in splits and all(e.key in c for c in caches.values())]
        single = {
            m: {e.key: z_scores(caches[m][e.key].double()[heads[m]].mean(0).tolist()) for e in kept} for m in caches
        }
        rows = {}
        for w in WEIGHTS:
            alone = fused = 0.0
            for e in kept:
                mix = (w * single[first][e.key] + (1 - w) * single[second][e.key]).tolist()
                alone += metric(mix, tuple(e.gold), name)
                fused += metric(
                    fuse_with_first_stage(mix, fusion, lexical_scores=tuple(e.local_bm25)), tuple(e.gold), name
                )
            rows[str(w)] = {"alone": alone / len(kept), "fused": fused / len(kept)}
        order = [metric([-float(i) for i in range(len(e.local_bm25))], tuple(e.gold), name) for e in kept]
        lexical = [metric(list(e.local_bm25), tuple(e.gold), name) for e in kept]
        out["tasks"][task] = {
            "metric": name,
            "queries": len(kept),
            "splits": splits,
            "first_stage": sum(order) / len(kept),
            "bm25_over_candidates": sum(lexical) / len(kept),
            "rows": rows,
        }
    return out


def markdown(report: dict[str, Any]) -> str:
    first, second = report["models"]
    tasks = report["study"]["tasks"]
    columns = [
        f"{'SciFact' if t == 'rerank' else 'HotpotQA'} {e['metric']} ({e['queries']}, {'+'.join(e['splits'])})"
        for t, e in tasks.items()
    ]
    lines = [
        "# Two bundled models read together (dev caches)",
        "",
        f"Per-query z-scores of each model's default heads mixed as `w * {first} + (1 - w) * {second}`; alone / at "
        f"{second}'s default fusion ({report['study']['fusion']}). `research/study_model_ensemble.py`.",
        "",
        f"| {first} share w | " + " | ".join(columns) + " |",
        "|---|" + "---|" * len(tasks),
    ]
    for w in WEIGHTS:
        cells = [f"{e['rows'][str(w)]['alone']:.3f} / {e['rows'][str(w)]['fused']:.3f}" for e in tasks.values()]
        lines.append(f"| {w} | " + " | ".join(cells) + " |")
    lines.append(
        "| first stage · BM25 over the candidates | "
        + " | ".join(f"{e['first_stage']:.3f} · {e['bm25_over_candidates']:.3f}" for e in tasks.values())
        + " |"
    )
    return "\n".join(lines) + "\n"


def main() -> None:
    args = study_parser(__doc__).parse_args()
    if len(args.model) != 2:
        raise SystemExit("give exactly two --model: the one mixed in, then the default model")
    first, second = args.model
    report = {"models": [first, second], "study": study(first, second, args.tokens, args.cache_dir)}
    text = markdown(report)
    write_reports(report, text, json_path=args.json, markdown_path=args.markdown)
    print(text)


if __name__ == "__main__":
    main()
