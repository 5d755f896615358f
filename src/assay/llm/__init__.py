"""assay.llm: one LLM client for all of assay (docs/llm.md).

    from assay.llm import ChatRequest, LLMClient, LLMSettings

    client = LLMClient(LLMSettings(model="openai/gpt-4o-mini", cache=Path("llm.sqlite")))
    answer = client.complete_sync(ChatRequest.prompt("Say hi."))

Backends (openai SDK, anthropic SDK, LiteLLM, the local model) are imported when first used.
"""

from assay.llm.cache import ResponseCache, cache_key
from assay.llm.client import LLMClient
from assay.llm.settings import LLMSettings, Prices, backend_kind, read_env_file, resolve_api_key
from assay.llm.structured import StructuredResult, extract_json, parse_structured
from assay.llm.types import ChatRequest, ChatResponse, LLMError, RetryableLLMError, Usage
from assay.llm.usage import UsageTracker

__all__ = [
    "ChatRequest",
    "ChatResponse",
    "LLMClient",
    "LLMError",
    "LLMSettings",
    "Prices",
    "ResponseCache",
    "RetryableLLMError",
    "StructuredResult",
    "Usage",
    "UsageTracker",
    "backend_kind",
    "cache_key",
    "extract_json",
    "parse_structured",
    "read_env_file",
    "resolve_api_key",
]
