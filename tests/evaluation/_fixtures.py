"""Small evaluation data sets written in the test: a 5-query BEIR folder and a multi-hop JSONL file."""

from __future__ import annotations

import json
from pathlib import Path

CORPUS = {
    "d1": ("Moon", "The moon orbits the earth."),
    "d2": ("Sun", "The sun is a star."),
    "d3": ("Paris", "Paris is the capital of France."),
    "d4": ("Hamlet", "Hamlet is a play."),
    "d5": ("Water", "Water boils at one hundred degrees."),
    "d6": ("Pets", "Cats and dogs are animals."),
    "d7": ("Fox", "The quick brown fox jumps."),
    "d8": ("", "The earth and the moon and the sun."),
    "d9": ("France", "France is a country; its capital is Paris."),
    "d10": ("Dogs", "Dogs are animals that bark."),
}
QUERIES = {
    "q1": "What does the moon orbit?",
    "q2": "What is the capital of France?",
    "q3": "Which animals are pets?",
    "q4": "At what temperature does water boil?",
    "q5": "Is the sun a star?",
    "q6": "An unjudged query about Hamlet.",
}
QRELS = [
    ("q1", "d1", 1),
    ("q1", "d8", 1),
    ("q2", "d3", 2),
    ("q2", "d9", 1),
    ("q3", "d6", 1),
    ("q3", "d10", 1),
    ("q4", "d5", 1),
    ("q5", "d2", 1),
    ("q5", "d4", 0),
]


def write_beir(root: Path, split: str = "test") -> Path:
    """A standard-layout BEIR folder: 10 documents, 5 judged queries (plus one unjudged), ``qrels/{split}.tsv``."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "corpus.jsonl").write_text(
        "".join(json.dumps({"_id": i, "title": t, "text": x}) + "\n" for i, (t, x) in CORPUS.items()), encoding="utf-8"
    )
    (root / "queries.jsonl").write_text(
        "".join(json.dumps({"_id": i, "text": t}) + "\n" for i, t in QUERIES.items()), encoding="utf-8"
    )
    (root / "qrels").mkdir(exist_ok=True)
    lines = ["query-id\tcorpus-id\tscore", *(f"{q}\t{d}\t{s}" for q, d, s in QRELS)]
    (root / "qrels" / f"{split}.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return root


MULTIHOP = [
    {
        "id": "m1",
        "question": "Which star does the earth and its moon circle?",
        "passages": [
            {"title": "Fox", "text": "The quick brown fox jumps."},
            {"title": "Moon", "text": "The moon orbits the earth."},
            {"title": "Sun", "text": "The sun is a star; the earth orbits the sun."},
            {"title": "Water", "text": "Water boils at one hundred degrees."},
        ],
        "gold_idx": [1, 2],
    },
    {
        "id": "m2",
        "question": "Is Hamlet set in the capital of France?",
        "passages": [
            {"title": "Hamlet", "text": "Hamlet is a play."},
            {"title": "Pets", "text": "Cats and dogs are animals."},
            {"title": "Paris", "text": "Paris is the capital of France."},
        ],
        "gold_idx": [0, 2],
    },
    {
        "id": "m3",
        "question": "Do dogs and cats boil water?",
        "passages": [
            {"title": "Water", "text": "Water boils at one hundred degrees."},
            {"title": "Pets", "text": "Cats and dogs are animals."},
        ],
        "gold_idx": [0],
    },
]


def write_multihop(path: Path) -> Path:
    """Three multi-hop questions (2–4 passages each) in the unified JSONL format."""
    path.write_text("".join(json.dumps(row) + "\n" for row in MULTIHOP), encoding="utf-8")
    return path
