"""The judges' synthetic shards: real text partly rewritten by the LM, labels and scores."""

import torch

from assay.config import validate
from assay.data.produce import produce_stream
from assay.data.stream import list_shards, load_val
from assay.data.tokenizer import load_tokenizer
from assay.judges.synthetic import SyntheticProvider
from assay.train.config import TrainingConfig
from tests.conftest import stream_tree


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
    provider, _, extra = SyntheticProvider.build(validate(TrainingConfig, tree))
    s = provider.shard("train", 0)
    labels, masked = s["token_labels"].long(), s["masked"].bool()
    assert extra["num_classes"] == 3
    assert (labels == 2).any() and not (masked & (labels == 2)).any()
    assert torch.allclose(s["score"], (labels[:, 1:] > 0).float().mean(1))


def test_synthetic_shards_with_two_workers_match_one(tmp_path, tiny_lm, tiny_stream):
    cfg = validate(TrainingConfig, stream_tree(tmp_path / "unused", tmp_path / "two", tiny_lm))
    produce_stream(cfg, tmp_path / "two", workers=2, shards=8, show=False, provider_class=SyntheticProvider)
    for split in ("train", "val"):
        assert _bytes(tmp_path / "two", split) == _bytes(tiny_stream, split)


def _bytes(folder, split):
    return {seq: path.read_bytes() for seq, path in list_shards(folder / split).items()}


def test_a_provider_of_another_kind_than_the_config_is_refused(tmp_path, tiny_lm):
    import pytest

    from assay.errors import ConfigError

    cfg = validate(TrainingConfig, stream_tree(tmp_path / "unused", tmp_path / "s", tiny_lm))
    with pytest.raises(ConfigError, match="stream.provider is 'synthetic' but the provider given makes 'masked_lm'"):
        produce_stream(cfg, tmp_path / "s", shards=1, show=False)  # the default: the core's masked-LM shards
    assert not (tmp_path / "s").exists()
