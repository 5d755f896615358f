"""The local LLM: SmolLM2-135M-Instruct (or an HF model directory) in-process on the CPU, offline.

    backend.py  LocalBackend: a ChatRequest in, a ChatResponse out (plain sampling or guided JSON)
    llamacpp.py LlamaCppBackend: the same on llama.cpp (the `llamacpp` extra), for GGUF files
    runtime.py  loading the model and tokenizer (the shipped GGUF, its dequantised cache, an HF directory)
    session.py  one generation's KV cache: buffered layers, prompt-prefix reuse, decoding steps
    guided.py   schema-guided JSON on llguidance: compile a schema, mask each step, forced tokens

See docs/local_llm.md.
"""

import os

from assay.llm.types import LLMError

# huggingface_hub reads these when first imported: the local model never touches the network
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from assay.llm.local.backend import THREADS_ENV, LocalBackend, context_size, env_threads, prompt_ids  # noqa: E402
from assay.llm.local.guided import SchemaError, compile_schema  # noqa: E402
from assay.llm.local.llamacpp import LlamaCppBackend  # noqa: E402
from assay.llm.local.llamacpp import available as llamacpp_available  # noqa: E402
from assay.llm.local.runtime import (  # noqa: E402
    LocalModel,
    dequantised_dir,
    gguf_for,
    gguf_path,
    hf_directory,
    load_hf_directory,
    load_model,
    load_tokenizer,
    quiet_transformers,
    resolve,
)

RUNTIME_ENV = "ASSAY_LOCAL_BACKEND"  # llamacpp | transformers | auto: overrides `local_backend = auto`
RUNTIME_KEY = "_runtime"  # request.extra key (cache-only) naming the runtime of a llama.cpp request


def runtime_for(spec: str, choice: str = "auto", guided: bool = False) -> str:
    """ "llamacpp" or "transformers": the runtime for a request to local model `spec` under
    LLMSettings.local_backend. auto: $ASSAY_LOCAL_BACKEND if set, else by measurement
    (benchmarks/local_llm.py, docs/local_llm.md): llama.cpp for plain text (2x the tokens/s, half the
    memory) when llama-cpp-python is installed and `spec` is a GGUF, transformers for schema-guided
    requests (llguidance: 8/8 music payloads valid and 2.45x faster per payload than llama.cpp's
    grammar, 7/8) and for every HF directory."""
    from assay.errors import ConfigError

    if choice == "auto":
        env = os.environ.get(RUNTIME_ENV, "").strip().lower()
        if env and env not in ("llamacpp", "transformers", "auto"):
            raise ConfigError(f"{RUNTIME_ENV} must be llamacpp, transformers or auto, not {env!r}")
        choice = env or "auto"
    if choice == "auto":
        fits = not guided and llamacpp_available() and gguf_for(spec) is not None
        return "llamacpp" if fits else "transformers"
    if choice == "llamacpp" and not llamacpp_available():
        raise LLMError("llm.local_backend=llamacpp needs llama-cpp-python: pip install 'assay[llamacpp]'")
    return choice


class LocalRuntimes:
    """The backend of `local/<spec>`: each request goes to the runtime its `extra["_runtime"]` names
    ("llamacpp"; absent: transformers), which the client sets from `runtime_for` (so the response
    cache keys on it). Each runtime is made, and its model loaded, on its first request."""

    name = "local"

    def __init__(self, spec: str, threads: int | None = None):
        resolve(spec)  # fail now, with a one-line LLMError, on a bad name or path
        self.spec, self.threads = spec, threads
        self._backends: dict[str, object] = {}

    def backend(self, runtime: str):
        if runtime not in self._backends:
            make = LlamaCppBackend if runtime == "llamacpp" else LocalBackend
            self._backends[runtime] = make(self.spec, self.threads)
        return self._backends[runtime]

    @property
    def last_stats(self) -> dict[str, float]:
        """The figures of the last request of the runtime used last."""
        return self._last.last_stats if self._backends else {}

    async def complete(self, request):
        self._last = self.backend(request.extra.get(RUNTIME_KEY, "transformers"))
        return await self._last.complete(request)

    async def aclose(self) -> None:
        """Nothing to release: loaded models stay for the process."""


def local_backend(spec: str) -> LocalRuntimes:
    """The backend that serves `local/<spec>` (see LocalRuntimes, runtime_for)."""
    return LocalRuntimes(spec, env_threads())


__all__ = [
    "RUNTIME_ENV",
    "THREADS_ENV",
    "RUNTIME_KEY",
    "LlamaCppBackend",
    "LocalBackend",
    "LocalRuntimes",
    "LocalModel",
    "SchemaError",
    "compile_schema",
    "context_size",
    "dequantised_dir",
    "env_threads",
    "gguf_for",
    "gguf_path",
    "hf_directory",
    "load_hf_directory",
    "load_model",
    "llamacpp_available",
    "load_tokenizer",
    "local_backend",
    "prompt_ids",
    "quiet_transformers",
    "resolve",
    "runtime_for",
]
