"""The local LLM backend: a request in, a response out.

    backend = LocalBackend("smollm2")
    response = await backend.complete(ChatRequest.prompt("Name a colour.", max_tokens=20))

Plain requests are sampled token by token with the KV cache (temperature 0 = greedy; `top_p`;
`seed` fixes the text). Requests with `json_schema` go through the schema-guided decoder
(`guided`, on llguidance), whose answer is always JSON valid against the schema. Prompts that
start with the same system turn reuse its KV state (`session.PrefixCache`), so a long shared
system prompt is prefilled once. See docs/local_llm.md.

request.extra understood here: "max_string_tokens" (guided decoding: the sampled-token cap of
each free string, default 64; 0 or None = no cap).
"""

from __future__ import annotations

import asyncio
import os
import time

import torch

from assay.llm.local.guided import GuidedOptions, compile_schema, generate_json
from assay.llm.local.runtime import LocalModel, load_model, resolve
from assay.llm.local.session import KVSession
from assay.llm.structured import messages_with_schema
from assay.llm.types import ChatRequest, ChatResponse, LLMError, Usage
from assay.sampling import penalize, pick

DEFAULT_MAX_TOKENS = 512  # plain generation
DEFAULT_GUIDED_MAX_TOKENS = 4096  # a guided object: structure and keys count too
DEFAULT_STRING_TOKENS = 64
# torch threads for generation (default: torch's own, one per core). On a busy machine 1 is far
# faster: two OpenMP threads competing with other processes for 2 cores stall at every barrier
# (measured: 1 tok/s with 2 threads vs 20 tok/s with 1 while another process used the CPU).
THREADS_ENV = "ASSAY_LOCAL_THREADS"
MIN_ROOM = 64  # context tokens a prompt must leave free


