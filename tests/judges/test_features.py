"""Judges fed the LM's per-token log-probabilities (assay.judges.features)."""

import json

import torch
from safetensors.torch import load_file

from assay.config import validate
from assay.judges import Judge
from assay.judges.baseline import token_logprobs
from assay.judges.features import FeatureJudge, JudgeConfig, token_features
from assay.judges.tasks import TASKS
from assay.masking import MaskVocab
from assay.train import trainer
from assay.train.checkpoint import load_checkpoint
from tests.conftest import stream_tree

FEATURES = {"lm_features": True, "groups": 4}


def test_token_features_match_the_baseline_and_skip_specials(tiny_lm):
    ckpt = load_checkpoint(tiny_lm)
    lm, vocab = ckpt.build_model(), MaskVocab.of(ckpt.tokenizer)
    idx = torch.tensor([ckpt.tokenizer.encode("ROMEO: What light through yonder window breaks")[:32]])
    idx[0, 0] = ckpt.tokenizer.cls_id
    feats = token_features(lm, idx, vocab, groups=4)
    base = token_logprobs(lm, idx, vocab, groups=4)
    assert feats.shape == (1, idx.size(1), 3)
    assert torch.allclose(feats[0, 1:, 0], base[0, 1:], atol=1e-5)
    assert torch.isnan(base[0, 0]) and (feats[0, 0] == 0).all()  # [CLS]: no evidence
    logp, top, entropy = feats[0, 1:].unbind(-1)
    assert (logp <= top + 1e-6).all() and (top <= 0).all() and (entropy >= 0).all()


def test_a_feature_judge_trains_saves_the_lm_and_scores_on_its_own(tmp_path, tiny_lm, tiny_stream):
    tree = stream_tree(tmp_path / "scorer", tiny_stream, tiny_lm, train={"max_iters": 12, "eval_interval": 6})
    tree["features"] = FEATURES
    result = trainer.train(validate(JudgeConfig, tree), tasks=TASKS)
    assert result.final["val_pearson"] == result.final["val_pearson"]  # finite, not NaN
    ckpt = load_checkpoint(tmp_path / "scorer", tasks=TASKS)
    assert ckpt.config.features.lm_model.n_embd == 64 and ckpt.config.features.mask_id == ckpt.tokenizer.mask_id
    model = ckpt.build_model()
    assert isinstance(model, FeatureJudge)
    saved, lm = load_file(str(ckpt.directory / "model.safetensors")), load_file(str(tiny_lm / "best/model.safetensors"))
    for name in ("embed.weight", "blocks.0.mlp.fc.weight", "ln_f.weight"):
        assert torch.equal(saved[f"lm.{name}"], lm[name])  # the frozen LM is the stream's LM, untouched
    assert saved["feature_proj.weight"].abs().sum() > 0  # the new input learned
    # the judge scores texts without the LM's run folder: move it out of the way
    moved = tiny_lm.with_name("moved-lm")
    tiny_lm.rename(moved)
    try:
        [out] = Judge.load(tmp_path / "scorer").score("ROMEO: But soft, what light through yonder window breaks?")
    finally:
        moved.rename(tiny_lm)
    assert 0.0 <= out["score"] <= 1.0
    assert json.loads((tmp_path / "scorer/config.json").read_text())["features"]["lm_features"] is True


def test_the_feature_projection_starts_at_zero_so_the_judge_starts_as_the_plain_one(tmp_path, tiny_lm, tiny_stream):
    tree = stream_tree(tmp_path / "s", tiny_stream, tiny_lm)
    tree["features"] = FEATURES
    cfg = validate(JudgeConfig, tree)
    cfg.model.vocab_size = 69
    model = TASKS["sequence_scoring"].build_model(cfg)
    plain_cfg = cfg.model_copy(update={"features": cfg.features.model_copy(update={"lm_features": False})})
    plain = TASKS["sequence_scoring"].build_model(plain_cfg)
    plain.load_state_dict(
        {k: v for k, v in model.state_dict().items() if not k.startswith(("lm.", "feature_proj."))}, strict=False
    )
    idx = torch.randint(0, 65, (2, 32))
    assert torch.allclose(model.eval()(idx)[0], plain.eval()(idx)[0], atol=1e-6)
    model.freeze_trunk()
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == {"head.weight", "head.bias", "feature_proj.weight", "feature_proj.bias"}
    model.freeze_trunk(False)
    assert not any(p.requires_grad for p in model.lm.parameters())


def test_a_multi_task_scorer_scores_the_mean_of_its_token_probabilities(tmp_path, tiny_lm, tiny_stream):
    from assay.model import ModelConfig, Transformer

    torch.manual_seed(0)
    model = Transformer(
        ModelConfig(mode="sequence_scorer", pooling="tokens", n_layer=1, n_head=2, n_embd=32, vocab_size=69)
    )
    idx = torch.randint(0, 65, (3, 10))
    real = torch.ones(3, 10, dtype=torch.bool)
    real[2, 6:] = False
    logits, _ = model(idx, padding_mask=real)
    token_p = torch.sigmoid(model.head(model.trunk(idx, real)).squeeze(-1))
    want = torch.stack([token_p[0].mean(), token_p[1].mean(), token_p[2, :6].mean()])
    assert torch.allclose(torch.sigmoid(logits), want, atol=1e-5)
    labels = torch.randint(0, 2, (3, 10))
    labels[:, 0] = -100
    _, seq_only = model(idx, torch.rand(3), padding_mask=real)
    _, both = model(idx, torch.rand(3), padding_mask=real, token_targets=labels)
    assert both > seq_only  # the token term is added
    # trained from a stream: the task feeds the token labels, and the run learns
    tree = stream_tree(
        tmp_path / "mt", tiny_stream, tiny_lm, model={"pooling": "tokens"}, train={"max_iters": 12, "eval_interval": 6}
    )
    task = TASKS["sequence_scoring"]
    result = trainer.train(validate(JudgeConfig, tree), tasks=TASKS)
    assert 0.0 < result.final["val_mae"] < 1.0
    batch = task.create(
        validate(JudgeConfig, tree), _OneRank(), "cpu", load_checkpoint(tiny_lm).tokenizer
    ).train_batch()
    assert batch["token_targets"].shape == batch["idx"].shape


class _OneRank:
    rank, world_size, is_main, enabled = 0, 1, True, False
