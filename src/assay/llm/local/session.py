"""One generation's KV-cached state on a local causal LM: prefill (with prompt-prefix reuse) and
decoding steps.

The KV cache is a transformers `DynamicCache` whose layers write into preallocated buffers
(`BufferLayer`, per layer keys/values [1, kv_heads, capacity, head_dim], capacity doubling when
full) instead of concatenating a new copy of the whole cache at every step, which at a 2k-token
prompt costs as much as the attention itself. Prompt prefixes (system turns) are kept in a small
LRU (`PrefixCache`) and copied into each new session's buffers, so their prefill is paid once per
process.

Tokens are queued with `push` and run with the next `next_logits` call, all in one forward pass
(e.g. the tokens a grammar forces, then the one the model chose before them).

The model runs with `ATTENTION` ("assay_sdpa"): torch's SDPA with grouped-query attention done by
the kernel (`enable_gqa`), where transformers' own "sdpa" copies the key/value heads whenever a
mask is given (every multi-token pass here).
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from transformers import AttentionInterface, DynamicCache
from transformers.cache_utils import DynamicLayer
from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

ATTENTION = "assay_sdpa"
PREFIX_SLOTS = 4  # prompt prefixes (the turns before the last) whose KV state is kept per loaded model
SEEN_PREFIXES = 256  # prompt prefixes remembered (hashes of their token ids) to tell a shared one from a one-off
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
    """LRU of prompt-prefix KV states (per layer (keys, values) copies) keyed by their token ids.

    A prompt's prefix is everything before its last turn (`backend.prompt_ids`): a system turn, or a
    system turn with worked examples that every request of a step repeats. A prefix of one turn is
    stored the first time; a longer one the second time it is seen (`wanted`), so a one-off
    conversation history does not push a shared prefix out."""

    def __init__(self, slots: int = PREFIX_SLOTS, remembered: int = SEEN_PREFIXES):
        self.slots, self.remembered = slots, remembered
        self._entries: OrderedDict[tuple[int, ...], list[tuple[torch.Tensor, torch.Tensor]]] = OrderedDict()
        self._seen: OrderedDict[int, None] = OrderedDict()  # hashes of longer prefixes seen once
        self._lock = threading.Lock()
        self.hits = self.misses = 0

    def wanted(self, ids: Sequence[int], turns: int) -> bool:
        """Whether to store the prefix `ids` (of `turns` turns) now: one turn, or seen before."""
        if turns <= 1:
            return True
        key = hash(tuple(ids))
        with self._lock:
            if key in self._seen:
                return True
            self._seen[key] = None
            while len(self._seen) > self.remembered:
                self._seen.popitem(last=False)
        return False

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


class KVSession:
    """A causal LM positioned after a prompt (the `TokenModel` of `guided`).

    `model` is a transformers causal LM prepared with `prepare_model` (its `base_model` returns
    hidden states, its output embeddings map them to logits). The prompt is prefilled in two
    chunks, `prompt_ids[:prefix_len]` (looked up in / stored to `prefixes`; it holds `prefix_turns`
    chat turns) and the rest, so a cached and an uncached run do the same arithmetic and give the
    same tokens.

    `passes` counts forward passes after the prompt and `forward_s` the time spent in them and in
    the output layer (what a decoder costs on top of that is its own overhead).
    """

    def __init__(
        self,
        model,
        prompt_ids: Sequence[int],
        prefix_len: int = 0,
        prefixes: PrefixCache | None = None,
        prefix_turns: int = 1,
    ):
        if not prompt_ids:
            raise ValueError("empty prompt")
        self.model = model
        self.base = model.base_model
        self.head = model.get_output_embeddings()
        self.vocab_size = int(self.head.weight.shape[0])
        self.prompt_tokens = len(prompt_ids)
        self.prefix_hit = False
        self.passes = 0
        self.forward_s = 0.0
        self._queued: list[int] = []  # not yet run
        self._logits: torch.Tensor | None = None
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
            if prefixes is not None and prefixes.wanted(prefix, prefix_turns):
                prefixes.put(prefix, [(layer.keys.clone(), layer.values.clone()) for layer in self.cache.layers])
        self._hidden = self._run(list(prompt_ids[prefix_len:]))
        self.passes = 0
        self.forward_s = 0.0

    @property
    def length(self) -> int:
        """Tokens in the KV cache."""
        return self.cache.get_seq_length()

    @torch.inference_mode()
    def _run(self, ids: list[int]) -> torch.Tensor:
        """Append `ids` to the cache; return the [hidden] final state after the last one."""
        started = time.perf_counter()
        start = self.length
        out = self.base(
            input_ids=torch.tensor([ids]),
            position_ids=torch.arange(start, start + len(ids)).unsqueeze(0),
            past_key_values=self.cache,
            use_cache=True,
        )
        self._logits = None
        self.passes += 1
        self.forward_s += time.perf_counter() - started
        return out.last_hidden_state[0, -1]

    def push(self, ids: Sequence[int]) -> None:
        """Queue tokens: they run with the next `next_logits` call, in one pass."""
        self._queued.extend(int(i) for i in ids)

    @torch.inference_mode()
    def next_logits(self, among: torch.Tensor | None = None) -> torch.Tensor:
        """Next-token logits after everything pushed: [V], or with `among` (a [k] tensor of token
        ids) only those k logits, in that order (the output layer then computes just k rows)."""
        if self._queued:
            ids, self._queued = self._queued, []
            self._hidden = self._run(ids)
        started = time.perf_counter()
        if among is None or self._logits is not None:
            if self._logits is None:
                self._logits = self.head(self._hidden).float()
            out = self._logits if among is None else self._logits[among]
        else:
            out = (self.head.weight[among] @ self._hidden).float()
            if getattr(self.head, "bias", None) is not None:
                out = out + self.head.bias[among].float()
        self.forward_s += time.perf_counter() - started
        return out
