"""The local model on llama.cpp (`pip install 'assay[llamacpp]'`: llama-cpp-python).

    backend = LlamaCppBackend("smollm2")            # the shipped GGUF, or any .gguf path
    response = await backend.complete(ChatRequest.prompt("Name a colour.", max_tokens=20))

The GGUF runs as it is (Q4_1, no dequantising) in llama.cpp's C++ kernels: on the 2-core machine of
docs/local_llm.md it decodes several times faster than the transformers backend and needs a fraction of
its memory (benchmarks/local_llm.py). A request with `json_schema` decodes under llama.cpp's grammar
for that schema (its JSON-Schema-to-GBNF converter: enums, string lengths, array sizes, $refs; number
bounds are not enforced there, so the client's validation and repair round still see those). The
prompt is the GGUF's own chat template, the same as the transformers backend's.

Sampling matches the transformers backend: temperature 0 is greedy, `top_p` (default 1: off), no
top-k and no min-p (llama.cpp's defaults, 40 and 0.05, would change every sampled answer). The loop
guard `repetition_penalty` maps to llama.cpp's repeat penalty (over the last 64 tokens, prompt
included); `no_repeat_ngram_size` has no llama.cpp counterpart and is not applied here. Requests
that share a prefix (the system turn, worked examples: every turn before the last) reuse its KV
state, and the rest of a prompt is always evaluated from that point: the same request gets the same
answer whichever came before (`LoadedLlama.reuse`).
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from assay.llm.local.backend import guards_of, string_cap
from assay.llm.local.runtime import gguf_for
from assay.llm.structured import messages_with_schema, portable_schema
from assay.llm.types import ChatRequest, ChatResponse, LLMError, Usage

DEFAULT_MAX_TOKENS = 512  # plain generation (as the transformers backend)
DEFAULT_GUIDED_MAX_TOKENS = 4096
PENALTY_WINDOW = 64  # tokens the repeat penalty looks back over (llama.cpp's default)
MIN_ROOM = 64  # context tokens a prompt must leave free
DEFAULT_STRING_TOKENS = 64  # as the transformers backend's guided decoder: a cap on each free string
CHARS_PER_TOKEN = 4


def available() -> bool:
    """True when llama-cpp-python is installed (found without importing it)."""
    return importlib.util.find_spec("llama_cpp") is not None


_loaded: dict[str, LoadedLlama] = {}
_load_lock = threading.Lock()


@dataclass
class LoadedLlama:
    """A llama.cpp model and what its requests share: the lock (one generation at a time), the chat
    template rendered with and without the assistant header (the prompt, and the prefix before the
    last turn), and the grammars of the schemas seen (compiling one takes milliseconds to seconds)."""

    llm: Any
    lock: threading.Lock
    prompt_format: Any  # llama_cpp.llama_chat_format.Jinja2ChatFormatter (add_generation_prompt=True)
    head_format: Any  # the same without the assistant header
    grammars: dict[str, Any] = field(default_factory=dict)

    def prompt_ids(self, messages: list[dict]) -> tuple[list[int], int]:
        """Token ids of the chat prompt and the length of its shared prefix: every turn before the
        last when the prompt starts with a system turn (as the transformers backend's prompt_ids)."""
        try:
            ids = self._tokens(self.prompt_format(messages=messages).prompt)
            split = 0
            if messages[0]["role"] == "system" and len(messages) > 1:
                head = self._tokens(self.head_format(messages=messages[:-1]).prompt)
                split = len(head) if ids[: len(head)] == head else 0
        except (KeyError, TypeError, ValueError) as exc:  # (jinja2's errors are ValueErrors or TypeErrors)
            raise LLMError(f"cannot build the chat prompt: {' '.join(str(exc).split())[:200]}") from None
        return ids, split

    def _tokens(self, text: str) -> list[int]:
        return self.llm.tokenize(text.encode("utf-8"), add_bos=False, special=True)

    def grammar(self, schema: dict):
        """llama.cpp's grammar for `schema` (LLMError when its converter cannot express it)."""
        from llama_cpp.llama_grammar import LlamaGrammar, json_schema_to_gbnf

        key = json.dumps(schema, sort_keys=True)
        if key not in self.grammars:
            try:  # (the schema's own key order: the converter sorts keys by name unless told)
                gbnf = json_schema_to_gbnf(key, prop_order=property_order(schema))
                self.grammars[key] = LlamaGrammar.from_string(gbnf, verbose=False)
            except Exception as exc:  # its converter raises whatever it meets (asserts, KeyErrors)
                raise LLMError(
                    f"llama.cpp cannot turn this JSON Schema into a grammar ({type(exc).__name__}: {exc}); "
                    "set llm.local_backend=transformers or llm.structured=prompt"
                ) from None
        return self.grammars[key]

    def reuse(self, ids: list[int], split: int) -> None:
        """Keep the KV state of `ids[:split]` and nothing after it, evaluating that prefix now if it
        is not there. The rest of the prompt is then evaluated from `split` on, whatever the earlier
        requests were, so the same request gets the same answer (llama.cpp's own reuse of the longest
        common prefix evaluates tokens in other batches, whose rounding changes sampled answers)."""
        llm = self.llm
        cached = llm.n_tokens
        common = 0
        for a, b in zip(llm.input_ids[:cached], ids[:split], strict=False):
            if a != b:
                break
            common += 1
        if split and common == split:
            llm.n_tokens = split  # generate() drops the KV entries after it
            return
        llm.reset()
        if split:
            llm.eval(ids[:split])


def load_llama(path: Path, threads: int | None = None) -> LoadedLlama:
    """The llama.cpp model of `path`, loaded once per process."""
    key = str(path)
    with _load_lock:
        if key not in _loaded:
            try:
                from llama_cpp import Llama
                from llama_cpp.llama_chat_format import Jinja2ChatFormatter
            except ImportError as exc:
                raise LLMError(
                    f"the llama.cpp backend needs llama-cpp-python: pip install 'assay[llamacpp]' ({exc})"
                ) from None
            try:
                llm = Llama(
                    model_path=key,
                    n_ctx=0,  # the model's own context
                    n_threads=threads,
                    n_threads_batch=threads,
                    last_n_tokens_size=PENALTY_WINDOW,
                    verbose=False,
                )
            except (ValueError, RuntimeError, OSError) as exc:
                raise LLMError(f"llama.cpp cannot load {path}: {' '.join(str(exc).split())[:200]}") from None
            template = llm.metadata.get("tokenizer.chat_template")
            if not template:
                raise LLMError(f"{path} has no chat template (tokenizer.chat_template) for llama.cpp to use")
            eos, bos = llm.token_eos(), llm.token_bos()
            tokens = {
                "eos_token": llm._model.token_get_text(eos) if eos != -1 else "",
                "bos_token": llm._model.token_get_text(bos) if bos != -1 else "",
            }
            _loaded[key] = LoadedLlama(
                llm,
                threading.Lock(),
                Jinja2ChatFormatter(template=template, add_generation_prompt=True, **tokens),
                Jinja2ChatFormatter(template=template, add_generation_prompt=False, **tokens),
            )
        return _loaded[key]


class LlamaCppBackend:
    """Backend protocol of `assay.llm.backends`: `name`, `complete`, `aclose`. One generation at a
    time per model (the lock); the model loads on the first request, in the worker thread."""

    name = "llamacpp"

    def __init__(self, model: str, threads: int | None = None):
        path = gguf_for(model)
        if path is None:
            raise LLMError(
                f"the llama.cpp backend loads a GGUF file ('smollm2' or a path to a .gguf), not {model!r}; "
                "set llm.local_backend=transformers for a Hugging Face directory"
            )
        self.path = path
        self.model = model
        self.threads = threads
        self.last_stats: dict[str, float] = {}

    async def complete(self, request: ChatRequest) -> ChatResponse:
        return await asyncio.to_thread(self.complete_sync, request)

    async def aclose(self) -> None:
        """Nothing to release: the loaded model stays for the process."""

    def complete_sync(self, request: ChatRequest) -> ChatResponse:
        if not request.messages:
            raise LLMError("a chat request needs at least one message")
        loaded = load_llama(self.path, self.threads)
        guided = request.json_schema is not None and request.structured != "prompt"
        messages = request.messages
        if request.json_schema is not None and not guided:
            messages = messages_with_schema(messages, request.json_schema)
        messages = [{"role": m["role"], "content": m["content"]} for m in messages]
        grammar = None
        if guided:
            tokens = string_cap(request.extra.get("max_string_tokens", DEFAULT_STRING_TOKENS))
            cap = CHARS_PER_TOKEN * tokens if tokens else None
            grammar = loaded.grammar(cap_strings(portable_schema(request.json_schema), cap))
        default_max = DEFAULT_GUIDED_MAX_TOKENS if guided else DEFAULT_MAX_TOKENS
        kwargs = {
            "temperature": float(request.temperature),
            "top_p": 1.0 if request.top_p is None else float(request.top_p),
            "top_k": 0,
            "min_p": 0.0,
            "repeat_penalty": guards_of(request.extra)["repetition_penalty"],
            "seed": int(request.seed) if request.seed is not None else None,
            "grammar": grammar,
        }
        started = time.perf_counter()
        with loaded.lock:
            waited = time.perf_counter() - started
            ids, split = loaded.prompt_ids(messages)
            room = loaded.llm.n_ctx() - len(ids)
            if room < MIN_ROOM:
                raise LLMError(f"the prompt has {len(ids)} tokens: too long for the model's {loaded.llm.n_ctx()}")
            limit = min(request.max_tokens if request.max_tokens is not None else default_max, room)
            t0 = time.perf_counter()
            loaded.reuse(ids, split)
            prefill_s = time.perf_counter() - t0
            try:
                out = loaded.llm.create_completion(prompt=ids, max_tokens=limit, **kwargs)
            except (ValueError, RuntimeError) as exc:
                raise LLMError(f"llama.cpp: {' '.join(str(exc).split())[:300]}") from None
            decode_s = time.perf_counter() - t0
        choice = out["choices"][0]
        usage = out.get("usage") or {}
        completion = int(usage.get("completion_tokens") or 0)
        self.last_stats = {
            "wait_s": waited,
            "prefix_s": prefill_s,
            "prefix_tokens": float(split),
            "prompt_tokens": float(len(ids)),
            "completion_tokens": float(completion),
            "decode_s": decode_s,
            "tokens_per_s": completion / decode_s if decode_s > 0 else 0.0,
            "guided": float(guided),
        }
        return ChatResponse(
            text=choice.get("text") or "",
            model=request.model or f"local/{self.model}",
            usage=Usage(len(ids), completion),
            latency_s=time.perf_counter() - started,
            finish_reason=choice.get("finish_reason"),
        )


def property_order(schema: Any) -> list[str]:
    """Every property name of `schema` (its $defs too) in the order it first appears."""
    names: dict[str, None] = {}

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for name in node.get("properties", {}) if isinstance(node.get("properties"), dict) else ():
                names.setdefault(name, None)
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(schema)
    return list(names)


def cap_strings(schema: Any, chars: int | None) -> Any:
    """A copy of `schema` where every free string (no maxLength, enum, const, pattern or format) gets
    maxLength `chars`: the counterpart of the transformers backend's cap on each free string's sampled
    tokens (`max_string_tokens`), which keeps a looping string from eating the whole answer."""
    if chars is None:
        return schema
    if isinstance(schema, list):
        return [cap_strings(v, chars) for v in schema]
    if not isinstance(schema, dict):
        return schema
    out = {
        k: cap_strings(v, chars) if k not in ("enum", "const", "default", "examples") else v for k, v in schema.items()
    }
    free = not any(k in schema for k in ("maxLength", "enum", "const", "pattern", "format"))
    if schema.get("type") == "string" and free:
        out["maxLength"] = max(chars, int(schema.get("minLength", 0)))
    return out
