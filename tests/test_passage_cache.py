"""PassageCache: warm equals cold, bounds hold, damaged files are rebuilt (never read as scores), threads agree."""

from __future__ import annotations

import copy
import pickle
from pathlib import Path
from typing import Any

import pytest
import torch

from qrhead_integrations import QRHeadScorer
from qrhead_integrations.errors import InvalidInputError
from qrhead_integrations.parallel import ParallelEncoder
from qrhead_integrations.passage_cache import PassageCache, entry_key
from qrhead_integrations.prompt import Passage
from tests.concurrency import run_in_threads
from tests.tiny_models import tiny_model

PASSAGES = [
    Passage(text="Paris is the capital of France. Hamlet is a play.", title="Paris"),
    Passage(text="The moon orbits the earth. The sun is a star."),
    Passage(text="Water boils at one hundred degrees. Cats and dogs are animals.", title="Water"),
]
QUERY = "Which city is the capital of France?"
NS = "tiny-llama|test"


@pytest.fixture(scope="module")
def encoder(tokenizer: Any) -> ParallelEncoder:
    return ParallelEncoder(QRHeadScorer(tiny_model("llama"), tokenizer, heads="1-0,2-3", model_id="tiny-llama"))


def _scores(encoder: ParallelEncoder, cache: PassageCache) -> torch.Tensor:
    entries = [cache.get_or_encode(NS, p, encoder.encode) for p in PASSAGES]
    return encoder.score_per_head([QUERY], entries)


def test_warm_calls_score_exactly_as_the_cold_one(encoder: ParallelEncoder, tmp_path: Path) -> None:
    cache = PassageCache(directory=tmp_path)
    cold = _scores(encoder, cache)
    assert cache.misses == 3 and cache.hits == 0
    assert torch.equal(cold, _scores(encoder, cache))  # from memory
    assert cache.hits == 3
    from_disk = PassageCache(directory=tmp_path)  # a new process: the disk tier only
    assert torch.equal(cold, _scores(encoder, from_disk))
    assert from_disk.hits == 3 and from_disk.misses == 0


def test_entries_are_16_bit_and_keyed_by_namespace_and_content(encoder: ParallelEncoder) -> None:
    cache = PassageCache()
    entry = cache.get_or_encode(NS, PASSAGES[0], encoder.encode)
    assert entry.keys[0].dtype == torch.bfloat16
    assert entry_key(NS, PASSAGES[0]) != entry_key("other-model", PASSAGES[0])
    assert entry_key(NS, PASSAGES[0]) != entry_key(NS, Passage(text=PASSAGES[0].text))
    # title and text are length-prefixed: moving characters between them is another passage
    assert entry_key(NS, Passage(text="bc", title="a")) != entry_key(NS, Passage(text="c", title="ab"))


def test_memory_tier_keeps_its_byte_bound(encoder: ParallelEncoder) -> None:
    one = PassageCache().get_or_encode(NS, PASSAGES[0], encoder.encode)
    size = sum(t.numel() * t.element_size() for t in (*one.keys, *one.values))
    cache = PassageCache(max_bytes=int(size * 2.5))
    _scores(encoder, cache)
    assert 0 < cache.nbytes <= cache.max_bytes
    assert len(cache) == 2  # the least recently used one was dropped


def test_disk_tier_keeps_its_byte_bound(encoder: ParallelEncoder, tmp_path: Path) -> None:
    PassageCache(directory=tmp_path / "probe").get_or_encode(NS, PASSAGES[0], encoder.encode)
    size = next((tmp_path / "probe").glob("*/*.safetensors")).stat().st_size
    cache = PassageCache(directory=tmp_path / "bounded", max_disk_bytes=int(size * 1.5))
    _scores(encoder, cache)
    files = list((tmp_path / "bounded").glob("*/*.safetensors"))
    assert 1 <= len(files) <= 2
    assert sum(f.stat().st_size for f in files) <= size * 1.5 + 4096


