"""One generation's KV-cached state on a local causal LM: prefill (with prompt-prefix reuse), decoding
steps, and scoring many candidate continuations in one forward pass.

A `KVSession` implements the `TokenModel` interface of `local_guided`. Its KV cache is a
transformers `DynamicCache` whose layers write into preallocated buffers (`BufferLayer`, per layer
keys/values [1, kv_heads, capacity, head_dim], capacity doubling when full) instead of
concatenating a new copy of the whole cache at every step, which at a 2k-token prompt costs as much
as the attention itself. Prompt prefixes (system turns) are kept in a small LRU (`PrefixCache`) and
copied into each new session's buffers, so their prefill is paid once per process.

Scoring options (`score`) packs their tokens as a trie after the context and runs it in one forward
pass with a tree attention mask: each trie node attends to the context and to its own ancestors,
and sits at the position it would have in a plain left-to-right run. Shared prefixes (the pending
forced text, common first tokens) are computed once, and leaves not at all (a token's log-prob comes
from its parent's logits); `commit` moves the chosen path's keys/values down onto the context and
queues its leaf, so the chosen option costs no extra pass. Queued tokens and forced text run with
the next pass, whatever it is.

The model runs with `ATTENTION` ("assay_sdpa"): torch's SDPA with grouped-query attention done by
the kernel (`enable_gqa`), where transformers' own "sdpa" copies the key/value heads whenever a
mask is given (every multi-token and tree pass here).
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

# huggingface_hub reads these when first imported: the local model never touches the network
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from transformers import AttentionInterface, DynamicCache  # noqa: E402
from transformers.cache_utils import DynamicLayer  # noqa: E402
from transformers.masking_utils import AttentionMaskInterface, sdpa_mask  # noqa: E402

from assay.llm.local_guided import Vocab  # noqa: E402

ATTENTION = "assay_sdpa"
PREFIX_SLOTS = 4  # prompt prefixes (system turns) whose KV state is kept per loaded model
HEADROOM = 512  # extra buffer positions allocated past the prompt (grows by doubling)


def _sdpa_gqa(module, query, key, value, attention_mask, dropout=0.0, scaling=None, is_causal=None, **kwargs):
    """transformers attention interface: query [b, heads, q, d], key/value [b, kv_heads, k, d] ->
    ([b, q, heads, d], None). Same semantics as transformers' "sdpa", without repeating kv heads."""
    is_causal = is_causal if is_causal is not None else getattr(module, "is_causal", True)
    is_causal = query.shape[2] > 1 and attention_mask is None and is_causal
    out = F.scaled_dot_product_attention(
        query,
        key,
        value,
        attn_mask=attention_mask,
        dropout_p=0.0,
        scale=scaling,
        is_causal=is_causal,
        enable_gqa=key.shape[1] != query.shape[1],
    )
    return out.transpose(1, 2).contiguous(), None


def prepare_model(model) -> None:
    """Switch `model` to the GQA-aware attention; ValueError if its cache layout is not supported
    (sliding-window or linear-attention layers)."""
    AttentionInterface.register(ATTENTION, _sdpa_gqa)
    AttentionMaskInterface.register(ATTENTION, sdpa_mask)
    layers = DynamicCache(config=model.config).layers
    if not layers or any(type(layer) is not DynamicLayer for layer in layers):
        raise ValueError(
            f"{type(model).__name__} uses a KV cache layout (sliding window or linear attention) not supported here"
        )
    model.set_attn_implementation(ATTENTION)


