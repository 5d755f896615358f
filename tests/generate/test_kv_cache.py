"""The KV cache: `Transformer.decode` equals the full forward, and cached sampling draws the same
tokens as the uncached loop it replaced."""

import pytest
import torch

from assay.generate import generate_causal
from assay.generate.autoregressive import sample_causal
from assay.model import ModelConfig, Transformer
from assay.sampling import draw, probabilities

SPECIALS = [65, 66, 67, 68]


def causal_model(subs: bool = False) -> Transformer:
    torch.manual_seed(0)
    cfg = ModelConfig(
        n_layer=2, n_head=2, n_embd=32, vocab_size=69, attention="causal", subs=subs, special_ids=SPECIALS
    )
    m = Transformer(cfg).eval()
    with torch.no_grad():  # make the specials the most likely tokens: exclusion must still hold
        m.embed.weight[65:] *= 40
    return m


@torch.no_grad()
def uncached(model, special_ids, prompt, length, block_size, temperature=1.0, top_p=1.0, gen=None):
    """The loop generate_causal ran before the cache: the whole window again for every token."""
    gen = gen or torch.Generator().manual_seed(0)
    x = torch.tensor([prompt])
    for _ in range(length):
        logits, _ = model(x[:, -block_size:])  # (1, T, V)
        next_id, _ = draw(probabilities(logits[:, -1], temperature, top_p, special_ids), gen)
        x = torch.cat([x, next_id[:, None]], dim=1)
    return x[0, len(prompt) :].tolist()


@torch.no_grad()
def uncached_sliding(model, special_ids, prompt, length, block_size, temperature=1.0, top_p=1.0, gen=None):
    """The documented slide without a cache: the context grows to block_size, then restarts from
    its last block_size // 2 tokens."""
    gen = gen or torch.Generator().manual_seed(0)
    context, out = list(prompt[-block_size:]), []
    for _ in range(length):
        logits, _ = model(torch.tensor([context]))
        next_id, _ = draw(probabilities(logits[:, -1], temperature, top_p, special_ids), gen)
        out.append(int(next_id))
        context.append(int(next_id))
        if len(context) > block_size:
            context = context[-(block_size // 2) :]
    return out


@pytest.mark.parametrize("subs", [False, True])
def test_decode_equals_the_full_forward_at_every_position(subs):
    m = causal_model(subs)
    idx = torch.randint(0, 65, (2, 24), generator=torch.Generator().manual_seed(1))
    full, _ = m(idx)  # (2, 24, V)
    logits, cache = m.decode(idx[:, :5])  # prefill 5
    got = [logits]
    for t in range(5, 12):  # one token at a time
        logits, cache = m.decode(idx[:, t : t + 1], cache)
        got.append(logits)
    logits, cache = m.decode(idx[:, 12:16], cache)  # several new tokens after a past: the causal mask
    got.append(logits)
    for t in range(16, 24):
        logits, cache = m.decode(idx[:, t : t + 1], cache)
        got.append(logits)
    got = torch.cat(got, dim=1)
    assert got.shape == full.shape
    assert len(cache) == 2 and cache[0][0].shape == (2, 2, 24, 16)  # (B, H, P, D) per layer
    finite = torch.isfinite(full)
    assert torch.equal(finite, torch.isfinite(got))  # SUBS: -inf on the specials in both
    assert torch.allclose(got[finite], full[finite], atol=1e-5, rtol=1e-4)


def test_decode_after_a_slide_equals_the_forward_of_the_window():
    m = causal_model()
    idx = torch.randint(0, 65, (1, 40), generator=torch.Generator().manual_seed(2))
    window = idx[:, 20:40]  # after a slide the cache restarts at position 0 from the window's start
    full, _ = m(window)
    logits, cache = m.decode(idx[:, 20:30])
    got = [logits]
    for t in range(30, 40):
        logits, cache = m.decode(idx[:, t : t + 1], cache)
        got.append(logits)
    assert torch.allclose(torch.cat(got, dim=1), full, atol=1e-5, rtol=1e-4)


def test_decode_needs_a_causal_language_model():
    torch.manual_seed(0)
    bidirectional = Transformer(ModelConfig(n_layer=1, n_head=2, n_embd=16, vocab_size=69)).eval()
    with pytest.raises(ValueError, match="causal"):
        bidirectional.decode(torch.zeros(1, 3, dtype=torch.long))


@pytest.mark.parametrize(("temperature", "top_p"), [(1.0, 1.0), (0.8, 0.9), (0.0, 1.0)])
def test_cached_generation_draws_the_tokens_of_the_uncached_loop(temperature, top_p):
    m = causal_model()
    prompt = [5, 9, 2]
    # 3 + 62 = block + 1 tokens: the last is drawn from a full block, still no slide
    args = (m, SPECIALS, prompt, 62, 64, temperature, top_p)
    cached = generate_causal(*args, torch.Generator().manual_seed(3))
    assert cached == uncached(*args, torch.Generator().manual_seed(3))
    assert len(cached) == 62


def test_sliding_generation_follows_the_documented_scheme_and_never_draws_specials():
    m = causal_model(subs=False)  # no SUBS mask: the sampler alone keeps the (likeliest) specials out
    args = (m, SPECIALS, [1, 2, 3], 100, 16, 1.0, 1.0)  # 103 tokens through a block of 16: 10 slides
    cached = generate_causal(*args, torch.Generator().manual_seed(4))
    assert cached == uncached_sliding(*args, torch.Generator().manual_seed(4))
    assert len(cached) == 100 and all(0 <= i < 65 for i in cached)


def test_a_batch_of_rows_and_a_long_prompt():
    m = causal_model(subs=True)
    prompts = torch.randint(0, 65, (3, 40), generator=torch.Generator().manual_seed(5))  # longer than the block
    out = sample_causal(m, SPECIALS, prompts, 30, 32, gen=torch.Generator().manual_seed(6))
    assert out.shape == (3, 30)
    assert not torch.isin(out, torch.tensor(SPECIALS)).any()
    assert sample_causal(m, SPECIALS, prompts, 0, 32).shape == (3, 0)
    with pytest.raises(ValueError, match="non-empty prompt"):
        generate_causal(m, SPECIALS, [], 5, 16)
