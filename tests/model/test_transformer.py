import math

import pytest
import torch

from assay.data.config import DataConfig
from assay.data.tokens import prepare_tokens
from assay.model import ModelConfig, Transformer

V = 69


def make(**kw) -> Transformer:
    torch.manual_seed(0)
    return Transformer(ModelConfig(n_layer=2, n_head=2, n_embd=32, vocab_size=V, **kw))


def test_language_model_shapes_and_tied_head():
    m = make()
    x = torch.randint(0, 65, (3, 16))
    logits, loss = m(x)
    assert logits.shape == (3, 16, V) and loss is None
    assert m.head.weight is m.embed.weight
    targets = torch.full_like(x, -100)
    targets[:, ::4] = x[:, ::4]
    logits, loss = m(x, targets)
    assert logits.shape == (12, V)  # only the supervised positions
    expected = torch.nn.functional.cross_entropy(m(x)[0][targets != -100], x[targets != -100])
    assert torch.allclose(loss, expected, atol=1e-5)
    _, loss = m(x, torch.full_like(x, -100))
    assert loss.item() == 0.0  # nothing to predict: zero, not NaN


def test_token_classifier_loss_and_weights():
    m = make(mode="token_classifier", num_classes=3)
    x = torch.randint(0, 65, (2, 10))
    hard = torch.randint(0, 3, (2, 10))
    hard[0, :3] = -100
    logits, loss = m(x, hard)
    assert logits.shape == (2, 10, 3) and torch.isfinite(loss)
    keep = hard != -100
    assert torch.allclose(loss, torch.nn.functional.cross_entropy(logits[keep], hard[keep]))
    m.class_weights.copy_(torch.tensor([1.0, 5.0, 1.0]))
    _, weighted = m(x, hard)
    flat = logits.reshape(-1, 3)
    ref = torch.nn.functional.cross_entropy(flat, hard.reshape(-1), weight=m.class_weights, ignore_index=-100)
    assert torch.allclose(weighted, ref)
    assert "class_weights" in m.state_dict()


@pytest.mark.parametrize("pooling", ["cls", "mean"])
@pytest.mark.parametrize("score_loss", ["mse", "bce"])
def test_sequence_scorer(pooling, score_loss):
    m = make(mode="sequence_scorer", pooling=pooling, score_loss=score_loss)
    x = torch.randint(0, 65, (4, 12))
    x[:, 0] = 67  # [CLS]
    target = torch.tensor([0.0, 0.25, 0.5, 1.0])
    logits, loss = m(x, target)
    assert logits.shape == (4,) and loss.ndim == 0
    scores = torch.sigmoid(logits)
    assert ((scores >= 0) & (scores <= 1)).all()
    if score_loss == "mse":
        assert torch.allclose(loss, ((scores - target) ** 2).mean())


def test_causal_is_causal_and_bidirectional_is_not():
    x = torch.randint(0, 65, (1, 12))
    y = x.clone()
    y[0, 8] = (y[0, 8] + 1) % 65  # change one later token
    causal = make(attention="causal")
    a, b = causal(x)[0], causal(y)[0]
    assert torch.allclose(a[0, :8], b[0, :8], atol=1e-6) and not torch.allclose(a[0, 8:], b[0, 8:])
    bidi = make()
    a, b = bidi(x)[0], bidi(y)[0]
    assert not torch.allclose(a[0, :8], b[0, :8])


@pytest.mark.parametrize("attention", ["bidirectional", "causal"])
def test_padding_does_not_leak(attention):
    m = make(attention=attention)
    x = torch.randint(0, 65, (2, 10))
    pad = torch.ones_like(x, dtype=torch.bool)
    pad[:, 7:] = False
    y = x.clone()
    y[:, 7:] = torch.randint(0, 65, (2, 3))  # different padding content
    a, b = m(x, padding_mask=pad)[0], m(y, padding_mask=pad)[0]
    assert torch.allclose(a[:, :7], b[:, :7], atol=1e-6)


def test_mean_pool_ignores_padding():
    m = make(mode="sequence_scorer", pooling="mean")
    x = torch.randint(0, 65, (1, 10))
    pad = torch.ones_like(x, dtype=torch.bool)
    pad[:, 6:] = False
    y = x.clone()
    y[:, 6:] = 0
    assert torch.allclose(m(x, padding_mask=pad)[0], m(y, padding_mask=pad)[0], atol=1e-6)


def test_freeze_trunk_keeps_only_the_head_trainable_and_dropout_off():
    m = make(mode="token_classifier", dropout=0.5)
    m.freeze_trunk()
    m.train()
    assert {n for n, p in m.named_parameters() if p.requires_grad} == {"head.weight", "head.bias"}
    assert not m.blocks[0].attn.resid_drop.training and m.head.training
    x = torch.randint(0, 65, (2, 8))
    h1, h2 = m.trunk(x), m.trunk(x)
    assert torch.equal(h1, h2)  # deterministic features
    m.freeze_trunk(False)
    m.train()
    assert all(p.requires_grad for p in m.parameters()) and m.blocks[0].attn.resid_drop.training


def test_lm_learns_real_text():
    splits = prepare_tokens(DataConfig())
    torch.manual_seed(0)
    m = Transformer(ModelConfig(n_layer=2, n_head=2, n_embd=64, vocab_size=splits.tokenizer.vocab_size))
    opt = torch.optim.AdamW(m.parameters(), lr=3e-3)
    x = torch.from_numpy(splits.train[: 8 * 64].astype("int64")).view(8, 64)
    targets = torch.where(torch.rand(x.shape, generator=torch.Generator().manual_seed(0)) < 0.3, x, -100)
    inputs = x.masked_fill(targets != -100, splits.tokenizer.mask_id)
    losses = []
    for _ in range(60):
        _, loss = m(inputs, targets)
        loss.backward()
        opt.step()
        opt.zero_grad()
        losses.append(loss.item())
    assert losses[0] == pytest.approx(math.log(69), rel=0.05)  # starts near uniform
    assert losses[-1] < 0.75 * losses[0]


def test_parameter_counts():
    m = make()
    n = m.num_parameters()
    assert n == sum(p.numel() for p in m.parameters())
    assert m.num_parameters(exclude_embedding=True) == n - V * 32


def test_class_weights_from_counts():
    from assay.model import class_weights_from_counts

    w = class_weights_from_counts(torch.tensor([900, 100, 0]), smoothing=1.0)
    assert w[1] > w[0] and torch.isfinite(w).all() and w[2] == w.max()
    balanced = class_weights_from_counts(torch.tensor([500, 500]), smoothing=0.0)
    assert torch.allclose(balanced, torch.ones(2))
