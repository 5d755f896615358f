import pytest
import torch

from assay.generate import generate_causal, generate_diffusion, unmask
from assay.masking.strategies import MaskVocab
from assay.model import ModelConfig, Transformer
from assay.sampling import draw, probabilities

VOCAB = MaskVocab(size=69, mask_id=66, special_ids=(65, 66, 67, 68))


def model(**kw):
    torch.manual_seed(0)
    m = Transformer(ModelConfig(n_layer=2, n_head=2, n_embd=32, vocab_size=69, **kw)).eval()
    with torch.no_grad():  # make the specials the most likely tokens: exclusion must still hold
        m.embed.weight[65:] *= 40
    return m


def test_probabilities_temperature_top_p_and_banned():
    logits = torch.tensor([[3.0, 2.0, 1.0, 0.0, 5.0]])
    p = probabilities(logits, 1.0, 1.0, banned=[4])
    assert p[0, 4] == 0 and torch.isclose(p.sum(), torch.tensor(1.0))
    greedy = probabilities(logits, 0.0, 1.0, banned=[4])
    assert greedy.tolist() == [[1.0, 0.0, 0.0, 0.0, 0.0]]
    nucleus = probabilities(logits, 1.0, 0.7, banned=[4])
    assert (nucleus[0, 2:] == 0).all() and (nucleus[0, :2] > 0).all()  # 0.665 < 0.7 -> two tokens
    ids, conf = draw(nucleus, torch.Generator().manual_seed(0))
    assert ids.item() in (0, 1) and conf.item() == nucleus[0, ids.item()]


