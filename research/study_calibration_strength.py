"""How much of the content-free "N/A" query's attention to subtract (dev caches, no model).

Why: ICR's calibration subtracts the "N/A" query's per-passage attention in full (strength 1), which removes the
attention a passage gets whatever the query — its position, its length — together with whatever the small models
read as "relevant to anything". A strength below 1 keeps some of that prior, above 1 over-corrects. With a
calibrated cache and an uncalibrated one of the same queries (``study_cache.py ... --uncalibrated``), the
"N/A" share is their difference, so any strength is ``raw - s * (raw - calibrated)``, per head, without the model.
Each model's default heads, alone and at its default fusion:

    python research/study_cache.py --model M --task rerank --order reversed --tokens 128 --uncalibrated
    python research/study_cache.py --model M --task multihop --order shuffled --tokens 128 --uncalibrated
    python research/study_calibration_strength.py --model smollm2-135m-instruct \\
        --model qwen2.5-coder-0.5b-instruct --unseen-only qwen2.5-coder-0.5b-instruct \\
        --json reports/calibration_strength_study.json --markdown reports/calibration_strength_study.md

Only queries both caches hold are compared. ``--unseen-only M``: M's default heads were detected on its SciFact
``select`` split, so its SciFact figures come from the ``tune`` split alone.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import _variant_study
from _variant_study import splits_of, task_entry
from study_cache import CacheVariant, DevExample
from study_defaults import TASKS, default_heads, product_cache

from qrhead_integrations.fusion import model_fusion

STRENGTHS = (0.0, 0.5, 0.75, 0.9, 1.0, 1.1, 1.25, 1.5)
"""1.0 is the method's (and the shipped) calibration; 0.0 is no calibration at all."""


def study(
    model: str, unseen: bool, tokens: int, cache_dir: Path, examples: dict[str, list[DevExample]]
) -> dict[str, Any]:
    """Every strength's figures, alone and fused, on the dev queries both caches hold."""
    heads = default_heads(model)
    fusion = model_fusion(model)
    out: dict[str, Any] = {}
    for task in TASKS:
        calibrated = product_cache(model, task, tokens, cache_dir)
        raw = product_cache(model, task, tokens, cache_dir, CacheVariant(calibrate=False))
        keys = set(calibrated) & set(raw)
        splits = splits_of(task, unseen)
        kept = [e for e in examples[task] if e.key in keys]
        mixed = {str(s): {k: raw[k] - s * (raw[k] - calibrated[k]) for k in keys} for s in STRENGTHS}
        out[task] = task_entry(task, kept, splits, mixed, heads, fusion)
    return out


def markdown(report: dict[str, Any]) -> str:
    return _variant_study.markdown(
        report,
        title='How much of the "N/A" query\'s attention to subtract (dev caches)',
        intro="Each model's default heads; alone / at its default fusion; 1.0 is the method's calibration "
        "(`research/study_calibration_strength.py`).",
        row_heading="strength",
    )


if __name__ == "__main__":
    _variant_study.main(__doc__, study, markdown)
