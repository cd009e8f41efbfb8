"""LangChain integration: two document compressors and a re-ranking retriever.

:class:`QRHeadReranker` and :class:`QRHeadContextCompressor` are document compressors;
:class:`QRHeadRetriever` re-ranks a base retriever's candidates.

Needs the ``langchain`` extra (``langchain-core>=1.0``); the engine itself never imports LangChain, so
``import qrhead_integrations`` works without it and this module says how to install it.
"""

from __future__ import annotations

from .._extras import missing_extra

try:
    import langchain_core  # noqa: F401
except ImportError as exc:  # pragma: no cover - exercised in a subprocess by the tests
    raise missing_extra(__name__, "langchain-core>=1.0", "langchain") from exc

from .context_compressor import QRHeadContextCompressor
from .reranker import QRHeadReranker
from .retriever import QRHeadRetriever

__all__ = ["QRHeadContextCompressor", "QRHeadReranker", "QRHeadRetriever"]