@pytest.mark.parametrize("damage", ["truncate", "flip", "garbage", "other-namespace"])
def test_a_damaged_file_is_rebuilt_never_read(encoder: ParallelEncoder, tmp_path: Path, damage: str) -> None:
    reference = _scores(encoder, PassageCache(directory=tmp_path))
    path = tmp_path / entry_key(NS, PASSAGES[1])[:2] / f"{entry_key(NS, PASSAGES[1])}.safetensors"
    data = bytearray(path.read_bytes())
    if damage == "truncate":
        path.write_bytes(bytes(data[: len(data) // 2]))
    elif damage == "flip":
        data[-10] ^= 0xFF  # inside the tensor bytes: the file still parses, the checksum catches it
        path.write_bytes(bytes(data))
    elif damage == "garbage":
        path.write_bytes(b"not a safetensors file")
    else:
        other = PassageCache(directory=tmp_path / "other")
        other.get_or_encode("another-model", PASSAGES[1], encoder.encode)
        path.write_bytes(next((tmp_path / "other").glob("*/*.safetensors")).read_bytes())
    fresh = PassageCache(directory=tmp_path)
    with pytest.warns(UserWarning, match="encoded again"):
        again = _scores(encoder, fresh)
    assert torch.equal(again, reference)
    assert fresh.misses == 1 and fresh.hits == 2
    assert PassageCache(directory=tmp_path).get_or_encode(NS, PASSAGES[1], encoder.encode) is not None


def test_threads_reading_and_writing_one_folder_agree(encoder: ParallelEncoder, tmp_path: Path) -> None:
    reference = _scores(encoder, PassageCache())
    results, errors = run_in_threads(lambda: _scores(encoder, PassageCache(directory=tmp_path)), 4)
    assert not errors
    assert all(torch.equal(r, reference) for r in results)
    assert not list(tmp_path.glob("*/.*.tmp"))  # no temporary file left behind


def test_copies_share_the_disk_tier_and_settings(tmp_path: Path) -> None:
    cache = PassageCache(directory=tmp_path, max_bytes=1234, storage_dtype=torch.float16)
    for clone in (copy.deepcopy(cache), pickle.loads(pickle.dumps(cache))):
        assert clone.directory == tmp_path and clone.max_bytes == 1234 and clone.storage_dtype == torch.float16


@pytest.mark.parametrize(
    "kwargs",
    [{"max_bytes": -1}, {"max_bytes": 1.5}, {"max_bytes": True}, {"max_disk_bytes": "10"}, {"storage_dtype": "int8"}],
)
def test_bad_settings_raise_typed_errors(kwargs: dict[str, Any]) -> None:
    with pytest.raises(InvalidInputError):
        PassageCache(**kwargs)


def test_a_scorer_with_a_cache_ranks_from_it_and_warm_equals_cold(tokenizer: Any, tmp_path: Path) -> None:
    cache = PassageCache(directory=tmp_path)
    scorer = QRHeadScorer(tiny_model("llama"), tokenizer, heads="1-0,2-3", model_id="tiny-llama", passage_cache=cache)
    cold = scorer.score_many([QUERY, "What boils at one hundred degrees?"], PASSAGES)
    assert cache.misses == 3
    warm = scorer.score_many([QUERY, "What boils at one hundred degrees?"], PASSAGES)
    assert cache.hits == 3 and warm == cold
    # a second scorer over the same model shares the entries through the folder, and ranks the same
    other = scorer.with_config(passage_cache=PassageCache(directory=tmp_path))
    assert other.score_many([QUERY, "What boils at one hundred degrees?"], PASSAGES) == cold
    assert [r.index for r in other.rank(QUERY, PASSAGES)] == [r.index for r in scorer.rank(QUERY, PASSAGES)]
    # the in-context reading is another layout: same shapes, other numbers
    plain = scorer.with_config(passage_cache=None)
    assert plain.passage_cache is cache  # with_config keeps the cache unless given another
    assert len(QRHeadScorer(tiny_model("llama"), tokenizer, heads="1-0,2-3").score(QUERY, PASSAGES)) == 3


def test_entries_depend_on_the_model_setting(tokenizer: Any) -> None:
    cache = PassageCache()
    shallow = QRHeadScorer(tiny_model("llama"), tokenizer, heads="1-0", model_id="tiny-llama", passage_cache=cache)
    deep = shallow.with_config(heads="3-1")
    assert shallow.cache_namespace != deep.cache_namespace
    shallow.score(QUERY, PASSAGES)
    deep.score(QUERY, PASSAGES)
    assert cache.misses == 6 and len(cache) == 6


def test_a_scorer_refuses_a_cache_of_the_wrong_type_or_study_options(tokenizer: Any) -> None:
    with pytest.raises(InvalidInputError, match="PassageCache"):
        QRHeadScorer(tiny_model("llama"), tokenizer, heads="1-0", passage_cache={"not": "a cache"})  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="calibrated"):
        QRHeadScorer(tiny_model("llama"), tokenizer, heads="1-0", passage_cache=PassageCache(), calibrate=False)
