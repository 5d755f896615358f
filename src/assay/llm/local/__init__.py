"""The local LLM: SmolLM2-135M-Instruct (or an HF model directory) in-process on the CPU, offline.

    backend.py  LocalBackend: a ChatRequest in, a ChatResponse out (plain sampling or guided JSON)
    runtime.py  loading the model and tokenizer (the shipped GGUF, its dequantised cache, an HF directory)
    session.py  one generation's KV cache: buffered layers, prompt-prefix reuse, decoding steps
    guided.py   schema-guided JSON on llguidance: compile a schema, mask each step, forced tokens

See docs/local_llm.md.
"""

import os

# huggingface_hub reads these when first imported: the local model never touches the network
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from assay.llm.local.backend import THREADS_ENV, LocalBackend, context_size, prompt_ids  # noqa: E402
from assay.llm.local.guided import SchemaError, compile_schema  # noqa: E402
from assay.llm.local.runtime import (  # noqa: E402
    LocalModel,
    dequantised_dir,
    gguf_path,
    hf_directory,
    load_hf_directory,
    load_model,
    load_tokenizer,
    quiet_transformers,
    resolve,
)

__all__ = [
    "THREADS_ENV",
    "LocalBackend",
    "LocalModel",
    "SchemaError",
    "compile_schema",
    "context_size",
    "dequantised_dir",
    "gguf_path",
    "hf_directory",
    "load_hf_directory",
    "load_model",
    "load_tokenizer",
    "prompt_ids",
    "quiet_transformers",
    "resolve",
]
