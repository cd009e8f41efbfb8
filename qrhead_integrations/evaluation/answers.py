"""Answer metrics for extractive/short-answer QA: exact match and token F1 with SQuAD/HotpotQA normalisation.

The normalisation is the one the SQuAD v1.1 evaluation script defines and HotpotQA's reuses — lower case, no
punctuation, no English articles (a, an, the), single spaces — so figures compare with published ones. A
prediction is scored against every reference (the answer and its aliases) and keeps the best score, as
MuSiQue's and TriviaQA's scripts do. HotpotQA's script also scores yes/no/noanswer specially: a yes/no
reference only matches the same word (token F1 is 0 otherwise), which :func:`token_f1` follows.
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Iterable

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCTUATION = frozenset(string.punctuation)
_SPECIAL = ("yes", "no", "noanswer")


def normalize_answer(text: str) -> str:
    """Lower case, drop punctuation and articles, collapse whitespace (SQuAD v1.1's ``normalize_answer``)."""
    lowered = text.lower()
    no_punctuation = "".join(ch for ch in lowered if ch not in _PUNCTUATION)
    no_articles = _ARTICLES.sub(" ", no_punctuation)
    return " ".join(no_articles.split())


def exact_match(prediction: str, reference: str) -> float:
    """1.0 when the normalised strings are equal, else 0.0."""
    return float(normalize_answer(prediction) == normalize_answer(reference))


def token_f1(prediction: str, reference: str) -> float:
    """Harmonic mean of token precision and recall over the normalised answers (HotpotQA's ``f1_score``)."""
    pred, ref = normalize_answer(prediction), normalize_answer(reference)
    if (pred in _SPECIAL or ref in _SPECIAL) and pred != ref:
        return 0.0
    pred_tokens, ref_tokens = pred.split(), ref.split()
    common = Counter(pred_tokens) & Counter(ref_tokens)
    same = sum(common.values())
    if same == 0:
        return 0.0
    precision = same / len(pred_tokens)
    recall = same / len(ref_tokens)
    return 2 * precision * recall / (precision + recall)


def best_scores(prediction: str, references: Iterable[str]) -> tuple[float, float]:
    """``(exact match, token F1)`` of ``prediction`` against its best-matching reference (0, 0 for none)."""
    refs = list(references)
    if not refs:
        return 0.0, 0.0
    return max(exact_match(prediction, r) for r in refs), max(token_f1(prediction, r) for r in refs)
