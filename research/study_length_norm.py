"""Whether a passage's attention mass should be divided by its length (dev caches + the tokenizer, no model).

Why: a passage's score is the attention mass the query puts on *all* its tokens (paper eq. 2), so a longer
passage can collect more of it whatever it says. The "N/A" calibration subtracts part of that (the content-free
query also looks longer at longer passages), and the 128-token cut bounds it; whether what is left still favours
length is a measurement. The span lengths come from the product's own prompt (``PromptBuilder.encode`` of the cut
passages: marker, title and text), so every variant ``score / length**p`` is evaluated from the defaults study's
caches without the model. Each model's default heads, alone and at its default fusion:

    python research/study_length_norm.py --model smollm2-135m-instruct \\
        --model qwen2.5-coder-0.5b-instruct --unseen-only qwen2.5-coder-0.5b-instruct \\
        --json reports/length_norm_study.json --markdown reports/length_norm_study.md
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import _variant_study
import torch
from _variant_study import splits_of, task_column, task_entry
from study_cache import DevExample
from study_defaults import TASKS, default_heads, product_cache
from transformers import AutoTokenizer

from qrhead_integrations.fusion import model_fusion
from qrhead_integrations.models import converted_bundled_model
from qrhead_integrations.prompt import PromptBuilder, to_passages

POWERS = (0.0, 0.25, 0.5, 1.0)
"""0 is the paper's sum (shipped); 1 divides by the span's token count (a mean over its tokens)."""


def span_lengths(builder: PromptBuilder, example: DevExample, tokens: int) -> torch.Tensor:
    """Each candidate's token span in the product's prompt (cut to ``tokens``), in candidate order."""
    passages, _ = builder.truncate_counted(to_passages(example.passages), tokens)
    encoded = builder.encode(passages, ["N/A"])
    return torch.tensor([end - start for start, end in encoded.passage_spans], dtype=torch.float64)


def study(
    model: str, unseen: bool, tokens: int, cache_dir: Path, examples: dict[str, list[DevExample]]
) -> dict[str, Any]:
    """Every power's figures, alone and fused, on the model's dev caches."""
    builder = PromptBuilder(AutoTokenizer.from_pretrained(converted_bundled_model(model)))
    heads = default_heads(model)
    fusion = model_fusion(model)
    out: dict[str, Any] = {}
    for task in TASKS:
        scores = product_cache(model, task, tokens, cache_dir)
        splits = splits_of(task, unseen)
        kept = [e for e in examples[task] if e.key in scores and e.split in splits]
        lengths = {e.key: span_lengths(builder, e, tokens) for e in kept}
        divided = {str(p): {k: scores[k].double() / lengths[k] ** p for k in lengths} for p in POWERS}
        entry = task_entry(task, kept, splits, divided, heads, fusion)
        spans = torch.cat(list(lengths.values()))
        rows = entry.pop("rows")  # after the spans in the report, as it always was
        out[task] = {
            **entry,
            "span_tokens": {"min": spans.min().item(), "median": spans.median().item(), "max": spans.max().item()},
            "rows": rows,
        }
    return out


def _column(task: str, entry: dict[str, Any]) -> str:
    spans = entry["span_tokens"]
    return task_column(
        task, entry, f"; spans {spans['min']:.0f}-{spans['max']:.0f} tokens, median {spans['median']:.0f}"
    )


def markdown(report: dict[str, Any]) -> str:
    return _variant_study.markdown(
        report,
        title="Dividing a passage's attention mass by its length (dev caches)",
        intro="Each model's default heads; alone / at its default fusion; power 0 is the paper's sum "
        "(`research/study_length_norm.py`).",
        row_heading="power",
        column=_column,
    )


if __name__ == "__main__":
    _variant_study.main(__doc__, study, markdown)
