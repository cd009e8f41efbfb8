"""The model-loading options both frameworks' components declare, as pydantic field types written once.

LangChain's reranker and compressor and LlamaIndex's postprocessors are pydantic models with the same
``heads``/``device``/``quantize``/``scorer_kwargs`` fields (handed to :class:`~qrhead_integrations._lazy.ScorerLoader`);
each declares ``heads: HeadsField = None`` and so on, so the type and description are the same everywhere.
Imported by the adapters only: pydantic comes with either framework.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field

HeadsField = Annotated[
    Any,
    Field(
        description=(
            "Head specification of the model: None (its preset), a preset name, 'layer-head,...' pairs, 'all', "
            "or a head-set JSON file."
        )
    ),
]
DeviceField = Annotated[
    str | None, Field(description="Device of the model ('cpu', 'cuda', 'mps'...); None: chosen automatically.")
]
DtypeField = Annotated[
    str | None,
    Field(
        description=(
            "dtype of the loaded model ('float32', 'bfloat16', 'float16'); None: automatic — bf16 on GPUs and on "
            "CPUs with AMX, else float32."
        )
    ),
]
QuantizeField = Annotated[
    Literal["int8"] | None,
    Field(
        description=(
            "'int8': dynamic int8 Linear layers (CPU only; faster, rankings can change — see docs/engine.md). "
            "None: the weights as loaded."
        )
    ),
]
ScorerKwargsField = Annotated[
    dict[str, Any],
    Field(
        default_factory=dict,
        description="Extra keyword arguments of QRHeadScorer.from_pretrained (dtype, ScorerConfig fields).",
    ),
]
