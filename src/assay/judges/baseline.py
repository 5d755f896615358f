"""The likelihood baseline for judges (GLTR-style): how probable is each observed token under the
masked LM itself?

Every token is masked once, in `groups` passes that each mask every `groups`-th position (so a
token is predicted from a context with ~1/groups of it masked), and scored by the LM's
log-probability of the token actually there; a text's score is the mean over its tokens.

Which way the score points is an empirical matter: a strong LM's own tokens are ones it finds
likely (GLTR), while a weak LM sampling at temperature 1 writes tokens that are improbable in
the repaired context. `oriented` learns the direction on training data only, so the baseline is
judged on held-out data like the judges are.
"""

from __future__ import annotations

import numpy as np
import torch

from assay.judges.features import masked_passes
from assay.masking.strategies import MaskVocab


@torch.no_grad()
def token_logprobs(lm, idx: torch.Tensor, vocab: MaskVocab, groups: int = 8, batch_size: int = 32) -> torch.Tensor:
    """(N, T) log p(observed token | context with it masked); NaN at special tokens."""
    out = torch.full(idx.shape, float("nan"))
    for start in range(0, len(idx), batch_size):
        x = idx[start : start + batch_size].long()
        block = out[start : start + batch_size]
        for mask, logp in masked_passes(lm, x, vocab, groups):
            block[mask] = logp.gather(-1, x[..., None]).squeeze(-1)[mask]
    return out


def sequence_logprob(token_lp: torch.Tensor) -> torch.Tensor:
    """(N,) mean log-probability over each text's (non-special) tokens."""
    return torch.nanmean(token_lp, dim=1)


def orientation(train_scores: np.ndarray, train_machine: np.ndarray) -> float:
    """+1 if higher scores go with machine-written on the training data, else -1."""
    return 1.0 if np.corrcoef(train_scores, train_machine.astype(np.float64))[0, 1] >= 0 else -1.0
