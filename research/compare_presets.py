"""A model's named head sets side by side on one dev split, in each cached prompt layout (dev caches, no model).

Why: a head set is judged on queries it was not detected on. The 1.5B model's SciFact `rerank-best-last` set was
detected on the ``select`` split, so until its ``tune`` split was cached it could only be judged by
cross-validation on ``select``; this script reads whichever layouts of a split are cached (``reversed``: the
product's best-last; ``as_given``: best-first) and prints every preset of the model — alone and at the model's
default fusion — beside the first stage and BM25 over the candidates:

    python research/study_cache.py --model qwen2.5-coder-1.5b-instruct --task rerank --order reversed \\
        --tokens 128 --split tune
    python research/study_cache.py --model qwen2.5-coder-1.5b-instruct --task rerank --order as_given \\
        --tokens 128 --split tune
    python research/compare_presets.py --model qwen2.5-coder-1.5b-instruct --task rerank --split tune \\
        --json reports/presets_large_scifact_tune.json --markdown reports/presets_large_scifact_tune.md

With both ranked layouts cached, a third row averages them (what ``debias=True`` computes). ``--union A+B`` adds
the union of two presets as a column (A's heads, then B's not in A): a candidate for a model whose presets each
win one task, judged on a split neither preset read.
"""

from __future__ import annotations

from typing import Any

from _report import write_reports
from study_cache import dev_examples, study_parser
from study_defaults import (
    TASKS,
    DevScores,
    figure,
    first_stage_figure,
    flat_heads,
    items,
    lexical_figure,
    load,
    model_heads,
    union_heads,
)

from qrhead_integrations.fusion import model_fusion
from qrhead_integrations.heads import HeadSet
from qrhead_integrations.presets import default_preset, get_preset, preset_names

LAYOUTS = {"rerank": ("reversed", "as_given"), "multihop": ("shuffled", "reversed", "as_given")}


def _union(model: str, spec: str) -> HeadSet:
    """The heads of presets ``"A+B"``: A's, then B's that A lacks."""
    parts = spec.split("+")
    if len(parts) != 2 or any(get_preset(model, part) is None for part in parts):
        raise SystemExit(f"--union {spec!r}: two preset names of {model} joined by '+'")
    return union_heads(model_heads(model, parts[0]), model_heads(model, parts[1]))


def study(
    model: str, task: str, split: str, tokens: int, cache_dir: Any, unions: tuple[str, ...] = ()
) -> dict[str, Any]:
    examples = dev_examples(task)
    name = TASKS[task]
    fusion = model_fusion(model)
    presets = {}
    for preset in preset_names(model):
        found = get_preset(model, preset)
        if found is not None:
            presets[preset] = flat_heads(model, found)
    for spec in unions:
        presets[spec] = flat_heads(model, _union(model, spec))
    default = default_preset(model)
    caches = {order: load(model, task, order, tokens, cache_dir) for order in LAYOUTS[task]}
    cached = {order: scores for order, scores in caches.items() if scores}
    if not cached:
        raise SystemExit(f"no {task} cache of {model}: run research/study_cache.py first")
    keys = set.intersection(*(set(scores) for scores in cached.values()))
    kept = [e for e in examples if e.key in keys]
    if task == "rerank" and {"reversed", "as_given"} <= set(cached):
        both = {k: (cached["reversed"][k] + cached["as_given"][k]) / 2 for k in keys}
        cached["both ranked layouts averaged (debias)"] = both
    layouts: dict[str, Any] = {}
    for order, scores in cached.items():
        data: list[DevScores] = items(kept, scores, split)
        layouts[order] = {
            label: {"alone": figure(data, heads, name), "fused": figure(data, heads, name, fusion)}
            for label, heads in presets.items()
        }
    data = items(kept, next(iter(cached.values())), split)
    return {
        "model": model,
        "task": task,
        "split": split,
        "queries": len(data),
        "metric": name,
        "fusion": repr(fusion),
        "default": next((p for p, h in presets.items() if default and h == flat_heads(model, default)), None),
        "first_stage": first_stage_figure(data, name),
        "bm25_over_candidates": lexical_figure(data, name),
        "layouts": layouts,
    }


def markdown(report: dict[str, Any]) -> str:
    lines = [
        f"# {report['model']}: head presets on {report['task']} `{report['split']}` ({report['queries']} queries)",
        "",
        f"{report['metric']} alone / at the model's default fusion ({report['fusion']}); first stage "
        f"{report['first_stage']:.3f}, BM25 over the candidates {report['bm25_over_candidates']:.3f}; the default "
        f"set is `{report['default']}` (`research/compare_presets.py`).",
        "",
        "| layout | " + " | ".join(f"`{p}`" for p in next(iter(report["layouts"].values()))) + " |",
        "|---|" + "---|" * len(next(iter(report["layouts"].values()))),
    ]
    for layout, rows in report["layouts"].items():
        lines.append(
            f"| {layout} | " + " | ".join(f"{r['alone']:.3f} / {r['fused']:.3f}" for r in rows.values()) + " |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = study_parser(__doc__)
    parser.add_argument("--task", choices=tuple(TASKS), required=True)
    parser.add_argument("--split", choices=("select", "tune"), default="tune")
    parser.add_argument("--union", action="append", default=[], help="two presets 'A+B' (repeatable)")
    args = parser.parse_args()
    if len(args.model) != 1:
        raise SystemExit("one --model at a time")
    report = study(args.model[0], args.task, args.split, args.tokens, args.cache_dir, tuple(args.union))
    text = markdown(report)
    write_reports(report, text, json_path=args.json, markdown_path=args.markdown)
    print(text)


if __name__ == "__main__":
    main()
