"""LlamaIndex integration: node postprocessors that re-rank or compress retrieved nodes with QRHead scores.

:class:`QRHeadRerank` re-ranks the nodes; :class:`QRHeadContextCompressor` keeps the parts of them a query needs.

Needs the ``llamaindex`` extra (``llama-index-core >= 0.12``)::

    pip install 'qrhead-integrations[llamaindex]'

Example:
    >>> from qrhead_integrations.llama_index import QRHeadRerank  # doctest: +SKIP
    >>> rerank = QRHeadRerank(model="smollm2-135m-instruct", top_n=3)  # doctest: +SKIP
    >>> engine = index.as_query_engine(similarity_top_k=10, node_postprocessors=[rerank])  # doctest: +SKIP
    >>> from qrhead_integrations.llama_index import QRHeadContextCompressor  # doctest: +SKIP
    >>> compressor = QRHeadContextCompressor(  # doctest: +SKIP
    ...     model="smollm2-135m-instruct", budget_tokens=300, token_counter="cl100k_base"
    ... )
    >>> engine = index.as_query_engine(similarity_top_k=10, node_postprocessors=[compressor])  # doctest: +SKIP
"""

from __future__ import annotations

from .._extras import missing_extra

try:
    import llama_index.core  # noqa: F401
except ImportError as exc:  # pragma: no cover - exercised in a subprocess by the tests
    raise missing_extra(__name__, "LlamaIndex (llama-index-core >= 0.12)", "llamaindex") from exc

from .context_compressor import QRHeadContextCompressor
from .rerank import QRHeadRerank

__all__ = ["QRHeadContextCompressor", "QRHeadRerank"]
