import math

import numpy as np
import pytest
import torch

from assay.data.blocks import fixed_blocks
from assay.masking.strategies import MaskVocab
from assay.model import ModelConfig, Transformer
from assay.train.likelihood import causal_nll, diffusion_nelbo, to_bits_per_char

V = 69
VOCAB = MaskVocab(V, 66, (65, 66, 67, 68))


def uniform_model(**kw):
    """A real transformer whose logits are all zero (zero embeddings, bias-free norms)."""
    m = Transformer(ModelConfig(n_layer=2, n_head=2, n_embd=32, vocab_size=V, **kw)).eval()
    with torch.no_grad():
        m.embed.weight.zero_()
    return m


def test_elbo_of_a_uniform_model_is_log_v():
    tokens = np.random.default_rng(0).integers(0, 65, 64 * 200).astype(np.uint16)
    starts = fixed_blocks(len(tokens), 64)
    nelbo = diffusion_nelbo(uniform_model(), tokens, starts, 64, VOCAB, 16, seed=0, batch_size=50, device="cpu")
    assert nelbo == pytest.approx(math.log(V), rel=0.01)
    # independent of batching
    again = diffusion_nelbo(uniform_model(), tokens, starts, 64, VOCAB, 16, seed=0, batch_size=7, device="cpu")
    assert again == pytest.approx(nelbo, rel=1e-6)


def test_causal_nll_of_a_uniform_model_is_log_v():
    tokens = np.random.default_rng(0).integers(0, 65, 5000).astype(np.uint16)
    starts = fixed_blocks(len(tokens), 33)
    nll = causal_nll(uniform_model(attention="causal"), tokens, starts, 32, 16, "cpu")
    assert nll == pytest.approx(math.log(V), rel=1e-5)
    assert to_bits_per_char(math.log(2), 1.0) == pytest.approx(1.0)
    assert to_bits_per_char(math.log(2), 4.0) == pytest.approx(0.25)
