"""The connective strategies: their masking statistics on real KJV text, and the model's class head."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from assay.config import validate
from assay.data.blocks import gather_blocks
from assay.data.kjv import load_kjv
from assay.data.tokenizer import build_tokenizer
from assay.errors import ConfigError
from assay.experiments.connectives.config import ConnectiveStage, ConnectiveTrainingConfig
from assay.experiments.connectives.inventory import annotate, load_inventory
from assay.experiments.connectives.policy import ConnectiveBlocks, ConnectivePolicy, ConnectiveStats, water_fill
from assay.experiments.connectives.task import ClassHeadTransformer
from assay.masking.config import MaskingConfig
from assay.masking.strategies import MaskVocab
from assay.model.config import ModelConfig
from assay.model.transformer import IGNORE_INDEX, Transformer
from assay.train.config import TrainingConfig

B, T = 1500, 64


@pytest.fixture(scope="module")
def data():
    books = {title: text for title, text, _ in load_kjv()}
    text = "\n\n".join(books[b] for b in ("Genesis", "Psalms", "Matthew", "Romans", "Acts"))
    tok = build_tokenizer("bpe", [text], 1024)
    inventory = load_inventory()
    ids, ann = annotate(text, tok, inventory)
    stats = ConnectiveStats.of(ann, inventory.class_of)
    starts = np.random.default_rng(0).integers(0, len(ids) - T, B)
    x = gather_blocks(ids, starts, T)
    blocks = ConnectiveBlocks.gather(ann, starts, T)
    return x, blocks, stats, MaskVocab.of(tok), inventory


def occurrence_table(masked, blocks):
    """Per occurrence in the batch: (all tokens masked, any token masked, form, flags, row, line)."""
    conn = blocks.occ >= 0
    rows = torch.arange(B)[:, None].expand(B, T)
    key = (rows * 10**7 + blocks.occ)[conn]
    _, inv = torch.unique(key, return_inverse=True)
    n = int(inv.max()) + 1
    m = masked.mask[conn].long()
    every = torch.ones(n, dtype=torch.long).scatter_reduce(0, inv, m, "amin")
    some = torch.zeros(n, dtype=torch.long).scatter_reduce(0, inv, m, "amax")
    first = torch.zeros(n, dtype=torch.long).scatter_reduce(0, inv, torch.arange(len(inv)), "amin", include_self=False)

    def pick(t):
        return t[conn][first]

    return every.bool(), some.bool(), pick(blocks.form), pick(blocks.flags), pick(rows), pick(blocks.line)


def run(data, seed=0, **params):
    x, blocks, stats, vocab, _ = data
    policy = ConnectivePolicy(ConnectiveStage(**params), stats)
    masked, aux = policy(x, blocks, vocab, torch.Generator().manual_seed(seed))
    return policy, masked, aux


@pytest.mark.parametrize("strategy", ["uniform", "weighted", "structural", "contrastive", "chain"])
def test_every_strategy_masks_rate_overall_and_p_of_the_connectives_as_whole_words(data, strategy):
    extra = {"aux_weight": 0.5} if strategy == "contrastive" else {}
    _, masked, aux = run(data, strategy=strategy, rate=0.15, p=0.4, **extra)
    x, blocks, _, vocab, _ = data
    assert masked.mask.float().mean().item() == pytest.approx(0.15, abs=0.01)
    every, some, *_ = occurrence_table(masked, blocks)
    assert torch.equal(every, some)  # whole words: never part of a connective
    assert every.float().mean().item() == pytest.approx(0.4, abs=0.04)
    assert torch.equal(masked.inputs[masked.mask], torch.full((int(masked.mask.sum()),), vocab.mask_id))
    assert (
        torch.equal(masked.labels[masked.mask], x[masked.mask]) and (masked.labels[~masked.mask] == IGNORE_INDEX).all()
    )


def test_random_baseline_ignores_connectives(data):
    _, masked, aux = run(data, strategy="random", rate=0.15)
    _, blocks, *_ = data
    conn = blocks.occ >= 0
    assert masked.mask[conn].float().mean().item() == pytest.approx(0.15, abs=0.02)
    assert masked.mask[~conn].float().mean().item() == pytest.approx(0.15, abs=0.01)


def test_aux_targets_are_the_class_at_masked_connective_tokens_only(data):
    _, masked, aux = run(data, strategy="contrastive", aux_weight=1.0, p=0.5)
    _, blocks, stats, _, inventory = data
    labelled = aux != IGNORE_INDEX
    assert torch.equal(labelled, masked.mask & (blocks.occ >= 0))
    expected = torch.tensor(inventory.class_of)[blocks.form[labelled]]
    assert torch.equal(aux[labelled], expected)


def test_weighted_by_frequency_masks_rare_connectives_more(data):
    policy, masked, _ = run(data, strategy="weighted", weight_source="frequency", alpha=1.0, p=0.3)
    probs, counts = policy.form_probs(), policy.stats.form_counts
    seen = counts > 0
    assert (counts * probs).sum() / counts.sum() == pytest.approx(0.3)  # the mean is kept
    frequent, rare = int(np.argmax(counts)), int(np.flatnonzero(seen)[np.argmin(counts[seen])])
    assert probs[rare] > probs[frequent]
    every, _, form, *_ = occurrence_table(masked, data[1])
    observed = every[form == frequent].float().mean().item()
    assert observed == pytest.approx(probs[frequent], abs=0.03)


def test_weighted_by_loss_follows_the_running_loss(data):
    policy, *_ = run(data, strategy="weighted", weight_source="loss", beta=2.0, p=0.3, loss_momentum=0.5)
    assert np.allclose(policy.form_probs()[policy.stats.form_counts > 0], 0.3)  # nothing measured: uniform
    losses = np.full(len(policy.stats.form_counts), np.nan)
    losses[0], losses[1] = 4.0, 1.0
    policy.update_losses(losses)
    assert policy.form_probs()[0] > policy.form_probs()[1]
    policy.update_losses(np.where(np.arange(len(losses)) == 0, 2.0, np.nan))
    assert policy.loss_ema[0] == pytest.approx(3.0) and policy.loss_ema[1] == pytest.approx(1.0)
    clone = ConnectivePolicy(policy.stage, policy.stats)
    clone.load_state_dict(policy.state_dict())  # JSON-able state, for exact resume
    assert np.allclose(clone.form_probs(), policy.form_probs())


def test_structural_boosts_verse_and_clause_initial_connectives(data):
    policy, masked, _ = run(data, strategy="structural", boost=3.0, p=0.2)
    low, high = policy.structural_probs()
    assert high == pytest.approx(3 * low)
    every, _, _, flags, *_ = occurrence_table(masked, data[1])
    boosted, other = every[flags > 0].float().mean().item(), every[flags == 0].float().mean().item()
    assert boosted == pytest.approx(high, abs=0.03) and other == pytest.approx(low, abs=0.03)


def test_chain_masks_all_connectives_of_a_verse_together(data):
    policy, masked, _ = run(data, strategy="chain", q=0.6, p=0.5)
    every, _, _, _, rows, lines = occurrence_table(masked, data[1])
    key = rows * 10**7 + lines
    _, verse, per_verse = torch.unique(key, return_inverse=True, return_counts=True)
    multi = per_verse[verse] >= 2
    all_masked = torch.ones(len(per_verse), dtype=torch.long).scatter_reduce(0, verse, every.long(), "amin").bool()
    chained = all_masked[(per_verse >= 2)].float().mean().item()
    # P(all k masked) = q + (1 - q) * r^k with r the rate outside chains: at least q
    r = policy.chain_rest_prob(share=multi.float().mean().item())  # the batch's share of chain verses
    assert r < 0.5 and chained >= 0.6 - 0.03
    assert every[~multi].float().mean().item() == pytest.approx(r, abs=0.04)


def test_water_fill_caps_at_one_and_keeps_the_mean():
    probs = water_fill(np.array([1.0, 1.0, 100.0]), np.array([10.0, 10.0, 1.0]), 0.5)
    assert probs[2] == pytest.approx(1.0) and (10 * probs[0] + 10 * probs[1] + probs[2]) / 21 == pytest.approx(0.5)
    assert np.all(water_fill(np.ones(3), np.ones(3), 0.0) == 0)


def test_stage_config_errors():
    with pytest.raises(ValueError, match="aux_weight > 0"):
        ConnectiveStage(strategy="contrastive")
    # a connective stage belongs to the connectives objective: not a core masking stage, not mixable
    with pytest.raises(ConfigError, match="masking.stages.0"):
        validate(TrainingConfig, {"masking": {"stages": [{"kind": "connectives"}]}})
    with pytest.raises(ConfigError, match="masking.stages.0"):
        validate(ConnectiveTrainingConfig, {"masking": {"stages": [{"kind": "random"}, {"kind": "connectives"}]}})
    with pytest.raises(ValueError):
        MaskingConfig(stages=[{"kind": "connectives"}])


def test_class_head_loss_counts_only_the_labelled_positions():
    torch.manual_seed(0)
    cfg = ModelConfig(n_layer=1, n_head=2, n_embd=16, vocab_size=20)
    model = ClassHeadTransformer(cfg, n_classes=3).eval()
    idx = torch.randint(0, 20, (2, 8))
    targets = torch.full((2, 8), IGNORE_INDEX)
    targets[:, 2:5] = idx[:, 2:5]
    classes = torch.full((2, 8), IGNORE_INDEX)
    classes[0, 3], classes[1, 4] = 2, 0
    _, lm = model(idx, targets)
    _, both = model(idx, targets, class_targets=classes, class_weight=torch.tensor(0.7))
    hidden = model.trunk(idx)
    expected = F.cross_entropy(model.class_head(hidden[classes != IGNORE_INDEX]), classes[classes != IGNORE_INDEX])
    assert (both - lm).item() == pytest.approx(0.7 * expected.item(), rel=1e-5)
    # the class head sees exactly the hidden states of the labelled positions, nothing else
    seen = []
    model.class_head.register_forward_hook(lambda module, args, out: seen.append(args[0]))
    model(idx, targets, class_targets=classes)
    assert torch.allclose(seen[0], hidden[classes != IGNORE_INDEX])
    # without class targets it is the plain LM with the same weights
    plain = Transformer(cfg).eval()
    plain.load_state_dict({k: v for k, v in model.state_dict().items() if not k.startswith("class_head.")})
    assert torch.allclose(plain(idx, targets)[1], lm)