class LocalBackend:
    """Backend protocol of `assay.llm.backends`: `name`, `complete`, `aclose`.

    model: "smollm2" (the shipped GGUF) or a Hugging Face model directory. The model loads on the
    first request (in the worker thread) and is shared by every backend in the process; one
    generation runs at a time. threads: torch threads while generating (default $ASSAY_LOCAL_THREADS,
    else torch's default); torch has one pool per process, so this sets it process-wide.
    """

    name = "local"

    def __init__(self, model: str, threads: int | None = None):
        resolve(model)  # fail now, with a one-line LLMError, on a bad name or path
        self.model = model
        self.threads = threads if threads is not None else env_threads()
        self.last_stats: dict[str, float] = {}

    async def complete(self, request: ChatRequest) -> ChatResponse:
        return await asyncio.to_thread(self.complete_sync, request)

    async def aclose(self) -> None:
        """Nothing to release: the loaded model stays cached for the process."""

    def load(self) -> LocalModel:
        return load_model(self.model)

    def complete_sync(self, request: ChatRequest) -> ChatResponse:
        """The blocking call `complete` runs in a worker thread."""
        if not request.messages:
            raise LLMError("a chat request needs at least one message")
        grammar = None
        if request.json_schema is not None and request.structured == "prompt":  # the schema in the prompt only
            request = request.replace(messages=messages_with_schema(request.messages, request.json_schema))
        elif request.json_schema is not None:
            grammar = compile_schema(request.json_schema)
        string_tokens = string_cap(request.extra.get("max_string_tokens", DEFAULT_STRING_TOKENS))
        guards = guards_of(request.extra)
        lm = self.load()
        started = time.perf_counter()
        with lm.lock:
            waited = time.perf_counter() - started
            if self.threads and torch.get_num_threads() != self.threads:
                torch.set_num_threads(self.threads)  # process-wide: torch has one intra-op pool
            ids, prefix_len = prompt_ids(lm.tokenizer, request.messages)
            room = context_size(lm) - len(ids)
            if room < MIN_ROOM:
                raise LLMError(f"the prompt has {len(ids)} tokens: too long for the model's {context_size(lm)}")
            generator = torch.Generator()
            if request.seed is not None:
                generator.manual_seed(request.seed)
            else:
                generator.seed()
            t0 = time.perf_counter()
            session = KVSession(lm.model, ids, prefix_len, lm.prefixes, len(request.messages) - 1)
            prefill_s = time.perf_counter() - t0
            t1 = time.perf_counter()
            guided: dict[str, float] = {}
            if grammar is not None:
                options = GuidedOptions(
                    temperature=request.temperature,
                    top_p=request.top_p,
                    generator=generator,
                    # (a forced run may cross the budget by a few tokens: keep that inside the context)
                    max_tokens=min(request.max_tokens or DEFAULT_GUIDED_MAX_TOKENS, room - MIN_ROOM // 2),
                    max_string_tokens=string_tokens,
                    **guards,
                )
                result = generate_json(grammar, session, lm.token_table(), options)
                text, finish, completion = result.text, result.finish_reason, len(result.tokens)
                guided = {
                    "sampled_tokens": float(result.sampled),
                    "forced_tokens": float(result.forced),
                    "closing_tokens": float(result.closing),
                    "grammar_s": result.grammar_s,
                }
            else:
                text, finish, completion = _sample(lm, session, request, generator, room, **guards)
            decode_s = time.perf_counter() - t1
        self.last_stats = {
            "wait_s": waited,
            "prefill_s": prefill_s,
            "prefix_hit": float(session.prefix_hit),
            "prompt_tokens": float(len(ids)),
            "completion_tokens": float(completion),
            "decode_s": decode_s,
            "forward_s": session.forward_s,
            "passes": float(session.passes),
            "tokens_per_s": completion / decode_s if decode_s > 0 else 0.0,
            "guided": float(grammar is not None),
            **guided,
        }
        return ChatResponse(
            text=text,
            model=request.model or f"local/{self.model}",
            usage=Usage(len(ids), completion),
            cost_usd=0.0,
            latency_s=time.perf_counter() - started,
            finish_reason=finish,
        )


def env_threads() -> int | None:
    """The thread count $ASSAY_LOCAL_THREADS asks for (None: the runtime's default)."""
    value = os.environ.get(THREADS_ENV, "").strip()
    if not value:
        return None
    if not value.isdigit() or int(value) < 1:
        raise LLMError(f"{THREADS_ENV} must be a positive integer, not {value!r}")
    return int(value)


def string_cap(value) -> int | None:
    """The request's `max_string_tokens` (None or <= 0: no cap), or a one-line LLMError."""
    if value is None:
        return None
    try:
        cap = int(value)
    except (TypeError, ValueError):
        raise LLMError(f"extra max_string_tokens must be an integer, not {value!r}") from None
    return cap if cap > 0 else None


def context_size(lm: LocalModel) -> int:
    """The model's context in tokens (positions it was trained on)."""
    return int(getattr(lm.model.config, "max_position_embeddings", None) or 2048)


def prompt_ids(tokenizer, messages: list[dict]) -> tuple[list[int], int]:
    """Token ids of the chat prompt (ending with the assistant turn's header) and the length of its
    prefix: every turn before the last when the prompt starts with a system turn and those turns
    tokenise as a clean prefix of it (else 0). That part (a system turn, worked examples) is what
    requests share; its KV state is kept (`session.PrefixCache`)."""
    from jinja2 import TemplateError

    try:
        msgs = [{"role": m["role"], "content": m["content"]} for m in messages]
        text = tokenizer.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
    except (KeyError, TypeError, ValueError, TemplateError) as exc:
        raise LLMError(f"cannot build the chat prompt: {' '.join(str(exc).split())[:200]}") from None
    ids = tokenizer.encode(text, add_special_tokens=False)
    prefix_len = 0
    if msgs[0]["role"] == "system" and len(msgs) > 1:
        head = tokenizer.apply_chat_template(msgs[:-1], tokenize=False, add_generation_prompt=False)
        if text.startswith(head):
            head_ids = tokenizer.encode(head, add_special_tokens=False)
            if ids[: len(head_ids)] == head_ids:
                prefix_len = len(head_ids)
    return ids, prefix_len


def guards_of(extra: dict) -> dict[str, float | int]:
    """The loop guards a request asks for (`extra`: repetition_penalty, no_repeat_ngram_size)."""
    try:
        penalty = float(extra.get("repetition_penalty", 1.0))
        n = int(extra.get("no_repeat_ngram_size", 0))
    except (TypeError, ValueError):
        raise LLMError("repetition_penalty must be a number >= 1 and no_repeat_ngram_size an integer >= 0") from None
    if penalty < 1.0 or n < 0:
        raise LLMError(f"repetition_penalty must be >= 1 and no_repeat_ngram_size >= 0, got {penalty}, {n}")
    return {"repetition_penalty": penalty, "no_repeat_ngram": n}


def _sample(
    lm: LocalModel,
    session: KVSession,
    request: ChatRequest,
    generator,
    room: int,
    repetition_penalty: float = 1.0,
    no_repeat_ngram: int = 0,
) -> tuple[str, str, int]:
    """Plain sampling until EOS or max_tokens (at most `room`): (text, finish_reason, completion
    tokens), with the loop guards (`assay.sampling.penalize`) on the answer's own tokens."""
    limit = min(request.max_tokens if request.max_tokens is not None else DEFAULT_MAX_TOKENS, room)
    out: list[int] = []
    finish = "length"
    while len(out) < limit:
        scores = penalize(session.next_logits(), out, repetition_penalty, no_repeat_ngram)
        token = pick(scores, request.temperature, request.top_p, generator)
        if token in lm.eos_ids:
            finish = "stop"
            break
        out.append(token)
        session.push([token])  # (queued: it runs with the next next_logits call)
    text = lm.tokenizer.decode(out, skip_special_tokens=True)
    return text, finish, len(out) + (finish == "stop")
