"""LangChain integration: :class:`QRHeadReranker` and :class:`QRHeadContextCompressor` (document compressors)
and :class:`QRHeadRetriever`.

Needs the ``langchain`` extra (``langchain-core>=1.0``); the engine itself never imports LangChain, so
``import qrhead_integrations`` works without it and this module says how to install it.
"""

from __future__ import annotations

try:
    import langchain_core  # noqa: F401
except ImportError as exc:  # pragma: no cover - exercised in a subprocess by the tests
    raise ImportError(
        "qrhead_integrations.langchain needs langchain-core>=1.0, which is not installed. "
        "Install it with: pip install 'qrhead-integrations[langchain]'"
    ) from exc

from .context_compressor import QRHeadContextCompressor
from .reranker import QRHeadReranker
from .retriever import QRHeadRetriever

__all__ = ["QRHeadContextCompressor", "QRHeadReranker", "QRHeadRetriever"]
