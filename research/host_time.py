"""Host time of a ``score`` call for the package in a given checkout — to compare two commits' host paths.

Measures whatever ``qrhead_integrations`` a checkout holds, on the same rows (HotpotQA dev rows 0-7, 10 passages
cut to 150 tokens, SmolLM2 in bf16), so an old commit can be timed beside today's in separate processes run
alternately (this is how the prompt-assembly work was checked against the code before it):

    git worktree add /tmp/before ebadb23    # the commit to compare with
    for i in 1 2 3; do python research/host_time.py /tmp/before; python research/host_time.py .; done

Prints one JSON line: median host seconds (the call's time outside ``capture.run_layers``), median host share,
median call seconds.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

HOTPOTQA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "hotpotqa" / "hotpotqa_dev200.jsonl"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkout", type=Path, help="a checkout of this repository (its package is imported)")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    sys.path.insert(0, str(args.checkout.resolve()))
    import qrhead_integrations
    from qrhead_integrations import QRHeadScorer, capture

    if not Path(qrhead_integrations.__file__).resolve().is_relative_to(args.checkout.resolve()):
        raise SystemExit(f"imported {qrhead_integrations.__file__}, not the checkout's package")
    lines = [json.loads(line) for line in HOTPOTQA.read_text(encoding="utf-8").splitlines() if line.strip()]
    rows = [(r["question"], [(p["title"], p["text"]) for p in r["passages"]]) for r in lines[:8]]
    scorer = QRHeadScorer.from_pretrained("smollm2-135m-instruct", dtype="bfloat16", max_passage_tokens=150)
    original = capture.run_layers
    forward = [0.0]

    def timed(*a: Any, **k: Any) -> Any:
        started = time.perf_counter()
        out = original(*a, **k)
        forward[0] += time.perf_counter() - started
        return out

    capture.run_layers = timed
    scorer.score(*rows[0])  # warm-up
    host, total = [], []
    for _ in range(args.rounds):
        for query, passages in rows:
            forward[0] = 0.0
            started = time.perf_counter()
            scorer.score(query, passages)
            took = time.perf_counter() - started
            host.append(took - forward[0])
            total.append(took)
    print(
        json.dumps(
            {
                "checkout": str(args.checkout),
                "host_seconds": statistics.median(host),
                "host_share": statistics.median(h / t for h, t in zip(host, total, strict=True)),
                "call_seconds": statistics.median(total),
            }
        )
    )


if __name__ == "__main__":
    main()
