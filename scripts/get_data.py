"""Build the evaluation data (``../shared/data/``) from its public sources: what docs/results.md reports on.

* ``scifact/``: BEIR's SciFact (``corpus.jsonl``, ``queries.jsonl``, ``qrels/train.tsv`` and ``qrels/test.tsv``),
  unzipped from BEIR's download; ``qrhead eval beir`` reads this layout.
* ``hotpotqa/hotpotqa_dev200.jsonl``: the 200 HotpotQA distractor-setting dev questions the reports use
  (their ids, in order: ``scripts/hotpotqa_dev200_ids.txt``), one JSON object per line — ``id``, ``question``,
  ``answer``, ``type``, ``passages`` (each context paragraph: ``title`` and its sentences joined) and ``gold_idx``
  (the passages the supporting facts name).

    python scripts/get_data.py                       # downloads both (≈50 MB) into ../shared/data
    python scripts/get_data.py --hotpotqa-json hotpot_dev_distractor_v1.json --scifact-zip scifact.zip

Licences: SciFact CC BY-NC 2.0 (allenai/scifact), HotpotQA CC BY-SA 4.0.
"""

from __future__ import annotations

import argparse
import json
import urllib.request
import zipfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
SCIFACT_URL = "https://public.ukp.informatik.tu-darmstadt.de/thakur/BEIR/datasets/scifact.zip"
HOTPOTQA_URL = "http://curtis.ml.cmu.edu/datasets/hotpot/hotpot_dev_distractor_v1.json"
IDS = HERE / "hotpotqa_dev200_ids.txt"


def hotpotqa_row(raw: dict[str, Any]) -> dict[str, Any]:
    """One HotpotQA record (``_id``, ``context`` as ``[title, sentences]`` pairs, ``supporting_facts`` as
    ``[title, sentence index]`` pairs) in the multi-hop JSONL layout ``qrhead`` reads."""
    titles = {title for title, _ in raw["supporting_facts"]}
    passages = [{"title": title, "text": "".join(sentences)} for title, sentences in raw["context"]]
    return {
        "id": raw["_id"],
        "question": raw["question"],
        "answer": raw["answer"],
        "type": raw["type"],
        "passages": passages,
        "gold_idx": [i for i, passage in enumerate(passages) if passage["title"] in titles],
    }


def write_hotpotqa(records: list[dict[str, Any]], ids: list[str], target: Path) -> None:
    """The questions named by ``ids``, in that order, as JSON lines."""
    by_id = {record["_id"]: record for record in records}
    missing = [i for i in ids if i not in by_id]
    if missing:
        raise SystemExit(f"{len(missing)} ids are not in the HotpotQA file, e.g. {missing[0]}")
    target.parent.mkdir(parents=True, exist_ok=True)
    lines = [json.dumps(hotpotqa_row(by_id[i]), ensure_ascii=False) for i in ids]
    target.write_text("\n".join(lines) + "\n", encoding="utf-8")


def write_scifact(archive: Path, target: Path) -> None:
    """BEIR's ``scifact.zip`` (one ``scifact/`` folder inside), extracted as ``target``."""
    with zipfile.ZipFile(archive) as zipped:
        for member in zipped.namelist():
            name = member.split("/", 1)[1] if "/" in member else ""
            if name and not member.endswith("/"):
                (target / name).parent.mkdir(parents=True, exist_ok=True)
                (target / name).write_bytes(zipped.read(member))


def fetched(path: Path | None, url: str, cache: Path) -> Path:
    """``path`` when given, else ``url`` downloaded to ``cache`` (once)."""
    if path is not None:
        return path
    if not cache.exists():
        print(f"downloading {url}", flush=True)
        urllib.request.urlretrieve(url, cache)  # fixed URLs of public data sets
    return cache


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=HERE.parents[1] / "shared" / "data")
    parser.add_argument("--hotpotqa-json", type=Path, help="hotpot_dev_distractor_v1.json, already downloaded")
    parser.add_argument("--scifact-zip", type=Path, help="BEIR's scifact.zip, already downloaded")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    hotpot = fetched(args.hotpotqa_json, HOTPOTQA_URL, args.out / "hotpot_dev_distractor_v1.json")
    ids = IDS.read_text(encoding="utf-8").split()
    records = json.loads(hotpot.read_text(encoding="utf-8"))
    write_hotpotqa(records, ids, args.out / "hotpotqa" / "hotpotqa_dev200.jsonl")
    write_scifact(fetched(args.scifact_zip, SCIFACT_URL, args.out / "scifact.zip"), args.out / "scifact")
    print(f"wrote {args.out / 'hotpotqa' / 'hotpotqa_dev200.jsonl'} ({len(ids)} questions) and {args.out / 'scifact'}")


if __name__ == "__main__":
    main()
