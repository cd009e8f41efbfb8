"""HeadSet parsing, formatting, validation, JSON round trips and preset resolution."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from qrhead_integrations import HeadSet, HeadSpecError
from qrhead_integrations.heads import resolve_heads
from qrhead_integrations.presets import get_preset, known_models, preset_names


def test_parse_and_format_round_trip() -> None:
    heads = HeadSet.parse("13-18, 13-21 8-11")
    assert heads.heads == ((13, 18), (13, 21), (8, 11))
    assert str(heads) == "13-18,13-21,8-11"
    assert heads.layers == (8, 13) and heads.deepest_layer == 13
    assert heads.by_layer() == {13: [18, 21], 8: [11]}


@pytest.mark.parametrize("spec", ["", "13", "13-x", "1-2-3", "-1-2", "1-2,1-2"])
def test_bad_specs_raise(spec: str) -> None:
    with pytest.raises(HeadSpecError):
        HeadSet.parse(spec)


def test_validate_names_the_missing_layer_or_head() -> None:
    with pytest.raises(HeadSpecError, match="30 layers"):
        HeadSet.parse("30-0").validate(30, 9)
    with pytest.raises(HeadSpecError, match="9 heads"):
        HeadSet.parse("3-9").validate(30, 9)
    assert HeadSet.parse("29-8").validate(30, 9)


def test_json_round_trip_keeps_scores_and_provenance(tmp_path: Path) -> None:
    heads = HeadSet(((2, 1), (0, 3)), scores=(0.5, 0.25), provenance={"model": "m", "examples": 64})
    path = heads.save(tmp_path / "sub" / "heads.json")
    assert HeadSet.load(path) == heads
    assert json.loads(path.read_text())["heads"] == "2-1,0-3"
    assert not list(path.parent.glob("*.tmp"))


def test_load_rejects_garbage(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(HeadSpecError, match="not valid JSON"):
        HeadSet.load(bad)
    bad.write_text("[1, 2]")
    with pytest.raises(HeadSpecError):
        HeadSet.load(bad)


def test_top_and_all_heads() -> None:
    heads = HeadSet.all_heads(3, 2)
    assert len(heads) == 6 and heads.heads[0] == (0, 0)
    assert HeadSet.parse("1-1,0-0,2-1").top(2).heads == ((1, 1), (0, 0))
    assert HeadSet.all_heads(30, 9, layers=[18]).heads == tuple((18, h) for h in range(9))


def test_published_presets_are_shipped() -> None:
    assert "meta-llama/llama-3.1-8b-instruct" in known_models()
    assert preset_names("meta-llama/Llama-3.1-8B-Instruct") == ["lme", "nq"]
    nq = get_preset("meta-llama/Llama-3.1-8B-Instruct", "nq")
    assert nq is not None and len(nq) == 16 and nq.heads[0] == (14, 22)
    # A local folder named like the model finds the same presets.
    local = get_preset("/models/Llama-3.1-8B-Instruct", "nq")
    assert local is not None and local.heads == nq.heads


def test_resolve_heads_accepts_every_documented_form(tmp_path: Path) -> None:
    kw = {"model_id": "smollm2-135m-instruct", "num_layers": 30, "num_heads": 9}
    default = resolve_heads(None, **kw)
    assert default.provenance["preset"] == "multihop" and len(default) == 16  # the detected set
    assert resolve_heads("provisional", **kw).layers == (18,)
    assert resolve_heads("rerank", **kw).provenance["task"] == "rerank"
    assert len(resolve_heads("all", **kw)) == 270
    assert resolve_heads("layers:3,4", **kw).layers == (3, 4)
    assert resolve_heads("1-2,3-4", **kw).heads == ((1, 2), (3, 4))
    assert resolve_heads([(1, 2)], **kw).heads == ((1, 2),)
    path = HeadSet.parse("5-5").save(tmp_path / "h.json")
    assert resolve_heads(path, **kw).heads == ((5, 5),)
    assert resolve_heads(str(path), **kw).heads == ((5, 5),)
    with pytest.raises(HeadSpecError, match="unknown head preset"):
        resolve_heads("nq", **kw)
    with pytest.raises(HeadSpecError, match="30 layers"):
        resolve_heads("layer:30", **kw)
    with pytest.raises(HeadSpecError, match="does not exist"):
        resolve_heads(tmp_path / "missing.json", **kw)


def test_unknown_model_defaults_to_all_heads_with_a_warning() -> None:
    with pytest.warns(UserWarning, match="all 8 heads"):
        heads = resolve_heads(None, model_id="someone/unknown", num_layers=2, num_heads=4)
    assert list(heads) == [(layer, head) for layer in range(2) for head in range(4)]
