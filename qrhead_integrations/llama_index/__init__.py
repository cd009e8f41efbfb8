"""LlamaIndex integration: node postprocessors that re-rank (:class:`QRHeadRerank`) or compress
(:class:`QRHeadContextCompressor`) retrieved nodes with QRHead scores.

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

try:
    import llama_index.core  # noqa: F401
except ImportError as exc:  # pragma: no cover - exercised in a subprocess by the tests
    raise ImportError(
        "qrhead_integrations.llama_index needs LlamaIndex (llama-index-core >= 0.12), which is not "
        "installed. Install it with: pip install 'qrhead-integrations[llamaindex]'"
    ) from exc

from .context_compressor import QRHeadContextCompressor
from .rerank import QRHeadRerank

__all__ = ["QRHeadContextCompressor", "QRHeadRerank"]
