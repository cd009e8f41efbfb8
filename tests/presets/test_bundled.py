"""The shipped head sets: every bundled model has the sets the docs promise, with heads inside its model."""

from __future__ import annotations

import pytest

from qrhead_integrations.models import BUNDLED_MODELS
from qrhead_integrations.presets import default_preset, get_preset

# (layers, heads per layer) of each bundled model's architecture, from its GGUF's config.
SHAPES = {
    "smollm2-135m-instruct": (30, 9),
    "qwen2.5-coder-0.5b-instruct": (24, 14),
    "qwen2.5-coder-1.5b-instruct": (28, 12),
}


@pytest.mark.parametrize("model", sorted(BUNDLED_MODELS))
def test_every_bundled_model_ships_a_default_and_a_fast_set_inside_its_shape(model: str) -> None:
    layers, heads = SHAPES[model]
    default = default_preset(model)
    fast = get_preset(model, "fast")
    assert default is not None and fast is not None, f"{model}: heads='fast' and the default must resolve"
    for head_set in (default, fast):
        assert len(head_set) >= 1
        assert all(0 <= layer < layers and 0 <= head < heads for layer, head in head_set)
    # the point of `fast`: a forward that stops earlier than the default set's
    assert max(layer for layer, _ in fast) < max(layer for layer, _ in default)
    assert fast.provenance.get("dev"), f"{model}: the fast set records the dev figures it was chosen by"


def test_the_large_models_two_task_set_is_the_union_of_its_detected_sets() -> None:
    """``two-task`` is what its provenance says: the ``multihop`` heads, then the SciFact set's heads they lack
    (the study built that union; a hand edit of one part must not leave the named set silently different)."""
    model = "qwen2.5-coder-1.5b-instruct"
    multihop, rerank = get_preset(model, "multihop"), get_preset(model, "rerank-best-last")
    two_task = get_preset(model, "two-task")
    assert multihop is not None and rerank is not None and two_task is not None
    assert two_task.heads == multihop.heads + tuple(h for h in rerank.heads if h not in multihop.heads)


def test_the_large_models_default_is_its_scifact_set_at_the_small_models_fusion() -> None:
    """The 1.5B's union set and own fusion earned no more on dev queries they were not chosen on than its
    ``rerank-best-last`` set at the default fusion (reports/large_defaults_study.md): the simpler one ships, the
    same shape as the 0.5B's defaults."""
    from qrhead_integrations.fusion import DEFAULT_FUSION, model_fusion

    model = "qwen2.5-coder-1.5b-instruct"
    default = default_preset(model)
    assert default is not None and default.provenance.get("preset") == "rerank-best-last"
    assert default.heads == get_preset(model, "rerank-best-last").heads  # type: ignore[union-attr]
    assert model_fusion(model) == DEFAULT_FUSION == model_fusion("qwen2.5-coder-0.5b-instruct")


@pytest.mark.parametrize(
    ("model", "name"),
    [
        ("qwen2.5-coder-0.5b-instruct", "rerank-best-last"),
        ("qwen2.5-coder-1.5b-instruct", "rerank-best-last"),
        ("qwen2.5-coder-1.5b-instruct", "two-task"),
    ],
)
def test_a_hyphenated_preset_name_resolves_to_the_preset_not_a_head_list(model: str, name: str) -> None:
    """``heads="rerank-best-last"`` (as the docs write it) is the preset; a 'layer-head' list still parses."""
    from qrhead_integrations.errors import HeadSpecError
    from qrhead_integrations.heads import resolve_heads

    layers, heads = SHAPES[model]
    resolved = resolve_heads(name, model_id=model, num_layers=layers, num_heads=heads)
    preset = get_preset(model, name)
    assert preset is not None and resolved.heads == preset.heads
    assert resolve_heads("1-2,0-1", model_id=model, num_layers=layers, num_heads=heads).heads == ((1, 2), (0, 1))
    with pytest.raises(HeadSpecError, match="cannot parse head"):
        resolve_heads("rerank-best-first", model_id=model, num_layers=layers, num_heads=heads)
