import torch

from assay.config import validate
from assay.data.providers import MaskedLMProvider
from assay.train.config import TrainingConfig
from tests.conftest import tiny_tree


def test_masked_lm_shard_labels_and_stage_mix(tmp_path):
    stages = [{"kind": "random", "rate": 0.5}, {"kind": "span", "rate": 0.25, "n_spans": 2}]
    cfg = validate(TrainingConfig, tiny_tree(tmp_path, masking={"stages": stages}, stream={"shard_size": 10}))
    provider, tok, _ = MaskedLMProvider.build(cfg)
    s = provider.shard("train", 3)
    idx, targets = s["idx"].long(), s["targets"].long()
    masked = targets != -100
    assert (idx[masked] == tok.mask_id).all() and (idx[~masked] != tok.mask_id).all()
    assert torch.bincount(s["stage"].long()).tolist() == [5, 5]
    span_rows = s["stage"] == 1
    assert (masked[span_rows].sum(1) == 8).all()  # ceil(0.25 * 32)
    assert torch.equal(provider.shard("train", 3)["idx"], s["idx"])
    assert not torch.equal(provider.shard("train", 4)["idx"], s["idx"])