def test_unmask_follows_a_linear_schedule_and_never_emits_specials():
    m = model()
    x = torch.full((2, 40), VOCAB.mask_id)
    x[:, :5] = torch.arange(5)  # a given prefix
    counts = []
    out = unmask(
        m,
        x,
        VOCAB,
        steps=8,
        gen=torch.Generator().manual_seed(1),
        on_step=lambda s, y: counts.append(int((y == VOCAB.mask_id).sum(1)[0])),
    )
    assert counts == [35 * (8 - s - 1) // 8 for s in range(8)]
    assert counts[-1] == 0
    assert torch.equal(out[:, :5], x[:, :5])
    assert not torch.isin(out, torch.tensor(VOCAB.special_ids)).any()


def test_generate_diffusion_windows_and_prompt():
    m = model()
    prompt = [1, 2, 3]
    out = generate_diffusion(
        m, VOCAB, length=90, steps=4, block_size=32, prompt=prompt, gen=torch.Generator().manual_seed(2)
    )
    assert len(out) == 90
    assert all(0 <= i < 65 for i in out)
    again = generate_diffusion(
        m, VOCAB, length=90, steps=4, block_size=32, prompt=prompt, gen=torch.Generator().manual_seed(2)
    )
    assert out == again


def test_generate_causal():
    m = model(attention="causal")
    out = generate_causal(
        m,
        list(VOCAB.special_ids),
        [0],
        length=50,
        block_size=16,
        temperature=0.8,
        top_p=0.9,
        gen=torch.Generator().manual_seed(3),
    )
    assert len(out) == 50 and all(0 <= i < 65 for i in out)
    with pytest.raises(ValueError, match="non-empty prompt"):
        generate_causal(m, [], [], 5, 16)


def test_random_order_unmasking_also_follows_the_schedule():
    m = model()
    x = torch.full((1, 24), VOCAB.mask_id)
    counts = []
    out = unmask(
        m,
        x,
        VOCAB,
        steps=6,
        gen=torch.Generator().manual_seed(4),
        sampler="random",
        on_step=lambda s, y: counts.append(int((y == VOCAB.mask_id).sum())),
    )
    assert counts == [24 * (6 - s - 1) // 6 for s in range(6)]
    assert not torch.isin(out, torch.tensor(VOCAB.special_ids)).any()
    with pytest.raises(ValueError, match="sampler"):
        unmask(m, x, VOCAB, steps=2, sampler="sideways")


def test_window_sizes_and_the_step_callback_of_a_long_generation():
    from assay.generate.diffusion import window_sizes

    assert window_sizes(0, 50, 32) == [32, 16, 2]
    assert window_sizes(3, 90, 32) == [29, 16, 16, 16, 13]
    assert window_sizes(40, 10, 32) == [10]
    seen = []
    out = generate_diffusion(
        model(),
        VOCAB,
        length=50,
        steps=3,
        block_size=32,
        gen=torch.Generator().manual_seed(5),
        on_step=lambda w, s, ids: seen.append((w, s, len(ids), ids.count(VOCAB.mask_id))),
    )
    # the 2-token window is done after 2 steps (nothing left to unmask)
    assert [(w, s) for w, s, _, _ in seen] == [(0, 0), (0, 1), (0, 2), (1, 0), (1, 1), (1, 2), (2, 0), (2, 1)]
    assert [n for _, _, n, _ in seen] == [32] * 3 + [48] * 3 + [50] * 2  # earlier windows, then this one
    assert [m for _, _, _, m in seen] == [21, 10, 0, 10, 5, 0, 1, 0]  # each window's own schedule
    assert len(out) == 50


@pytest.mark.parametrize("sampler", ["confidence", "random", "ancestral", "remdm"])
def test_every_sampler_is_deterministic_by_seed_keeps_the_given_tokens_and_never_emits_specials(sampler):
    m = model()
    x = torch.full((3, 30), VOCAB.mask_id)
    x[:, 10:14] = torch.tensor([7, 8, 9, 10])  # given in the middle (an infill)

    def run(seed):
        return unmask(
            m, x, VOCAB, steps=12, top_p=0.9, gen=torch.Generator().manual_seed(seed), sampler=sampler, eta=0.2
        )

    out = run(1)
    assert torch.equal(out, run(1))
    assert not torch.equal(out, run(2))
    assert torch.equal(out[:, 10:14], x[:, 10:14])  # SUBS carry-over: given tokens never change
    assert not (out == VOCAB.mask_id).any()
    assert not torch.isin(out, torch.tensor(VOCAB.special_ids)).any()


def test_ancestral_reveals_tokens_for_good_and_reuses_the_models_output_when_nothing_changed():
    from assay.generate.diffusion import _CachedLogits

    m = model()
    x = torch.full((1, 16), VOCAB.mask_id)
    history = []
    unmask(m, x, VOCAB, steps=64, gen=torch.Generator().manual_seed(3), sampler="ancestral",
           on_step=lambda s, y: history.append(y.clone()))  # fmt: skip
    for before, after in zip(history, history[1:], strict=False):
        kept = before != VOCAB.mask_id
        assert torch.equal(after[kept], before[kept])  # a revealed token is final
    calls = []
    real_call = _CachedLogits.__call__

    def counting(self, y):
        out = real_call(self, y)
        calls.append(self.calls)
        return out

    _CachedLogits.__call__ = counting
    try:
        unmask(m, x, VOCAB, steps=64, gen=torch.Generator().manual_seed(3), sampler="ancestral")
    finally:
        _CachedLogits.__call__ = real_call
    # 16 tokens over 64 steps: many steps reveal nothing (no model call at all) and the model runs
    # only when the input changed since its last run
    assert calls[-1] <= 16 and calls[-1] < 64


def test_remdm_remasks_what_it_wrote_but_ends_with_everything_revealed():
    m = model()
    x = torch.full((2, 24), VOCAB.mask_id)
    x[:, :4] = 3
    counts, remasked = [], []
    previous = [x.clone()]

    def watch(s, y):
        counts.append(int((y == VOCAB.mask_id).sum()))
        remasked.append(int(((previous[0] != VOCAB.mask_id) & (y == VOCAB.mask_id)).sum()))
        previous[0] = y.clone()

    out = unmask(m, x, VOCAB, steps=40, gen=torch.Generator().manual_seed(5), sampler="remdm", eta=0.3, on_step=watch)
    assert sum(remasked) > 0  # some written tokens went back to [MASK]
    assert counts[-1] == 0 and torch.equal(out[:, :4], x[:, :4])
    plain = []
    unmask(m, x, VOCAB, steps=40, gen=torch.Generator().manual_seed(5), sampler="ancestral",
           on_step=lambda s, y: plain.append(int((y == VOCAB.mask_id).sum())))  # fmt: skip
    assert all(a >= b for a, b in zip(plain, plain[1:], strict=False))  # ancestral never re-masks
    with pytest.raises(ValueError, match="eta"):
        unmask(m, x, VOCAB, steps=2, sampler="remdm", eta=1.5)
