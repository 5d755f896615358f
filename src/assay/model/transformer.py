"""One transformer trunk, three heads.

Pre-norm blocks, rotary position embeddings, `scaled_dot_product_attention`, bidirectional or
causal attention. The head is chosen by `ModelConfig.mode`:

    language_model    logits (B, T, V); the LM head shares its weight with the token embedding;
                      with `subs` (MDLM's SUBS parameterisation) special tokens get logit -inf
    token_classifier  logits (B, T, C)
    sequence_scorer   logits (B,) -- the score is sigmoid(logit), in [0, 1]

`forward(idx, targets=None, padding_mask=None, weights=None)` returns `(logits, loss)`; the loss
is None without targets. `trunk` and `head_outputs` are its two halves, for a training task that
adds a head of its own on the same hidden states (it subclasses the model; see `train.task.Task`).
`decode(idx, cache)` is the incremental (KV-cached) path of a causal language model, for sampling;
training never uses it.
Label conventions (the same everywhere in assay):

    language_model    targets (B, T) int64, -100 where there is nothing to predict. With targets
                      the logits are returned only at supervised positions, shape (N, V), in
                      row-major order of `targets != -100` -- a masked LM never pays for the
                      vocabulary projection of the positions it does not predict. Optional
                      `weights` (B, T) make the loss sum(w * ce) / sum(w) (e.g. the ELBO's 1/t).
    token_classifier  targets (B, T) int64 with -100 ignored; optional class weights (a buffer).
    sequence_scorer   targets (B,) float in [0, 1]; MSE on sigmoid(logit), or BCE. With
                      pooling "tokens", optional token_targets (B, T) add a per-token BCE.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from assay.model.config import ModelConfig

IGNORE_INDEX = -100
KV = tuple[torch.Tensor, torch.Tensor]  # one layer's cached keys and values, each (B, H, P, D)


class Rotary(nn.Module):
    """Rotary position embedding (RoPE): unit complex numbers e^(i·t·θ_j), cached per length."""

    def __init__(self, head_dim: int, base: float):
        super().__init__()
        inv_freq = 1.0 / (base ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim))
        self.register_buffer("inv_freq", inv_freq, persistent=False)
        self._cache: tuple[int, torch.device, torch.Tensor] | None = None

    def forward(self, seq_len: int, device: torch.device) -> torch.Tensor:
        """(T, D/2) complex64 rotations for positions 0..T-1."""
        if self._cache is None or self._cache[0] < seq_len or self._cache[1] != device:
            t = torch.arange(seq_len, device=device, dtype=torch.float32)
            angles = torch.outer(t, self.inv_freq.to(device))  # (T, D/2)
            self._cache = (seq_len, device, torch.polar(torch.ones_like(angles), angles))
        return self._cache[2][:seq_len]


def apply_rotary(x: torch.Tensor, rot: torch.Tensor) -> torch.Tensor:
    """Rotate x (B, T, H, D), its channel pairs (2j, 2j+1) read as complex numbers, by rot (T, D/2).

    One complex multiply forward and backward, instead of the half-split form's chunk, four
    multiplies, add, sub and cat (which cost ~12% of a CPU training step).
    """
    B, T, H, D = x.shape
    z = torch.view_as_complex(x.float().reshape(B, T, H, D // 2, 2))  # (B, T, H, D/2)
    return torch.view_as_real(z * rot[None, :, None, :]).reshape(B, T, H, D).to(x.dtype)


class Attention(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.n_head = cfg.n_head
        self.causal = cfg.causal
        self.dropout = cfg.dropout
        # Separate projections: a fused qkv output would have to be split, and the split's
        # backward concatenates the three gradients (a full copy per layer).
        self.q = nn.Linear(cfg.n_embd, cfg.n_embd, bias=cfg.bias)
        self.k = nn.Linear(cfg.n_embd, cfg.n_embd, bias=cfg.bias)
        self.v = nn.Linear(cfg.n_embd, cfg.n_embd, bias=cfg.bias)
        self.proj = nn.Linear(cfg.n_embd, cfg.n_embd, bias=cfg.bias)
        self.resid_drop = nn.Dropout(cfg.dropout)

    def forward(self, x, rot, attn_mask):
        B, T, C = x.shape
        H, D = self.n_head, C // self.n_head
        q = apply_rotary(self.q(x).view(B, T, H, D), rot).transpose(1, 2)  # (B, H, T, D)
        k = apply_rotary(self.k(x).view(B, T, H, D), rot).transpose(1, 2)
        v = self.v(x).view(B, T, H, D).transpose(1, 2)
        y = F.scaled_dot_product_attention(
            q,
            k,
            v,
            attn_mask=attn_mask,
            dropout_p=self.dropout if self.training else 0.0,
            is_causal=self.causal and attn_mask is None,
        )
        y = y.transpose(1, 2).contiguous().view(B, T, C)  # (B, H, T, D) -> (B, T, C)
        return self.resid_drop(self.proj(y))

    def decode(self, x, rot, cache: KV | None) -> tuple[torch.Tensor, KV]:
        """Causal attention of new positions x (B, T, C) to the cached keys and values (B, H, P, D)
        of the P positions before them and to themselves; returns (B, T, C) and the longer cache."""
        B, T, C = x.shape
        H, D = self.n_head, C // self.n_head
        q = apply_rotary(self.q(x).view(B, T, H, D), rot).transpose(1, 2)  # (B, H, T, D)
        k = apply_rotary(self.k(x).view(B, T, H, D), rot).transpose(1, 2)
        v = self.v(x).view(B, T, H, D).transpose(1, 2)
        if cache is not None:
            k, v = torch.cat([cache[0], k], dim=2), torch.cat([cache[1], v], dim=2)  # (B, H, P + T, D)
        past = k.size(2) - T
        # New position i sees keys 0..past+i. SDPA's is_causal aligns the mask top-left, right only
        # without a past; one new position sees every key and needs no mask.
        attn_mask = None
        if past and T > 1:
            attn_mask = torch.ones(T, past + T, dtype=torch.bool, device=x.device).tril(diagonal=past)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, is_causal=not past and T > 1)
        y = y.transpose(1, 2).contiguous().view(B, T, C)  # (B, H, T, D) -> (B, T, C)
        return self.resid_drop(self.proj(y)), (k, v)


class MLP(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.fc = nn.Linear(cfg.n_embd, cfg.mlp_ratio * cfg.n_embd, bias=cfg.bias)
        self.proj = nn.Linear(cfg.mlp_ratio * cfg.n_embd, cfg.n_embd, bias=cfg.bias)
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, x):
        return self.drop(self.proj(F.gelu(self.fc(x))))


class Block(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.ln1 = nn.LayerNorm(cfg.n_embd, bias=cfg.bias)
        self.attn = Attention(cfg)
        self.ln2 = nn.LayerNorm(cfg.n_embd, bias=cfg.bias)
        self.mlp = MLP(cfg)

    def forward(self, x, rot, attn_mask):
        x = x + self.attn(self.ln1(x), rot, attn_mask)
        return x + self.mlp(self.ln2(x))

    def decode(self, x, rot, cache: KV | None) -> tuple[torch.Tensor, KV]:
        h, cache = self.attn.decode(self.ln1(x), rot, cache)
        x = x + h
        return x + self.mlp(self.ln2(x)), cache


class Transformer(nn.Module):
    """The trunk (`embed`, `blocks`, `ln_f`) plus one head (`head`)."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        if cfg.vocab_size is None:
            raise ValueError("ModelConfig.vocab_size must be set (it comes from the tokenizer)")
        self.cfg = cfg
        self.embed = nn.Embedding(cfg.vocab_size, cfg.n_embd)
        self.drop = nn.Dropout(cfg.dropout)
        self.rotary = Rotary(cfg.n_embd // cfg.n_head, cfg.rope_base)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layer))
        self.ln_f = nn.LayerNorm(cfg.n_embd, bias=cfg.bias)
        if cfg.mode == "language_model":
            self.head = nn.Linear(cfg.n_embd, cfg.vocab_size, bias=False)
            self.head.weight = self.embed.weight  # tied input/output embeddings
            # SUBS: special tokens ([MASK], [PAD], ...) get logit -inf, i.e. zero probability
            banned = torch.zeros(cfg.vocab_size, dtype=torch.bool)
            if cfg.subs:
                banned[cfg.special_ids] = True
            self.register_buffer("banned", banned, persistent=False)
        elif cfg.mode == "token_classifier":
            self.head = nn.Linear(cfg.n_embd, cfg.num_classes, bias=True)
            # Weights of the classes in the loss; set once from the training distribution.
            self.register_buffer("class_weights", torch.ones(cfg.num_classes))
        else:
            self.head = nn.Linear(cfg.n_embd, 1, bias=True)
        self.frozen_trunk = False
        self._init_weights()

    def _init_weights(self) -> None:
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.normal_(module.weight, mean=0.0, std=0.02)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.Embedding):
                nn.init.normal_(module.weight, mean=0.0, std=0.02)
        # GPT-2: residual projections scaled down by depth so the residual stream stays O(1)
        for block in self.blocks:
            for proj in (block.attn.proj, block.mlp.proj):
                nn.init.normal_(proj.weight, mean=0.0, std=0.02 / math.sqrt(2 * self.cfg.n_layer))

    # ----------------------------------------------------------------------------------------
    def trunk(
        self, idx: torch.Tensor, padding_mask: torch.Tensor | None = None, extra: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Hidden states (B, T, C) for token ids idx (B, T); padding_mask (B, T) is True on real tokens;
        extra (B, T, C), if given, is added to the token embeddings (per-token input features)."""
        B, T = idx.shape
        rot = self.rotary(T, idx.device)
        attn_mask = None
        if padding_mask is not None and not bool(padding_mask.all()):
            attn_mask = padding_mask[:, None, None, :]  # (B, 1, 1, T): keys that may be attended
            if self.cfg.causal:
                causal = torch.ones(T, T, dtype=torch.bool, device=idx.device).tril()
                attn_mask = attn_mask & causal
        x = self.embed(idx)
        x = self.drop(x if extra is None else x + extra)
        for block in self.blocks:
            x = block(x, rot, attn_mask)
        return self.ln_f(x)

    def forward(self, idx, targets=None, padding_mask=None, weights=None, token_targets=None):
        return self.head_outputs(self.trunk(idx, padding_mask), targets, padding_mask, weights, token_targets)

    def decode(self, idx: torch.Tensor, cache: list[KV] | None = None) -> tuple[torch.Tensor, list[KV]]:
        """Incremental decoding for a causal language model: logits (B, T, V) for new token ids
        idx (B, T) that follow the P positions held in `cache`, and the cache extended by them.

        cache: None (nothing before idx: a prefill) or one (k, v) pair per layer, each
        (B, H, P, D), as returned by the previous call. The new tokens take the absolute positions
        P .. P+T-1 (their rotary angles), so keep P + T within the trained block: to go further,
        start again from a shorter context (`generate.autoregressive` re-prefills half a block).
        The logits equal those of `forward` on the whole sequence, up to float rounding.
        """
        if self.cfg.mode != "language_model" or not self.cfg.causal:
            raise ValueError("decode needs a causal language model (a bidirectional one sees the future)")
        if cache is not None and len(cache) != len(self.blocks):
            raise ValueError(f"cache has {len(cache)} layers, the model {len(self.blocks)}")
        past = 0 if cache is None else cache[0][0].size(2)
        T = idx.size(1)
        rot = self.rotary(past + T, idx.device)[past:]  # (T, D/2): rotations of positions past..past+T-1
        x = self.drop(self.embed(idx))
        new_cache = []
        for i, block in enumerate(self.blocks):
            x, layer_cache = block.decode(x, rot, None if cache is None else cache[i])
            new_cache.append(layer_cache)
        return self._lm_logits(self.ln_f(x)), new_cache

    def head_outputs(self, x, targets=None, padding_mask=None, weights=None, token_targets=None):
        """(logits, loss) of the model's head on hidden states x (B, T, C) from `trunk`.
        token_targets (B, T): per-token labels (>0 = positive, -100 ignored) for a sequence scorer
        with `pooling = "tokens"` (a multi-task judge); ignored otherwise."""
        mode = self.cfg.mode
        if mode == "language_model":
            if targets is None:
                return self._lm_logits(x), None
            return self._lm_loss(x, targets, weights)
        if mode == "token_classifier":
            logits = self.head(x)  # (B, T, C)
            return logits, None if targets is None else self._token_loss(logits, targets)
        if self.cfg.pooling == "tokens":
            return self._token_pooled_score(x, targets, padding_mask, token_targets)
        pooled = x[:, 0] if self.cfg.pooling == "cls" else _mean_pool(x, padding_mask)  # (B, C)
        logits = self.head(pooled).squeeze(-1)  # (B,)
        return logits, None if targets is None else self._score_loss(logits, targets)

    def _lm_logits(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.head(x)
        return logits.masked_fill(self.banned, float("-inf")) if self.cfg.subs else logits

    def _lm_loss(self, x, targets, weights):
        keep = targets != IGNORE_INDEX  # (B, T)
        logits = self._lm_logits(x[keep])  # (N, V)
        if not logits.numel():
            return logits, x.sum() * 0.0
        if weights is None:
            return logits, F.cross_entropy(logits, targets[keep])
        w = weights[keep].to(logits.dtype)  # (N,)
        ce = F.cross_entropy(logits, targets[keep], reduction="none")
        return logits, (w * ce).sum() / w.sum().clamp_min(1e-12)

    def _token_loss(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        flat = logits.reshape(-1, logits.size(-1))  # (B*T, C)
        if not (targets != IGNORE_INDEX).any():
            return flat.sum() * 0.0
        return F.cross_entropy(flat, targets.reshape(-1), weight=self.class_weights, ignore_index=IGNORE_INDEX)

    def _token_pooled_score(self, x, targets, padding_mask, token_targets):
        """Sequence score = mean over real tokens of sigmoid(token logit); returned as its logit."""
        token_logits = self.head(x).squeeze(-1)  # (B, T)
        real = torch.ones_like(token_logits) if padding_mask is None else padding_mask.to(token_logits.dtype)
        p = (torch.sigmoid(token_logits) * real).sum(1) / real.sum(1).clamp_min(1.0)  # (B,)
        logits = torch.logit(p, eps=1e-6)
        if targets is None:
            return logits, None
        t = targets.to(p.dtype)
        if self.cfg.score_loss == "bce":
            loss = F.binary_cross_entropy(p.clamp(1e-6, 1 - 1e-6), t)
        else:
            loss = F.mse_loss(p, t)
        if token_targets is not None and self.cfg.token_loss_weight > 0:
            keep = token_targets != IGNORE_INDEX
            if keep.any():
                labels = (token_targets[keep] > 0).to(token_logits.dtype)
                loss = loss + self.cfg.token_loss_weight * F.binary_cross_entropy_with_logits(
                    token_logits[keep], labels
                )
        return logits, loss

    def _score_loss(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        targets = targets.to(logits.dtype)
        if self.cfg.score_loss == "bce":
            return F.binary_cross_entropy_with_logits(logits, targets)
        return F.mse_loss(torch.sigmoid(logits), targets)

    # ----------------------------------------------------------------------------------------
    def freeze_trunk(self, frozen: bool = True) -> None:
        """Feature extraction: the trunk stops learning and runs in eval mode (no dropout).

        Only the head (and, for a tied LM head, nothing else) keeps `requires_grad`. An optimizer
        must be built from `trainable_parameters()` after this call.
        """
        self.frozen_trunk = frozen
        for name, param in self.named_parameters():
            param.requires_grad = not frozen or name.startswith("head.")
        self.train(self.training)

    def train(self, mode: bool = True):
        super().train(mode)
        if self.frozen_trunk:  # a frozen trunk is a fixed feature extractor: keep dropout off
            for name, module in self.named_children():
                if name != "head":
                    module.train(False)
        return self

    def trainable_parameters(self) -> list[nn.Parameter]:
        return [p for p in self.parameters() if p.requires_grad]

    def num_parameters(self, exclude_embedding: bool = False) -> int:
        n = sum(p.numel() for p in self.parameters())
        return n - self.embed.weight.numel() if exclude_embedding else n


def class_weights_from_counts(counts: torch.Tensor, smoothing: float = 1.0) -> torch.Tensor:
    """Balanced class weights n / (C * count) from label counts over the *training data*.

    Computed once (not per batch, whose counts jump and miss classes); `smoothing` is added to
    every count so an absent class gets a large finite weight instead of a division by zero.
    The weights average to ~1, keeping the loss on the scale of the unweighted one.
    """
    counts = counts.double() + smoothing
    return (counts.sum() / (len(counts) * counts)).float()


def _mean_pool(x: torch.Tensor, padding_mask: torch.Tensor | None) -> torch.Tensor:
    if padding_mask is None:
        return x.mean(dim=1)
    w = padding_mask.to(x.dtype).unsqueeze(-1)  # (B, T, 1)
    return (x * w).sum(1) / w.sum(1).clamp_min(1.0)
