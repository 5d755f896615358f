import torch

from assay.config import validate
from assay.data.produce import build_provider
from assay.data.stream import load_val
from assay.data.tokenizer import load_tokenizer
from assay.train.config import TrainingConfig
from tests.conftest import stream_tree, tiny_tree


def test_masked_lm_shard_labels_and_stage_mix(tmp_path):
    stages = [{"kind": "random", "rate": 0.5}, {"kind": "span", "rate": 0.25, "n_spans": 2}]
    cfg = validate(TrainingConfig, tiny_tree(tmp_path, masking={"stages": stages}, stream={"shard_size": 10}))
    provider, tok, _ = build_provider(cfg)
    s = provider.shard("train", 3)
    idx, targets = s["idx"].long(), s["targets"].long()
    masked = targets != -100
    assert (idx[masked] == tok.mask_id).all() and (idx[~masked] != tok.mask_id).all()
    assert torch.bincount(s["stage"].long()).tolist() == [5, 5]
    span_rows = s["stage"] == 1
    assert (masked[span_rows].sum(1) == 8).all()  # ceil(0.25 * 32)
    assert torch.equal(provider.shard("train", 3)["idx"], s["idx"])
    assert not torch.equal(provider.shard("train", 4)["idx"], s["idx"])


def test_synthetic_labels_scores_and_specials(tiny_stream):
    val = load_val(tiny_stream)
    tok = load_tokenizer(tiny_stream / "tokenizer")
    idx, orig, labels = val["idx"].long(), val["original"].long(), val["token_labels"].long()
    masked = val["masked"].bool()
    assert (idx[:, 0] == tok.cls_id).all() and (labels[:, 0] == -100).all()
    body = slice(1, None)
    assert not torch.isin(idx[:, body], torch.tensor(tok.special_ids)).any()  # the LM never wrote a special
    replaced = masked & (idx != orig)
    assert torch.equal(labels[:, body] == 1, replaced[:, body])
    restored = masked & (idx == orig)
    assert restored.any() and (labels[restored] == 0).all()  # a mask refilled with the original counts as original
    assert torch.allclose(val["score"], replaced[:, body].float().mean(1))
    sticky = val["stage"] == 1  # exactly K = ceil(rate * 31) masks: realised <= K / 31
    k = torch.ceil(val["rate"][sticky] * 31 - 1e-6)
    assert (masked[sticky].sum(1) == k).all() and (val["score"][sticky] <= k / 31 + 1e-6).all()


def test_random_corruption_adds_a_third_class(tmp_path, tiny_lm):
    tree = stream_tree(tmp_path, tmp_path / "s", tiny_lm, stream={"random_frac": 0.1})
    provider, _, extra = build_provider(validate(TrainingConfig, tree))
    s = provider.shard("train", 0)
    labels, masked = s["token_labels"].long(), s["masked"].bool()
    assert extra["num_classes"] == 3
    assert (labels == 2).any() and not (masked & (labels == 2)).any()
    assert torch.allclose(s["score"], (labels[:, 1:] > 0).float().mean(1))