class BufferLayer(DynamicLayer):
    """A DynamicLayer that appends by writing into a preallocated buffer (no full-cache copy per
    step). `keys`/`values` are views of the first `length` positions of the buffers."""

    _layer_type = None  # never registered as transformers' default layer class

    def __init__(self, capacity: int = HEADROOM):
        super().__init__()
        self.capacity = capacity
        self._k = self._v = None

    def lazy_initialization(self, key_states: torch.Tensor, value_states: torch.Tensor) -> None:
        self.dtype, self.device = key_states.dtype, key_states.device
        b, h, _, d = key_states.shape
        self._k = key_states.new_empty((b, h, self.capacity, d))
        self._v = value_states.new_empty((b, h, self.capacity, value_states.shape[-1]))
        self.keys, self.values = self._k[:, :, :0], self._v[:, :, :0]
        self.is_initialized = True

    def _grow(self, need: int) -> None:
        cap = max(need, 2 * self._k.shape[2])
        n = self.keys.shape[2]
        k, v = (
            self._k.new_empty((*self._k.shape[:2], cap, self._k.shape[3])),
            self._v.new_empty((*self._v.shape[:2], cap, self._v.shape[3])),
        )
        k[:, :, :n], v[:, :, :n] = self._k[:, :, :n], self._v[:, :, :n]
        self._k, self._v = k, v

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs):
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        n, m = self.keys.shape[2], key_states.shape[2]
        if n + m > self._k.shape[2]:
            self._grow(n + m)
        self._k[:, :, n : n + m] = key_states
        self._v[:, :, n : n + m] = value_states
        self.set_length(n + m)
        return self.keys, self.values

    def set_length(self, length: int) -> None:
        self.keys, self.values = self._k[:, :, :length], self._v[:, :, :length]

    def crop(self, tokens_to_remove: int) -> None:
        if tokens_to_remove < 0 and self.is_initialized:
            self.set_length(max(0, self.keys.shape[2] + tokens_to_remove))

    def keep(self, start: int, rows: torch.Tensor) -> None:
        """Move buffer rows `rows` (absolute positions) to `start, start+1, ...`; cut the cache there."""
        self._k[:, :, start : start + len(rows)] = self._k[:, :, rows]  # (the right side is a copy)
        self._v[:, :, start : start + len(rows)] = self._v[:, :, rows]
        self.set_length(start + len(rows))

    def load(self, keys: torch.Tensor, values: torch.Tensor, headroom: int) -> None:
        """Start from a copy of `keys`/`values` [1, kv_heads, n, d]."""
        self.capacity = keys.shape[2] + headroom
        self.lazy_initialization(keys, values)
        self._k[:, :, : keys.shape[2]] = keys
        self._v[:, :, : keys.shape[2]] = values
        self.set_length(keys.shape[2])


def _new_cache(config, capacity: int) -> DynamicCache:
    cache = DynamicCache(config=config)
    cache.layers = [BufferLayer(capacity) for _ in cache.layers]
    return cache


class PrefixCache:
    """LRU of prompt-prefix KV states (per layer (keys, values) copies) keyed by their token ids."""

    def __init__(self, slots: int = PREFIX_SLOTS):
        self.slots = slots
        self._entries: OrderedDict[tuple[int, ...], list[tuple[torch.Tensor, torch.Tensor]]] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = self.misses = 0

    def get(self, ids: Sequence[int]) -> list[tuple[torch.Tensor, torch.Tensor]] | None:
        with self._lock:
            kv = self._entries.get(tuple(ids))
            if kv is None:
                self.misses += 1
                return None
            self._entries.move_to_end(tuple(ids))
            self.hits += 1
            return kv

    def put(self, ids: Sequence[int], kv: list[tuple[torch.Tensor, torch.Tensor]]) -> None:
        with self._lock:
            self._entries[tuple(ids)] = kv
            self._entries.move_to_end(tuple(ids))
            while len(self._entries) > self.slots:
                self._entries.popitem(last=False)


@dataclass
class _Scored:
    """The trie pass of the last `score` call, kept until `commit` or the next call."""

    paths: list[list[int]]  # per option: trie node indices from the root to its last token
    tokens: list[int]  # token id per trie node
    slot: dict[int, int]  # trie node -> its row in the pass (nodes with children only)
    hidden: torch.Tensor | None  # [rows, hidden] final hidden states of those rows


