"""Scores on another device equal the CPU's: the same tiny random model scored on the CPU and on ``--device``.

float32 must agree within ``--atol`` (default 1e-4); bf16 (the library's default dtype on a GPU) must correlate
with the float32 scores (> 0.9; whether it keeps the top passage is printed). Exits non-zero on a mismatch.

    python benchmarks/check_devices.py --device cuda
"""

from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from qrhead_integrations import QRHeadScorer
from tests.tiny_models import tiny_model, tiny_tokenizer

QUERY = "Which city is the capital of France?"
PASSAGES = [
    ("Moon", "The moon orbits the earth. The sun is a star."),
    ("Paris", "Paris is the capital of France. Hamlet is a play."),
    ("Water", "Water boils at one hundred degrees. Cats and dogs are animals."),
    ("Fox", "The quick brown fox jumps over the lazy dog, again and again."),
] * 3


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--atol", type=float, default=1e-4)
    args = parser.parse_args()
    tokenizer = tiny_tokenizer()
    failures = 0
    for kind in ("llama", "qwen2", "gemma3"):
        cpu_model = tiny_model(kind).to("cpu")
        scores = {}
        for name, device, dtype in (
            ("cpu", "cpu", torch.float32),
            (f"{args.device} float32", args.device, torch.float32),
            (f"{args.device} bfloat16", args.device, torch.bfloat16),
        ):
            model = copy.deepcopy(cpu_model).to(device=device, dtype=dtype)
            for order in ("as_given", "shuffled"):
                scorer = QRHeadScorer(model, tokenizer, heads="1-0,2-3,3-1", model_id=f"tiny-{kind}", order=order)
                scores[(name, order)] = torch.tensor(scorer.score(QUERY, PASSAGES))
        for order in ("as_given", "shuffled"):
            reference = scores[("cpu", order)]
            same = scores[(f"{args.device} float32", order)]
            half = scores[(f"{args.device} bfloat16", order)]
            diff = float((same - reference).abs().max())
            corr = float(torch.corrcoef(torch.stack([half, reference]))[0, 1])
            top_kept = int(half.argmax()) == int(reference.argmax())
            ok = diff <= args.atol and corr > 0.9
            failures += not ok
            print(
                f"{kind:7s} {order:9s} float32 max |Δ| {diff:.2e} · bf16 corr {corr:.4f}, top passage "
                f"{'kept' if top_kept else 'CHANGED'} · {'ok' if ok else 'FAIL'}"
            )
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
