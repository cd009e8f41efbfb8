"""Detect a bundled model's head set from its all-head dev cache (``study_cache.py``) — no model run here.

Why: detection is "score every head on labelled examples, then choose"; the all-head caches of the defaults
study already hold every head's calibrated scores on the dev slices, so running the model again (an hour for the
1.5B model on 2 cores) would only recompute them. The choice is the product's own: :func:`select_heads` with
``top_k="auto"``, the code behind ``qrhead detect --top-k auto`` (the first 80% of the examples rank the heads by
QR score, the last 20% choose among the top 4/8/16/32 and the best layer; top-16 is kept unless another candidate
beats it by more than 0.02).

Data: the ``select`` dev split only (HotpotQA dev rows 0-59; SciFact train query positions 0-99 with a judged
document in BM25's top 20), disjoint from the evaluation rows of docs/results.md.

    python research/heads_from_cache.py --model qwen2.5-coder-1.5b-instruct --task multihop \\
        --write-preset qrhead_integrations/presets/bundled.json

``--compare`` then scores the detected set beside the model's current default set on the dev data the
detection did not read (the task's ``tune`` split, and both splits of the other task), alone and at the
model's default fusion (what the product returns): a set is worth shipping only if it holds up there.
``--name`` stores it under another preset name than the task's (keeping an older set's name reproducible).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
from pathlib import Path

from study_cache import CACHE, dev_examples
from study_defaults import (
    PRODUCT_CACHE,
    SHAPES,
    TASKS,
    default_heads,
    figure,
    first_stage_figure,
    items,
    lexical_figure,
    load,
)

from qrhead_integrations.detect import select_heads
from qrhead_integrations.fusion import model_fusion

DATA = {
    "multihop": "HotpotQA dev rows 0-59 (study select split; candidates in a seeded random layout)",
    "rerank": "SciFact train query positions 0-99 with a judged document in BM25's top 20 (study select split; "
    "BM25 top-20 laid out best-last)",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True)
    parser.add_argument("--task", choices=tuple(TASKS), required=True)
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--cache-dir", type=Path, default=CACHE)
    parser.add_argument("--write-preset", type=Path, help="presets JSON to add the set to (as the task's name)")
    parser.add_argument("--default", action="store_true", help="also make it the model's default set")
    parser.add_argument("--name", help="preset name to store the set under (default: the task's name)")
    parser.add_argument("--compare", action="store_true", help="score it beside the default set on unseen dev data")
    args = parser.parse_args()

    order = PRODUCT_CACHE[args.task]
    found = load(args.model, args.task, order, args.tokens, args.cache_dir)
    if found is None:
        raise SystemExit(f"no cache for {args.model} {args.task}: run research/study_cache.py --split select")
    scored = items(dev_examples(args.task), found, "select")
    provenance = {
        "task": args.task,
        "data": DATA[args.task] + f"; {len(scored)} examples cached",
        "candidate_order": order,
        "max_passage_tokens": args.tokens,
        "calibrated": True,
        "date": datetime.date.today().isoformat(),
        "source": f"detected ({args.task}) by research/heads_from_cache.py from the study_cache.py all-head scores",
    }
    detection = select_heads(
        scored, top_k="auto", shape=SHAPES[args.model], metric=TASKS[args.task], provenance=provenance
    )
    heads = detection.heads
    print(f"{args.model} {args.task}: {len(heads)} heads {heads}")
    print(f"held-out {TASKS[args.task]} on {detection.held_out}: {detection.validation}")
    if args.compare:
        compare(args, [lay * SHAPES[args.model][1] + h for lay, h in heads.heads])
    if args.write_preset is not None:
        catalogue = json.loads(args.write_preset.read_text(encoding="utf-8"))
        entry = catalogue["models"].setdefault(args.model, {})
        kept = {k: v for k, v in heads.provenance.items() if k != "model"}
        name = args.name or args.task
        entry[name] = {"heads": str(heads), "provenance": kept}
        if args.default or "_default" not in entry:
            entry["_default"] = name
        tmp = args.write_preset.with_suffix(".tmp")
        tmp.write_text(json.dumps(catalogue, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        os.replace(tmp, args.write_preset)
        print(f"written to {args.write_preset}")


def compare(args: argparse.Namespace, detected: list[int]) -> None:
    """The detected set and the model's current default set on the dev data the detection did not read."""
    current = default_heads(args.model)
    fusion = model_fusion(args.model)
    print(f"on unseen dev data, alone / at the default fusion {fusion!r}:")
    for task in TASKS:
        found = load(args.model, task, PRODUCT_CACHE[task], args.tokens, args.cache_dir)
        if found is None:
            continue
        examples = dev_examples(task)
        splits = ("tune",) if task == args.task else ("select", "tune")
        data = [x for split in splits for x in items(examples, found, split)]
        if not data:
            print(f"  {task}: no cached {'/'.join(splits)} examples")
            continue
        metric = TASKS[task]
        line = f"  {task} ({'/'.join(splits)}, {len(data)} examples; first stage {first_stage_figure(data, metric):.3f}"
        line += f", BM25 {lexical_figure(data, metric):.3f}):"
        for label, heads in (("detected", detected), ("current default", current)):
            line += f" {label} {figure(data, heads, metric):.3f} / {figure(data, heads, metric, fusion):.3f};"
        print(line)


if __name__ == "__main__":
    main()
