"""Speed/quality by depth budget (issue #14): the best head set within layers 0..L-1, for every L, in one command.

The scorer's forward stops inside the deepest layer its heads read, so a head set confined to the first L
layers costs about L/num_layers of a full forward. This script draws the curve per bundled model:

* **quality** from the all-head dev caches (``study_cache.py``; no model run): for each L, a set is detected
  exactly as ``qrhead detect --top-k auto --max-layer L`` would (:func:`select_heads`) on the HotpotQA ``select``
  split (rows 0-59, the product's random layout), then measured on data it was not chosen on: HotpotQA rows
  60-99 (recall@2) and every cached SciFact dev query (nDCG@10 over BM25's top 20, laid out best-last), each
  as QRHead alone and at the default fusion (what the adapters return). A model whose default set was detected
  on SciFact (its provenance ``task`` is ``rerank``: Qwen 0.5B's ``rerank-best-last``) gets its budgeted sets
  detected the same way, on the SciFact ``select`` split, and measured on SciFact ``tune`` and all HotpotQA rows;
* **seconds per query** by running the scorer with that set on the re-ranking workload (SciFact dev queries,
  BM25's top 20, the default 128-token cut), every depth once per round, rounds interleaved, median reported.

The knee, shipped as the model's ``fast`` preset: the shallowest L whose set stops above the default set's deepest
layer and whose fused dev figures are within ``--tolerance`` (0.01) of the default set's on both tasks; none
qualifying means no new ``fast`` set (the preset file is left as it is).

    python research/study_depth.py --model smollm2-135m-instruct --model qwen2.5-coder-0.5b-instruct \\
        --json reports/depth_study.json --markdown reports/depth_study.md \\
        --write-preset qrhead_integrations/presets/bundled.json
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import time
from pathlib import Path
from typing import Any

from _report import write_reports
from study_cache import CACHE, dev_examples
from study_defaults import PRODUCT_CACHE, SHAPES, TASKS, figure, items, load

from qrhead_integrations import QRHeadScorer
from qrhead_integrations.detect import select_heads
from qrhead_integrations.fusion import model_fusion
from qrhead_integrations.heads import HeadSet
from qrhead_integrations.presets import default_preset

TIMING_QUERIES = 3


def depths(num_layers: int) -> list[int]:
    """Every other layer from a sixth of the model's depth up, and the full depth."""
    start = max(2, num_layers // 6)
    return sorted({*range(start, num_layers, 2), num_layers})


def flat(heads: HeadSet, n_heads: int) -> list[int]:
    return [layer * n_heads + head for layer, head in heads]


def quality(dev: dict[str, Any], heads: list[int], model: str) -> dict[str, float]:
    """Held-out figures of one head set: per task, QRHead alone and at the model's default fusion (what the
    adapters return: ``presets.model_fusion``)."""
    out: dict[str, float] = {}
    for task, data in dev.items():
        out[f"{task} alone"] = figure(data, heads, TASKS[task])
        out[f"{task} fused"] = figure(data, heads, TASKS[task], model_fusion(model))
    return out


def timings(model: str, sets: dict[str, HeadSet], rounds: int, queries: int = TIMING_QUERIES) -> dict[str, float]:
    """Median seconds per re-ranking query for each head set (one loaded model, sets swapped with_heads)."""
    examples = [e for e in dev_examples("rerank") if e.split == "select"][:queries]
    base = QRHeadScorer.from_pretrained(model)
    scorers = {name: base.with_heads(heads) for name, heads in sets.items()}
    base.rank(examples[0].question, examples[0].passages)  # warm-up
    seen: dict[str, list[float]] = {name: [] for name in sets}
    for _ in range(rounds):
        for name, scorer in scorers.items():
            started = time.perf_counter()
            for example in examples:
                scorer.rank(example.question, example.passages)
            seen[name].append((time.perf_counter() - started) / len(examples))
    return {name: statistics.median(values) for name, values in seen.items()}


def study(
    model: str, tokens: int, cache_dir: Path, rounds: int, tolerance: float, timing_queries: int = TIMING_QUERIES
) -> dict[str, Any]:
    n_layers, n_heads = SHAPES[model]
    examples = {task: dev_examples(task) for task in TASKS}
    caches = {task: load(model, task, PRODUCT_CACHE[task], tokens, cache_dir) for task in TASKS}
    if any(found is None for found in caches.values()):
        raise SystemExit(f"missing caches for {model}: run research/study_cache.py first")
    default = default_preset(model)
    if default is None:
        raise SystemExit(f"no default heads for {model}")
    # Budgeted sets are detected like the default set: on the task and split it was detected on, and measured
    # on the dev data neither read (a default detected on SciFact is measured on SciFact `tune` and all HotpotQA).
    task = "rerank" if default.provenance.get("task") == "rerank" else "multihop"
    other = "multihop" if task == "rerank" else "rerank"
    select = items(examples[task], caches[task], "select")  # type: ignore[arg-type]
    dev = {
        task: items(examples[task], caches[task], "tune"),  # type: ignore[arg-type]
        other: items(examples[other], caches[other], "select")  # type: ignore[arg-type]
        + items(examples[other], caches[other], "tune"),  # type: ignore[arg-type]
    }
    if not dev[task]:
        raise SystemExit(f"{model}: no {task} tune split cached (study_cache.py --task {task} --split tune)")
    data_text = (
        f"HotpotQA dev rows 0-59 (study select split; {len(select)} examples), random layout"
        if task == "multihop"
        else f"SciFact train query positions 0-99 with a judged document in BM25's top 20 (study select split; "
        f"{len(select)} examples), BM25 top 20 laid out best-last"
    )
    sets: dict[str, HeadSet] = {"default": default}
    for depth in depths(n_layers):
        provenance = {
            "task": task,
            "data": data_text,
            "max_passage_tokens": tokens,
            "calibrated": True,
            "date": datetime.date.today().isoformat(),
            "source": "detected by research/study_depth.py (select_heads, top_k='auto', max_layer) from the "
            "study_cache.py all-head scores",
        }
        sets[f"L{depth}"] = select_heads(
            select,
            top_k="auto",
            shape=(n_layers, n_heads),
            metric=TASKS[task],
            provenance=provenance,
            max_layer=depth,
        ).heads
    rows = {name: quality(dev, flat(heads, n_heads), model) for name, heads in sets.items()}
    seconds = timings(model, sets, rounds, timing_queries)
    for name, heads in sets.items():
        rows[name]["deepest layer"] = float(max(layer for layer, _ in heads) + 1)
        rows[name]["heads"] = float(len(heads))
        rows[name]["seconds"] = seconds[name]
    reference = rows["default"]
    knee = None
    for depth in depths(n_layers):
        row = rows[f"L{depth}"]
        shallower = row["deepest layer"] < reference["deepest layer"]  # else it is no faster than the default
        if shallower and all(row[f"{t} fused"] >= reference[f"{t} fused"] - tolerance for t in TASKS):
            knee = f"L{depth}"
            break
    return {
        "shape": [n_layers, n_heads],
        "detected_on": task,
        "counts": {"select": len(select), **{t: len(v) for t, v in dev.items()}},
        "rows": rows,
        "sets": {name: str(heads) for name, heads in sets.items()},
        "provenance": {name: heads.provenance for name, heads in sets.items() if name != "default"},
        "knee": knee,
        "speedup_knee_over_default": (reference["seconds"] / rows[knee]["seconds"]) if knee else None,
    }


def markdown(report: dict[str, Any]) -> str:
    lines = ["# Depth budget: speed and quality (issue #14)", ""]
    lines.append(
        "Heads detected within layers 0..L-1 on HotpotQA dev rows 0-59 (`select_heads`, top_k auto, as "
        "`qrhead detect --top-k auto --max-layer L`); figures on HotpotQA dev rows 60-99 (recall@2, random "
        "layout) and the cached SciFact dev queries (nDCG@10 over BM25's top 20, best-last), QRHead alone and "
        "at the model's default fusion. Seconds: median per re-ranking query (SciFact, 20 passages, 128-token "
        f"cut) over {report['rounds']} interleaved rounds of {report.get('timing_queries', TIMING_QUERIES)} "
        f"queries; {report['note']}"
    )
    for model, data in report["models"].items():
        lines += ["", f"## {model} ({data['shape'][0]} layers)", ""]
        if data.get("detected_on") == "rerank":
            lines += [
                "Its default set was detected on SciFact, so these sets are too: on the SciFact `select` split "
                f"(best-last, {data['counts']['select']} queries), measured on the SciFact `tune` split "
                f"({data['counts']['rerank']}) and all HotpotQA dev rows ({data['counts']['multihop']}).",
                "",
            ]
        lines.append(
            "| set | deepest layer | heads | s/query | HotpotQA alone | HotpotQA fused | SciFact alone | "
            "SciFact fused |"
        )
        lines.append("|---|---|---|---|---|---|---|---|")
        for name, row in data["rows"].items():
            mark = " (knee → `fast`)" if name == data["knee"] else ""
            lines.append(
                f"| {name}{mark} | {row['deepest layer']:.0f} | {row['heads']:.0f} | {row['seconds']:.2f} | "
                f"{row['multihop alone']:.3f} | {row['multihop fused']:.3f} | {row['rerank alone']:.3f} | "
                f"{row['rerank fused']:.3f} |"
            )
        speed = data["speedup_knee_over_default"]
        lines += [
            "",
            f"Knee (shallowest L, shallower than the default set, within {report['tolerance']} of its fused "
            "figures on both tasks): "
            + (f"{data['knee']}, {speed:.2f}x the default's speed." if data["knee"] else "none; no new `fast` set."),
        ]
    return "\n".join(lines) + "\n"


def write_preset(path: Path, model: str, data: dict[str, Any]) -> None:
    knee = data["knee"]
    if knee is None:
        return
    catalogue = json.loads(path.read_text(encoding="utf-8"))
    provenance = {k: v for k, v in data["provenance"][knee].items() if k != "model"}
    row = data["rows"][knee]
    provenance["dev"] = {k: round(v, 4) for k, v in row.items()}
    catalogue["models"][model]["fast"] = {"heads": data["sets"][knee], "provenance": provenance}
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(catalogue, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", action="append", required=True)
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--cache-dir", type=Path, default=CACHE)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--timing-queries", type=int, default=TIMING_QUERIES, help="SciFact dev queries timed per round"
    )
    parser.add_argument("--tolerance", type=float, default=0.01)
    parser.add_argument("--note", default="2 CPU cores.")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--markdown", type=Path)
    parser.add_argument("--write-preset", type=Path)
    args = parser.parse_args()
    report: dict[str, Any] = {
        "rounds": args.rounds,
        "timing_queries": args.timing_queries,
        "tolerance": args.tolerance,
        "note": args.note,
        "models": {},
    }
    for model in args.model:
        report["models"][model] = study(
            model, args.tokens, args.cache_dir, args.rounds, args.tolerance, args.timing_queries
        )
        if args.write_preset is not None:
            write_preset(args.write_preset, model, report["models"][model])
    write_reports(report, markdown(report), json_path=args.json, markdown_path=args.markdown)
    print(markdown(report))


if __name__ == "__main__":
    main()
