import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from assay.data.config import DataConfig
from assay.data.tokens import prepare_tokens
from assay.masking import (
    BertStage,
    Curriculum,
    MaskVocab,
    RandomStage,
    SpanStage,
    StickyStage,
    apply_stage,
    mask_bert,
    mask_random,
    mask_span,
    mask_sticky,
)


@pytest.fixture(scope="module")
def real():
    """(64, 128) blocks of real tiny-shakespeare tokens, [CLS] first and 8 [PAD] at the end."""
    splits = prepare_tokens(DataConfig())
    tok = splits.tokenizer
    x = torch.from_numpy(splits.train[: 64 * 128].astype("int64")).view(64, 128)
    x[:, 0] = tok.cls_id
    x[:, -8:] = tok.pad_id
    return x, MaskVocab.of(tok)


def runs(mask_row: torch.Tensor) -> list[int]:
    """Lengths of the runs of consecutive masked positions."""
    out, n = [], 0
    for m in mask_row.tolist() + [False]:
        if m:
            n += 1
        elif n:
            out.append(n)
            n = 0
    return out


def check_labels(x, masked, vocab):
    specials = ~vocab.maskable(x)
    assert not masked.mask[specials].any(), "a special token was masked"
    assert torch.equal(masked.inputs[specials], x[specials])
    assert (masked.labels[~masked.mask] == -100).all()
    assert torch.equal(masked.labels[masked.mask], x[masked.mask])


def test_random_rates_per_sample(real):
    x, vocab = real
    g = torch.Generator().manual_seed(0)
    m = mask_random(x, vocab, g, rate=(0.2, 0.6))
    check_labels(x, m, vocab)
    assert ((m.rates >= 0.2) & (m.rates <= 0.6)).all() and m.rates.std() > 0.05
    frac = m.mask.sum(1) / vocab.maskable(x).sum(1)
    # realised fraction tracks each sample's own rate (binomial noise at T = 119)
    assert torch.corrcoef(torch.stack([frac, m.rates]))[0, 1] > 0.8
    assert (m.inputs[m.mask] == vocab.mask_id).all()
    fixed = mask_random(x, vocab, g, rate=0.3)
    assert abs(fixed.mask.float().sum() / vocab.maskable(x).sum() - 0.3) < 0.02


def test_bert_80_10_10(real):
    x, vocab = real
    x = x.repeat(8, 1)
    m = mask_bert(x, vocab, torch.Generator().manual_seed(1), rate=0.15)
    check_labels(x, m, vocab)
    sel = m.mask
    assert abs(sel.sum() / vocab.maskable(x).sum() - 0.15) < 0.01
    as_mask = (m.inputs == vocab.mask_id) & sel
    changed = (m.inputs != x) & sel & ~as_mask
    assert abs(as_mask.sum() / sel.sum() - 0.8) < 0.02
    # random replacements (10%) sometimes draw the original token back: expect slightly under 10%
    assert 0.08 < changed.sum() / sel.sum() < 0.11
    assert vocab.maskable(m.inputs[changed]).all(), "random replacement drew a special token"


@pytest.mark.parametrize("rate", [0.1, 0.4, 0.9])
def test_sticky_exact_k_and_clustered(real, rate):
    x, vocab = real
    g = torch.Generator().manual_seed(2)
    sticky = mask_sticky(x, vocab, g, rate=rate, p1=0.05, p2=0.8)
    check_labels(x, sticky, vocab)
    k = math.ceil(rate * 119)  # 128 - [CLS] - 8 [PAD]
    assert (sticky.mask.sum(1) == k).all()
    assert (mask_sticky(x, vocab, g, rate=rate, p1=0.3, p2=0.0).mask.sum(1) == k).all()
    # masked runs are longer than those of independent masking at the same rate
    independent = mask_random(x, vocab, g, rate=rate)
    mean_run = lambda m: sum(sum(runs(r)) for r in m) / sum(len(runs(r)) for r in m)  # noqa: E731
    assert mean_run(sticky.mask) > 1.3 * mean_run(independent.mask)


def test_sticky_rate_range_gives_per_sample_k(real):
    x, vocab = real
    m = mask_sticky(x, vocab, torch.Generator().manual_seed(3), rate=(0.1, 0.7), p1=0.1, p2=0.5)
    expected = torch.ceil(m.rates * 119 - 1e-6).long()
    assert torch.equal(m.mask.sum(1), expected)


@pytest.mark.parametrize(("rate", "n_spans"), [(0.3, 4), (0.5, 1), (0.05, 10)])
def test_span_exact_k_non_overlapping_spans(real, rate, n_spans):
    x, vocab = real
    m = mask_span(x, vocab, torch.Generator().manual_seed(4), rate=rate, n_spans=n_spans)
    check_labels(x, m, vocab)
    k = math.ceil(rate * 119)
    assert (m.mask.sum(1) == k).all()
    for row in m.mask:
        assert len(runs(row)) == min(n_spans, k)  # distinct spans: never adjacent


@settings(deadline=None, max_examples=60)
@given(
    kind=st.sampled_from(["bert", "random", "sticky", "span"]),
    rate=st.floats(0.0, 1.0),
    batch=st.integers(1, 4),
    length=st.integers(2, 40),
    n_special=st.integers(0, 3),
    seed=st.integers(0, 2**31),
)
def test_any_shape_keeps_specials_and_exact_counts(kind, rate, batch, length, n_special, seed):
    vocab = MaskVocab(size=20, mask_id=17, special_ids=(16, 17, 18, 19))
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 16, (batch, length), generator=g)
    x[:, : min(n_special, length)] = 18
    stage = {"bert": BertStage, "random": RandomStage, "sticky": StickyStage, "span": SpanStage}[kind](rate=rate)
    m = apply_stage(stage, x, vocab, g)
    check_labels(x, m, vocab)
    if kind in ("sticky", "span"):
        n = vocab.maskable(x).sum(1)
        assert torch.equal(m.mask.sum(1), torch.minimum(torch.ceil(rate * n - 1e-6).long(), n))


def test_same_generator_state_same_masks(real):
    x, vocab = real
    a = apply_stage(StickyStage(), x, vocab, torch.Generator().manual_seed(9))
    b = apply_stage(StickyStage(), x, vocab, torch.Generator().manual_seed(9))
    assert torch.equal(a.inputs, b.inputs)


def test_curriculum_advances_after_patience_and_round_trips():
    cur = Curriculum([RandomStage(), StickyStage(), SpanStage()], patience=2)
    assert cur.observe(3.0) is False and cur.index == 0
    assert cur.observe(3.1) is False  # 1 stale
    assert cur.observe(2.9) is False  # improvement resets
    assert cur.observe(3.0) is False
    assert cur.observe(3.0) is True and cur.index == 1  # 2 stale -> next stage
    state = cur.state_dict()
    again = Curriculum(cur.stages, patience=2)
    again.load_state_dict(state)
    assert again.index == 1 and again.state_dict() == state
    for _ in range(6):
        cur.observe(5.0)
    assert cur.index == 2  # the last stage stays
    strict = Curriculum([RandomStage(), StickyStage()], patience=1, min_delta=0.1)
    assert strict.observe(3.0) is False
    assert strict.observe(2.95) is True  # 0.05 < min_delta: not an improvement
