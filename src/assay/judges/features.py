"""Judges that see what the LM sees: per-token log-probabilities of the rewriting LM as input features.

The likelihood baseline (baseline.py) scores a text by how probable the masked LM finds each of its
tokens. A judge fine-tuned from the LM's trunk sees the text *unmasked*, where the LM never learned
to predict anything, so it must re-learn that signal from a few thousand samples. With
`[features] lm_features = true` the judge model carries a frozen copy of the LM and feeds, for every
token, three numbers into the trunk (added to the token embedding through a learned projection,
zero at the start so the judge begins as the plain fine-tuned trunk):

    logp       log p(observed token | context with it masked)     (the baseline's evidence)
    max_logp   log-probability of the LM's top token there          (how sure the LM was)
    entropy    entropy of the LM's distribution there, in nats

Each token is masked once, in `groups` passes that each mask every `groups`-th position. The LM's
weights are saved inside the judge's checkpoint, so a judge scores texts on its own.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from pydantic import Field

from assay.config import Section
from assay.masking import MaskVocab
from assay.model import ModelConfig, Transformer
from assay.train.config import TrainingConfig

N_FEATURES = 3
SCALE = 0.25  # log-probabilities of a char LM lie in about [-12, 0]: keep the inputs O(1)


class FeaturesConfig(Section):
    """A judge's extra inputs: the per-token log-probabilities of the LM (see assay.judges.features)."""

    lm_features: bool = Field(
        False, description="Feed the LM's per-token logp, max logp and entropy into the judge (a frozen LM copy)."
    )
    groups: int = Field(4, ge=1, description="Masked LM passes per text (each masks every groups-th token).")
    lm: str | None = Field(None, description="The LM (run or checkpoint); none = the stream's LM (its meta.json).")
    # Filled in from the LM when training starts, so a saved judge rebuilds without it:
    lm_model: ModelConfig | None = Field(
        None, description="Filled in from the LM when training starts; not set by hand."
    )
    mask_id: int | None = Field(None, description="Filled in from the LM when training starts; not set by hand.")
    special_ids: list[int] = Field(
        default_factory=list, description="Filled in from the LM when training starts; not set by hand."
    )


class JudgeConfig(TrainingConfig):
    """A judge's training config: the common sections plus [features]."""

    features: FeaturesConfig = Field(default_factory=FeaturesConfig)


@torch.no_grad()
def masked_passes(lm, idx: torch.Tensor, vocab: MaskVocab, groups: int, padding_mask: torch.Tensor | None = None):
    """Yield (mask, log-softmax (B, T, V)) for `groups` passes of the LM over idx (B, T), pass g
    masking the maskable positions p with p % groups == g."""
    maskable = vocab.maskable(idx)
    if padding_mask is not None:
        maskable &= padding_mask
    positions = torch.arange(idx.size(1), device=idx.device)
    for g in range(groups):
        mask = maskable & (positions % groups == g)[None, :]
        if not mask.any():
            continue
        logits, _ = lm(idx.masked_fill(mask, vocab.mask_id), padding_mask=padding_mask)
        yield mask, F.log_softmax(logits.float(), dim=-1)


@torch.no_grad()
def token_features(lm, idx, vocab: MaskVocab, groups: int, padding_mask=None) -> torch.Tensor:
    """(B, T, 3) features (logp, max_logp, entropy) of every maskable token; zeros elsewhere."""
    out = torch.zeros(*idx.shape, N_FEATURES, device=idx.device)
    for mask, logp in masked_passes(lm, idx, vocab, groups, padding_mask):
        finite = logp.clamp_min(-30.0)  # SUBS gives -inf to specials
        observed = finite.gather(-1, idx[..., None]).squeeze(-1)
        entropy = -(logp.exp() * finite).sum(-1)
        feats = torch.stack([observed, finite.max(-1).values, entropy], -1)
        out[mask] = feats[mask]
    return out


class FeatureJudge(Transformer):
    """A judge (sequence scorer or token classifier) with the LM's token features as extra input."""

    def __init__(self, cfg: ModelConfig, features: FeaturesConfig):
        super().__init__(cfg)
        if features.lm_model is None or features.mask_id is None:
            raise ValueError("features.lm_model and features.mask_id must be set (they come from the LM)")
        self.vocab = MaskVocab(cfg.vocab_size, features.mask_id, tuple(features.special_ids))
        self.groups = features.groups
        self.lm = Transformer(features.lm_model)
        self.feature_proj = nn.Linear(N_FEATURES, cfg.n_embd)
        nn.init.zeros_(self.feature_proj.weight)
        nn.init.zeros_(self.feature_proj.bias)
        self._freeze_lm()

    def _freeze_lm(self) -> None:
        for p in self.lm.parameters():
            p.requires_grad = False
        self.lm.eval()

    def forward(self, idx, targets=None, padding_mask=None, weights=None, token_targets=None):
        feats = token_features(self.lm, idx, self.vocab, self.groups, padding_mask) * SCALE
        x = self.trunk(idx, padding_mask, extra=self.feature_proj(feats))
        return self.head_outputs(x, targets, padding_mask, weights, token_targets)

    def freeze_trunk(self, frozen: bool = True) -> None:
        super().freeze_trunk(frozen)
        self.feature_proj.requires_grad_(True)  # a new input: it learns even while the trunk is frozen
        self._freeze_lm()

    def train(self, mode: bool = True):
        super().train(mode)
        if hasattr(self, "lm"):
            self.lm.eval()  # a fixed feature extractor
        return self
