"""The masked-diffusion training recipe: low-discrepancy t, SUBS, the ELBO weighting, EMA."""

import pytest
import torch
from safetensors.torch import load_file

from assay.config import validate
from assay.masking.strategies import MaskVocab, mask_random, sample_rates
from assay.model import ModelConfig, Transformer
from assay.train.checkpoint import load_checkpoint
from assay.train.config import TrainingConfig
from assay.train.ema import EMA
from assay.train.metrics import read_metrics
from assay.train.trainer import config_for_resume, train
from tests.conftest import tiny_tree

VOCAB = MaskVocab(size=69, mask_id=66, special_ids=(65, 66, 67, 68))
RECIPE = {
    "model": {"subs": True},
    "masking": {"loss": "elbo", "stages": [{"kind": "random", "rate": [0.0, 1.0], "stratified": True}]},
}


def test_stratified_rates_cover_every_stratum_once():
    for seed in range(5):
        gen = torch.Generator().manual_seed(seed)
        rates = sample_rates((0.0, 1.0), 16, gen, stratified=True)
        strata = torch.floor(rates * 16).long().sort().values
        assert strata.tolist() == list(range(16))  # one rate in each [i/16, (i+1)/16)
        iid = sample_rates((0.0, 1.0), 16, torch.Generator().manual_seed(seed))
        assert torch.floor(iid * 16).long().unique().numel() < 16 or seed > 0  # independent draws collide
    # same marginal: over many batches the rates are uniform on [0.2, 0.6]
    gen = torch.Generator().manual_seed(9)
    many = torch.cat([sample_rates((0.2, 0.6), 8, gen, stratified=True) for _ in range(500)])
    assert many.min() >= 0.2 and many.max() <= 0.6
    assert abs(float(many.mean()) - 0.4) < 0.01
    hist = torch.histc(many, bins=4, min=0.2, max=0.6)
    assert (hist == 1000).all()  # 8 strata of width 0.05: exactly two per histogram bin, every batch
    masked = mask_random(torch.zeros(8, 64, dtype=torch.long), VOCAB, torch.Generator().manual_seed(1), stratified=True)
    assert masked.rates.sort().values.sub(torch.arange(8) / 8).abs().max() < 1 / 8 + 1e-6


def test_subs_puts_no_mass_on_specials_and_keeps_the_loss_finite():
    torch.manual_seed(0)
    cfg = ModelConfig(n_layer=1, n_head=2, n_embd=32, vocab_size=69, subs=True, special_ids=[65, 66, 67, 68])
    model = Transformer(cfg).eval()
    with torch.no_grad():
        model.embed.weight[65:] *= 50  # make the specials the likeliest tokens without SUBS
    x = torch.randint(0, 65, (2, 16))
    x[:, ::3] = VOCAB.mask_id
    logits, _ = model(x)
    probs = logits.softmax(-1)
    assert torch.isfinite(logits[..., :65]).all()
    assert (probs[..., 65:] == 0).all() and torch.allclose(probs.sum(-1), torch.ones(2, 16))
    targets = x.masked_fill(x == VOCAB.mask_id, 5).masked_fill(x != VOCAB.mask_id, -100)
    _, loss = model(x, targets)
    assert torch.isfinite(loss)
    loss.backward()
    assert torch.isfinite(model.embed.weight.grad).all()
    plain = Transformer(cfg.model_copy(update={"subs": False}))
    plain.load_state_dict(model.state_dict())
    assert plain.eval()(x)[0].softmax(-1)[..., 65:].sum() > 0.5  # without SUBS the specials take mass
    with pytest.raises(ValueError, match="special_ids"):
        ModelConfig(vocab_size=10, subs=True, special_ids=[10])


def test_a_subs_run_records_the_specials_of_its_tokenizer(tmp_path):
    train(validate(TrainingConfig, tiny_tree(tmp_path / "run", **RECIPE, train={"max_iters": 4})))
    ckpt = load_checkpoint(tmp_path / "run")
    assert ckpt.config.model.special_ids == sorted(ckpt.tokenizer.special_ids)
    logits, _ = ckpt.build_model()(torch.full((1, 8), ckpt.tokenizer.mask_id))
    assert (logits.softmax(-1)[..., ckpt.tokenizer.special_ids] == 0).all()


def test_ema_tracks_the_weights_and_swaps_back():
    model = torch.nn.Linear(3, 2)
    ema = EMA(model, decay=0.9)
    start = [p.detach().clone() for p in model.parameters()]
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    ema.update()  # warm-up decay min(0.9, 2/11)
    d = 2 / 11
    for s, p0, p in zip(ema.shadow, start, model.parameters(), strict=True):
        assert torch.allclose(s, d * p0 + (1 - d) * p)
    own = [p.detach().clone() for p in model.parameters()]
    with ema.applied():
        assert all(torch.equal(p, s) for p, s in zip(model.parameters(), ema.shadow, strict=True))
    assert all(torch.equal(p, o) for p, o in zip(model.parameters(), own, strict=True))
    with pytest.raises(ValueError):
        EMA(model, 1.0)


def test_ema_checkpoints_hold_the_average_and_resume_exactly(tmp_path):
    sections = {
        **RECIPE,
        "train": {"max_iters": 16, "lr_decay_iters": 16, "ema_decay": 0.95},
        "model": {"subs": True, "dropout": 0.1},
    }
    full = train(validate(TrainingConfig, tiny_tree(tmp_path / "full", **sections)))
    part_cfg = validate(TrainingConfig, tiny_tree(tmp_path / "part", **sections))
    part_cfg.train.max_iters = 8
    train(part_cfg)
    ckpt = load_checkpoint(tmp_path / "part", "last")
    assert ckpt.state["ema_updates"] == 8
    resumed = train(config_for_resume(ckpt, tmp_path / "part", ["train.max_iters=16"]), resume=ckpt)

    def losses(d):
        return [r["train_loss"] for r in read_metrics(d / "metrics.jsonl") if "train_loss" in r]

    assert losses(tmp_path / "full") == losses(tmp_path / "part")  # bit for bit
    assert full.final["val_loss"] == resumed.final["val_loss"]
    for name in ("model.safetensors", "training.safetensors"):
        a, b = load_file(str(tmp_path / "full/last" / name)), load_file(str(tmp_path / "part/last" / name))
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    ema, raw = (
        load_file(str(tmp_path / "full/last/model.safetensors")),
        load_file(str(tmp_path / "full/last/training.safetensors")),
    )
    assert not torch.equal(ema["embed.weight"], raw["embed.weight"])  # the checkpoint's weights are the average
    # readers (eval, generate, init_from) get the EMA weights
    model = load_checkpoint(tmp_path / "full").build_model()
    assert torch.equal(model.embed.weight, load_file(str(tmp_path / "full/best/model.safetensors"))["embed.weight"])
