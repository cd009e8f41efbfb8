"""qrhead-integrations: query-focused retrieval heads (QRHead) as a re-ranker and long-context compressor.

Public API only; the engine imports no framework. Framework adapters live in
``qrhead_integrations.langchain`` and ``qrhead_integrations.llama_index`` (optional extras).
"""

from .compress import CompressionResult, ContextCompressor, ScoredChunk
from .errors import (
    DataFormatError,
    EmptyQueryError,
    HeadSpecError,
    InvalidInputError,
    ModelLoadError,
    NotPicklableError,
    OptionTypeError,
    OutputPathError,
    OutputWriteError,
    PassageTypeError,
    PromptTooLongError,
    QRHeadError,
    TokenCounterError,
    UnencodableTextError,
    UnsupportedModelError,
)
from .fusion import Fusion
from .heads import HeadSet, HeadSpec
from .models import BUNDLED_MODELS, DEFAULT_MODEL, FAST_MODEL, load_model
from .plan import LongWorkWarning
from .prompt import Passage
from .reader import Reader, ReaderAnswer
from .scorer import EMPTY_PASSAGE_SCORE, QRHeadScorer, RankedPassage, ScorerConfig

__all__ = [
    "BUNDLED_MODELS",
    "DEFAULT_MODEL",
    "EMPTY_PASSAGE_SCORE",
    "FAST_MODEL",
    "CompressionResult",
    "ContextCompressor",
    "DataFormatError",
    "EmptyQueryError",
    "Fusion",
    "HeadSet",
    "HeadSpec",
    "HeadSpecError",
    "InvalidInputError",
    "LongWorkWarning",
    "ModelLoadError",
    "NotPicklableError",
    "OptionTypeError",
    "OutputPathError",
    "OutputWriteError",
    "Passage",
    "PassageTypeError",
    "PromptTooLongError",
    "QRHeadError",
    "QRHeadScorer",
    "RankedPassage",
    "Reader",
    "ReaderAnswer",
    "ScoredChunk",
    "ScorerConfig",
    "TokenCounterError",
    "UnencodableTextError",
    "UnsupportedModelError",
    "load_model",
]

__version__ = "0.1.0"
