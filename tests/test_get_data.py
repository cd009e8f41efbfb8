"""``scripts/get_data.py`` builds the files docs/results.md reports on, in the layouts ``qrhead`` reads.

The downloads themselves need the network; what is checked here is what the script does with them: a HotpotQA
record becomes the multi-hop JSONL row, the id list names the reports' 200 questions in their order, and BEIR's
zip becomes a folder ``read_beir`` loads.
"""

from __future__ import annotations

import importlib.util
import json
import zipfile
from pathlib import Path
from types import ModuleType

import pytest

from qrhead_integrations.evaluation import read_beir

REPO = Path(__file__).resolve().parents[1]
SHARED_HOTPOTQA = REPO.parent / "shared" / "data" / "hotpotqa" / "hotpotqa_dev200.jsonl"


def _script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("get_data", REPO / "scripts" / "get_data.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


get_data = _script()

RAW = {
    "_id": "q1",
    "question": "Which band?",
    "answer": "Rush",
    "type": "bridge",
    "level": "hard",
    "context": [["A", ["First.", " Second."]], ["B", ["Only."]], ["C", ["Gold", " too."]]],
    "supporting_facts": [["C", 0], ["A", 1], ["C", 1]],
}


def test_a_hotpotqa_record_becomes_a_multihop_row() -> None:
    assert get_data.hotpotqa_row(RAW) == {
        "id": "q1",
        "question": "Which band?",
        "answer": "Rush",
        "type": "bridge",
        "passages": [
            {"title": "A", "text": "First. Second."},
            {"title": "B", "text": "Only."},
            {"title": "C", "text": "Gold too."},
        ],
        "gold_idx": [0, 2],
    }


def test_the_rows_follow_the_id_list_and_a_missing_id_stops(tmp_path: Path) -> None:
    second = {**RAW, "_id": "q2"}
    target = tmp_path / "hotpotqa" / "rows.jsonl"
    get_data.write_hotpotqa([RAW, second], ["q2", "q1"], target)
    assert [json.loads(line)["id"] for line in target.read_text(encoding="utf-8").splitlines()] == ["q2", "q1"]
    with pytest.raises(SystemExit, match="1 ids"):
        get_data.write_hotpotqa([RAW], ["q1", "q3"], target)


@pytest.mark.skipif(not SHARED_HOTPOTQA.is_file(), reason="needs ../shared/data")
def test_the_id_list_names_the_reports_questions_and_rebuilds_their_rows() -> None:
    rows = [json.loads(line) for line in SHARED_HOTPOTQA.read_text(encoding="utf-8").splitlines()]
    assert get_data.IDS.read_text(encoding="utf-8").split() == [row["id"] for row in rows]
    for row in rows:  # each row, written back as a HotpotQA record, converts to itself
        raw = {
            "_id": row["id"],
            "question": row["question"],
            "answer": row["answer"],
            "type": row["type"],
            "context": [[p["title"], [p["text"]]] for p in row["passages"]],
            "supporting_facts": [[row["passages"][i]["title"], 0] for i in row["gold_idx"]],
        }
        assert get_data.hotpotqa_row(raw) == row


def test_beirs_zip_becomes_a_folder_qrhead_reads(tmp_path: Path) -> None:
    archive = tmp_path / "scifact.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr("scifact/", "")
        zipped.writestr("scifact/corpus.jsonl", json.dumps({"_id": "d1", "title": "T", "text": "Text."}) + "\n")
        zipped.writestr("scifact/queries.jsonl", json.dumps({"_id": "1", "text": "A claim."}) + "\n")
        zipped.writestr("scifact/qrels/train.tsv", "query-id\tcorpus-id\tscore\n1\td1\t1\n")
    get_data.write_scifact(archive, tmp_path / "data" / "scifact")
    dataset = read_beir(tmp_path / "data" / "scifact", split="train")
    assert dataset.queries == {"1": "A claim."} and dataset.qrels == {"1": {"d1": 1}}
