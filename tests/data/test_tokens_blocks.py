import numpy as np
import pytest

from assay.data.blocks import BlockSampler, fixed_blocks, gather_blocks
from assay.data.config import DataConfig
from assay.data.tokens import prepare_tokens
from assay.errors import DataError


def test_token_cache_is_built_once_and_reused(tmp_path):
    cfg = DataConfig(cache_dir=str(tmp_path))
    first = prepare_tokens(cfg)
    files = sorted(tmp_path.rglob("*.bin"))
    assert len(files) == 2
    mtimes = [f.stat().st_mtime_ns for f in files]
    second = prepare_tokens(cfg)
    assert [f.stat().st_mtime_ns for f in sorted(tmp_path.rglob("*.bin"))] == mtimes
    assert first.train.dtype == np.uint16 and len(first.train) == 1_003_854 and len(first.val) == 111_540
    assert np.array_equal(first.val[:100], second.val[:100])
    assert first.tokenizer.decode(first.val[:10]) == "?\n\nGREMIO:"
    assert first.chars_per_token("val") == 1.0


def test_bpe_tokens_and_chars_per_token(tmp_path):
    cfg = DataConfig(corpus="tinyshakespeare", tokenizer="bpe", bpe_vocab_size=400, cache_dir=str(tmp_path))
    splits = prepare_tokens(cfg)
    assert splits.tokenizer.vocab_size == 400
    assert splits.chars_per_token("val") > 1.5
    assert splits.tokenizer.decode(splits.val[:50]).startswith("?\n\nGREMIO:")


def test_sampler_is_deterministic_resumable_and_covers_an_epoch():
    a = BlockSampler(10_000, 100, seed=3)
    first = [a.next_starts(8) for _ in range(5)]
    state = a.state_dict()
    later = [a.next_starts(8) for _ in range(30)]
    b = BlockSampler(10_000, 100, seed=3)
    assert all(np.array_equal(x, y) for x, y in zip(first, [b.next_starts(8) for _ in range(5)], strict=True))
    c = BlockSampler(10_000, 100, seed=3)
    c.load_state_dict(state)
    assert all(np.array_equal(x, y) for x, y in zip(later, [c.next_starts(8) for _ in range(30)], strict=True))
    epoch0 = np.concatenate(first + later)[: len(BlockSampler(10_000, 100, 3)._epoch_order())]
    assert len(set(epoch0.tolist())) == len(epoch0)  # no block twice within an epoch
    assert np.all(np.diff(np.sort(epoch0)) == 100)  # non-overlapping, one offset per epoch


def test_ranks_shard_the_global_order():
    single = BlockSampler(5_000, 50, seed=1)
    r0, r1 = BlockSampler(5_000, 50, 1, rank=0, world_size=2), BlockSampler(5_000, 50, 1, rank=1, world_size=2)
    for _ in range(10):
        both = single.next_starts(8)
        assert np.array_equal(np.concatenate([r0.next_starts(4), r1.next_starts(4)]), both)


def test_blocks_and_errors():
    tokens = np.arange(1000, dtype=np.uint16)
    x = gather_blocks(tokens, np.array([0, 10]), 5)
    assert x.tolist() == [[0, 1, 2, 3, 4], [10, 11, 12, 13, 14]]
    assert fixed_blocks(1000, 100).tolist() == list(range(0, 1000, 100))
    assert fixed_blocks(1000, 100, max_blocks=3).tolist() == [0, 400, 900]
    with pytest.raises(DataError, match="too few"):
        fixed_blocks(50, 100)
    with pytest.raises(DataError, match="too few"):
        BlockSampler(150, 100, seed=0)
