"""Engine speed and memory: our scorer vs plain forwards, at several prompt lengths, on the bundled models.

Measured per length, ``--repeats`` interleaved rounds after one warm-up each (medians; ratios are the median of
per-round ratios, so background load hits both sides of a ratio alike):
  (a) scorer      QRHeadScorer.score(): prefix forward + query tail + "N/A" tail, cut after the deepest head,
                  capturing the selected heads;
  (b) truncated   one plain-sdpa forward of the same tokens, cut after the same deepest layer;
  (c) full        one plain-sdpa forward of the whole model (LM head on the last position only);
  (d) eager       the whole model with ``output_attentions=True`` (eager attention), where it fits in memory.
Peak memory is the peak resident-set growth over the run on CPU (sampled every 5 ms), or peak allocated memory
on CUDA.

    python benchmarks/bench_engine.py --json reports/bench_engine.json --markdown reports/bench_engine.md
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil
import torch
from _memory import PeakMemory
from _report import write_reports

from qrhead_integrations import QRHeadScorer, capture
from qrhead_integrations.models import resolve_device
from qrhead_integrations.prompt import PromptBuilder, to_passages

REPO = Path(__file__).resolve().parents[1]
HOTPOTQA = REPO.parent / "shared" / "data" / "hotpotqa" / "hotpotqa_dev200.jsonl"
DEMO = REPO / "qrhead_integrations" / "data" / "demo_hotpotqa.json"
QUERY = "In what year did the Danish plant ecologist who assisted the chemist who introduced pH die?"


def _corpus() -> list[tuple[str, str]]:
    """Real passages (HotpotQA) to fill prompts; the bundled demo question when ../shared is absent."""
    if HOTPOTQA.is_file():
        rows = [json.loads(line) for line in HOTPOTQA.read_text(encoding="utf-8").splitlines() if line.strip()]
        return [(p["title"], p["text"]) for row in rows for p in row["passages"]]
    demo = json.loads(DEMO.read_text(encoding="utf-8"))
    return [(p["title"], p["text"]) for p in demo["passages"]] * 50


def _passages_for(scorer: QRHeadScorer, target_tokens: int, corpus: list[tuple[str, str]]) -> list[Any]:
    """Passages whose whole prompt stays within ``target_tokens`` (and within the scorer's single window, so the
    scorer and the plain forwards process the very same tokens)."""
    builder = PromptBuilder(scorer.tokenizer, scorer.config.layout)
    chosen: list[Any] = []
    for item in corpus:
        candidate = [*chosen, item]
        encoded = builder.encode(to_passages(candidate), [QUERY])
        if len(encoded.prefix_ids) + len(encoded.tails[0]) > target_tokens:
            break
        if (
            len(
                scorer._windows(
                    list(range(len(candidate))),
                    dict(enumerate(to_passages(candidate))),
                    [builder.tail_ids(t) for t in (QUERY, "N/A")],
                )
            )
            > 1
        ):
            break
        chosen = candidate
    return chosen


def _measure_rounds(
    fns: dict[str, Callable[[], Any]], repeats: int, device: torch.device
) -> dict[str, list[tuple[float, int]]]:
    """Run every function once per round, interleaved, after one warm-up each.

    Interleaving makes a slow period (another process on a 2-core machine) hit all methods of a round alike, so
    per-round ratios stay meaningful where back-to-back blocks of repeats would not.
    """
    for fn in fns.values():
        fn()  # warm-up
    samples: dict[str, list[tuple[float, int]]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            with PeakMemory(device) as mem:
                start = time.perf_counter()
                fn()
                if device.type == "cuda":
                    torch.cuda.synchronize(device)
                elapsed = time.perf_counter() - start
            samples[name].append((elapsed, mem.peak_bytes))
    return samples


def _summary(samples: list[tuple[float, int]]) -> dict[str, float]:
    times = [t for t, _ in samples]
    return {
        "seconds": statistics.median(times),
        "min_seconds": min(times),
        "peak_mib": max(p for _, p in samples) / 2**20,
        "runs": len(samples),
    }


def _ratio(samples: dict[str, list[tuple[float, int]]], num: str, den: str) -> float:
    """Median over rounds of the per-round time ratio."""
    return statistics.median(a[0] / b[0] for a, b in zip(samples[num], samples[den], strict=True))


def _measure_length(scorer: QRHeadScorer, passages: list[Any], repeats: int, eager_max: int) -> dict[str, Any]:
    """Time (a)-(d) on one prompt made of ``passages``."""
    model, device = scorer.model, scorer.device
    encoded = PromptBuilder(scorer.tokenizer, scorer.config.layout).encode(to_passages(passages), [QUERY])
    ids = encoded.prefix_ids + encoded.tails[0]
    tensor_ids = torch.tensor([ids], device=device)
    row: dict[str, Any] = {"tokens": len(ids), "passages": len(passages)}

    @torch.inference_mode()
    def run_scorer() -> None:
        scorer.score(QUERY, passages)

    @torch.inference_mode()
    def run_truncated() -> None:
        capture.run_layers(model, ids, capture.new_cache(model), start=0, stop_after=scorer.heads.deepest_layer)

    @torch.inference_mode()
    def run_full() -> None:
        model(tensor_ids, logits_to_keep=1)

    @torch.inference_mode()
    def run_eager() -> None:
        model(tensor_ids, output_attentions=True, logits_to_keep=1)

    plain: dict[str, Callable[[], Any]] = {"truncated_sdpa": run_truncated, "full_sdpa": run_full}
    model.set_attn_implementation(capture.ATTENTION_NAME)

    # The scorer needs the capturing attention and the plain forwards plain sdpa: switch per call.
    def scorer_call() -> None:
        model.set_attn_implementation(capture.ATTENTION_NAME)
        try:
            run_scorer()
        finally:
            model.set_attn_implementation("sdpa")

    model.set_attn_implementation("sdpa")
    try:
        samples = _measure_rounds({"scorer": scorer_call, **plain}, repeats, device)
        if len(ids) <= eager_max:
            model.set_attn_implementation("eager")
            samples.update(_measure_rounds({"eager_output_attentions": run_eager}, max(1, repeats - 1), device))
    finally:
        model.set_attn_implementation(capture.ATTENTION_NAME)
    for name, values in samples.items():
        row[name] = _summary(values)
    row.setdefault("eager_output_attentions", None)
    row["ratio_scorer_over_truncated_sdpa"] = _ratio(samples, "scorer", "truncated_sdpa")
    row["ratio_scorer_over_full_sdpa"] = _ratio(samples, "scorer", "full_sdpa")
    eager = row["eager_output_attentions"]
    row["ratio_eager_over_scorer"] = None if eager is None else eager["seconds"] / row["scorer"]["seconds"]
    return row


def random_weights_scorer(name: str, folder: Path, device: str | None, dtype: str | None) -> QRHeadScorer:
    """A scorer over a randomly initialised model of ``name``'s architecture (``folder/name`` holds its
    config.json and tokenizer files): for timing where the weights cannot travel (a lent GPU machine). Speed does
    not depend on the weights' values; the model's scores are meaningless."""
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    from qrhead_integrations.models import resolve_device, resolve_dtype

    source = folder / name
    resolved = resolve_device(device)
    config = AutoConfig.from_pretrained(source)
    model = AutoModelForCausalLM.from_config(config, dtype=resolve_dtype(dtype, resolved), attn_implementation="sdpa")
    return QRHeadScorer(model.to(resolved).eval(), AutoTokenizer.from_pretrained(source), model_id=name)


def bench_model(
    name: str,
    lengths: list[int],
    repeats: int,
    eager_max: int,
    *,
    device: str | None = None,
    dtype: str | None = None,
    random_weights: Path | None = None,
) -> dict[str, Any]:
    if random_weights is not None:
        scorer = random_weights_scorer(name, random_weights, device, dtype)
    else:
        scorer = QRHeadScorer.from_pretrained(name, device=device, dtype=dtype)
    corpus = _corpus()
    out: dict[str, Any] = {
        "heads": str(scorer.heads),
        "deepest_layer": scorer.heads.deepest_layer,
        "num_layers": scorer.num_layers,
        "dtype": str(scorer.model.dtype).removeprefix("torch."),
        "random_weights": random_weights is not None,
        "lengths": {},
    }
    for length in lengths:
        if length > scorer.context_length:
            print(f"{name} {length}: longer than the model's context ({scorer.context_length}), skipped")
            continue
        passages = _passages_for(scorer, length, corpus)
        row = _measure_length(scorer, passages, repeats, eager_max)
        out["lengths"][str(length)] = row
        _print_row(name, length, row)
    return out


def _print_row(name: str, length: int, row: dict[str, Any]) -> None:
    eager = row["eager_output_attentions"]
    eager_text = "—" if eager is None else f"{eager['seconds']:.2f}s/{eager['peak_mib']:.0f}MiB"
    print(
        f"{name:28s} {length:>5} ({row['tokens']} tok): scorer {row['scorer']['seconds']:.2f}s/"
        f"{row['scorer']['peak_mib']:.0f}MiB  truncated {row['truncated_sdpa']['seconds']:.2f}s  "
        f"full {row['full_sdpa']['seconds']:.2f}s  eager {eager_text}  "
        f"scorer/truncated {row['ratio_scorer_over_truncated_sdpa']:.3f}",
        flush=True,
    )


def _markdown(report: dict[str, Any]) -> str:
    lines = [
        "# Engine benchmark",
        "",
        f"Command: `{report['info']['command']}`  ",
        f"Machine: {report['info']['machine']}, torch {report['info']['torch']}, "
        f"{report['info']['threads']} threads, device {report['info']['device']}"
        + (f" ({report['info']['gpu']})" if report["info"].get("gpu") else ""),
        "",
        "| model | tokens | scorer s (peak MiB) | truncated sdpa s | full sdpa s | eager s (peak MiB) "
        "| scorer / truncated | eager / scorer |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, model in report["models"].items():
        if model.get("random_weights"):
            name = f"{name} (random weights, {model['dtype']})"
        elif model.get("dtype", "float32") != "float32":
            name = f"{name} ({model['dtype']})"
        for row in model["lengths"].values():
            eager = row["eager_output_attentions"]
            eager_text = "—" if eager is None else f"{eager['seconds']:.2f} ({eager['peak_mib']:.0f})"
            ratio = row["ratio_eager_over_scorer"]
            lines.append(
                f"| {name} | {row['tokens']} | {row['scorer']['seconds']:.2f} ({row['scorer']['peak_mib']:.0f}) "
                f"| {row['truncated_sdpa']['seconds']:.2f} | {row['full_sdpa']['seconds']:.2f} | {eager_text} "
                f"| {row['ratio_scorer_over_truncated_sdpa']:.3f} | {'—' if ratio is None else f'{ratio:.1f}'} |"
            )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="smollm2-135m-instruct,qwen2.5-coder-0.5b-instruct")
    parser.add_argument("--lengths", default="512,2048,4096,8192")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--eager-max", type=int, default=2600, help="skip eager above this many tokens (memory)")
    parser.add_argument("--device", help="cpu, cuda, mps (default: automatic, as the library chooses)")
    parser.add_argument("--dtype", help="float32, bfloat16, float16 (default: the library's choice for the device)")
    parser.add_argument(
        "--random-weights",
        type=Path,
        help="folder with one <model>/ subfolder of config.json + tokenizer files per model: time randomly "
        "initialised models of those architectures (where the bundled weights are not installed)",
    )
    parser.add_argument("--json", type=Path, help="write the report as JSON")
    parser.add_argument("--markdown", type=Path, help="write the report as a Markdown table")
    args = parser.parse_args()
    lengths = [int(x) for x in args.lengths.split(",")]
    report: dict[str, Any] = {
        "info": {
            "command": "python benchmarks/bench_engine.py "
            + " ".join(
                f"--{k.replace('_', '-')} {v}"
                for k, v in vars(args).items()
                if v is not None and k not in ("json", "markdown")
            ),
            "machine": f"{platform.machine()}, {psutil.cpu_count()} cores, "
            f"{psutil.virtual_memory().total / 2**30:.0f} GiB",
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
            "device": str(resolve_device(args.device)),
            "gpu": torch.cuda.get_device_name() if resolve_device(args.device).type == "cuda" else None,
            "date": time.strftime("%Y-%m-%d"),
        },
        "models": {},
    }
    for name in args.models.split(","):
        report["models"][name] = bench_model(
            name,
            lengths,
            args.repeats,
            args.eager_max,
            device=args.device,
            dtype=args.dtype,
            random_weights=args.random_weights,
        )
    write_reports(report, _markdown(report), args.json, args.markdown)
    print(_markdown(report))


if __name__ == "__main__":
    main()