class KVSession:
    """A causal LM positioned after a prompt; see the module docstring.

    `model` is a transformers causal LM prepared with `prepare_model` (its `base_model` returns
    hidden states, its output embeddings map them to logits), `tokenizer` a fast tokenizer. The
    prompt is prefilled in two chunks, `prompt_ids[:prefix_len]` (looked up in / stored to
    `prefixes`) and the rest, so a cached and an uncached run do the same arithmetic and give the
    same tokens.
    """

    def __init__(
        self,
        model,
        tokenizer,
        vocab: Vocab,
        prompt_ids: Sequence[int],
        prefix_len: int = 0,
        prefixes: PrefixCache | None = None,
    ):
        if not prompt_ids:
            raise ValueError("empty prompt")
        self.model, self.tokenizer, self.vocab = model, tokenizer, vocab
        self.base = model.base_model
        self.head = model.get_output_embeddings()
        self.prompt_tokens = len(prompt_ids)
        self.committed = 0
        self.prefix_hit = False
        # not yet run: token ids, then text (tokenised with whatever follows it)
        self._pending_ids: list[int] = []
        self._pending = ""
        self._scored: _Scored | None = None
        self._logits: torch.Tensor | None = None
        self.passes = self.tree_passes = 0  # forward passes after the prompt (for profiling)
        prefix_len = prefix_len if 0 < prefix_len < len(prompt_ids) else 0
        prefix = list(prompt_ids[:prefix_len])
        self.cache = _new_cache(model.config, len(prompt_ids) + HEADROOM)
        cached = prefixes.get(prefix) if prefixes is not None and prefix else None
        if cached is not None:
            for layer, (k, v) in zip(self.cache.layers, cached, strict=True):
                layer.load(k, v, len(prompt_ids) - prefix_len + HEADROOM)
            self.prefix_hit = True
        elif prefix:
            self._run(prefix)
            if prefixes is not None:
                prefixes.put(prefix, [(layer.keys.clone(), layer.values.clone()) for layer in self.cache.layers])
        self._hidden = self._run(list(prompt_ids[prefix_len:]))

    # -- forward passes --

    @property
    def length(self) -> int:
        """Tokens in the KV cache."""
        return self.cache.get_seq_length()

    @property
    def consumed(self) -> int:
        """Completion tokens so far: committed ones plus the pending ones (so a budget sees them)."""
        return self.committed + len(self._pending_ids) + (len(self.encode(self._pending)) if self._pending else 0)

    @torch.inference_mode()
    def _run(self, ids: list[int]) -> torch.Tensor:
        """Append `ids` to the cache; return the [hidden] final state after the last one."""
        start = self.length
        out = self.base(
            input_ids=torch.tensor([ids]),
            position_ids=torch.arange(start, start + len(ids)).unsqueeze(0),
            past_key_values=self.cache,
            use_cache=True,
        )
        self._logits = None
        return out.last_hidden_state[0, -1]

    def _settle(self) -> None:
        """Drop the trie of an uncommitted `score` call from the cache."""
        if self._scored is not None:
            self.cache.crop(-len(self._scored.slot))
            self._scored = None

    def _take_pending(self) -> list[int]:
        """The pending ids, then the pending text's; clears both."""
        ids = self._pending_ids + (self.encode(self._pending) if self._pending else [])
        self._pending_ids, self._pending = [], ""
        return ids

    def _flush(self) -> None:
        self._settle()
        if self._pending or self._pending_ids:
            ids = self._take_pending()
            self.committed += len(ids)
            self.passes += 1
            self._hidden = self._run(ids)

    def encode(self, text: str) -> list[int]:
        return self.tokenizer.encode(text, add_special_tokens=False)

    @torch.inference_mode()
    def _full_logits(self) -> torch.Tensor:
        if self._logits is None:
            self._logits = self.head(self._hidden).float()
        return self._logits

    # -- TokenModel --

    def push_text(self, text: str) -> None:
        self._settle()
        self._pending += text

    def push_token(self, token: int) -> None:
        """Queue `token`: it runs with the next pass, together with whatever comes after it."""
        self._settle()
        self._pending_ids = self._take_pending() + [token]

    @torch.inference_mode()
    def next_logits(self, among: torch.Tensor | None = None) -> torch.Tensor:
        """[V] next-token logits; with `among` (token ids) only those are computed, the rest are -inf."""
        self._flush()
        if among is None or self._logits is not None:
            logits = self._full_logits()
            if among is None:
                return logits
            return torch.full_like(logits, -torch.inf).index_copy_(0, among, logits[among])
        rows = self.head.weight[among] @ self._hidden
        return torch.full((self.vocab.size,), -torch.inf).index_copy_(0, among, rows.float())

    @torch.inference_mode()
    def score(self, texts: Sequence[str]) -> torch.Tensor:
        """[n] log-probs of pending + texts[i], all options in one tree-masked forward pass."""
        self._settle()
        seqs = [self._pending_ids + self.encode(self._pending + t) for t in texts]
        tokens: list[int] = []  # the trie: node i holds tokens[i], below node parents[i] (-1: root)
        parents: list[int] = []
        child: dict[tuple[int, int], int] = {}
        paths = []
        for seq in seqs:
            path, parent = [], -1
            for tok in seq:
                node = child.get((parent, tok))
                if node is None:
                    node = child[(parent, tok)] = len(tokens)
                    tokens.append(tok)
                    parents.append(parent)
                path.append(node)
                parent = node
            paths.append(path)
        # Only nodes with children go through the model: a node's log-prob comes from its parent's
        # logits (the session's for roots), so leaves need no pass; the chosen leaf runs later,
        # queued in front of whatever follows it.
        inner = sorted({p for p in parents if p >= 0})
        slot = {node: k for k, node in enumerate(inner)}
        logprobs = {-1: torch.log_softmax(self._full_logits(), -1)}
        hidden = None
        if inner:
            self.tree_passes += 1
            m, ctx = len(inner), self.length
            depth = [0] * m
            visible = torch.zeros(m, ctx + m, dtype=torch.bool)
            visible[:, :ctx] = True
            for k, node in enumerate(inner):  # parents precede children, so their rows are complete
                if parents[node] >= 0:
                    up = slot[parents[node]]
                    visible[k, ctx:] = visible[up, ctx:]
                    depth[k] = depth[up] + 1
                visible[k, ctx + k] = True
            out = self.base(
                input_ids=torch.tensor([[tokens[node] for node in inner]]),
                position_ids=(torch.tensor(depth) + ctx).unsqueeze(0),
                attention_mask=visible[None, None],
                past_key_values=self.cache,
                use_cache=True,
            )
            hidden = out.last_hidden_state[0]
            for node, row in zip(inner, torch.log_softmax(self.head(hidden).float(), -1), strict=True):
                logprobs[node] = row
        node_lp = torch.tensor([float(logprobs[p][t]) for t, p in zip(tokens, parents, strict=True)])
        self._scored = _Scored(paths, tokens, slot, hidden)
        return torch.stack([node_lp[path].sum() for path in paths])

    @torch.inference_mode()
    def commit(self, index: int) -> None:
        scored, self._scored = self._scored, None
        if scored is None:
            raise RuntimeError("commit() without a preceding score()")
        path = scored.paths[index]
        in_cache = [node for node in path if node in scored.slot]  # a prefix of the path
        ctx = self.length - len(scored.slot)
        rows = torch.tensor([scored.slot[node] for node in in_cache], dtype=torch.long) + ctx
        for layer in self.cache.layers:
            layer.keep(ctx, rows)
        self.committed += len(in_cache)
        if in_cache:
            self._hidden = scored.hidden[scored.slot[in_cache[-1]]]
            self._logits = None
        self._pending_ids = [scored.tokens[node] for node in path[len(in_cache) :]]
        self._pending = ""
