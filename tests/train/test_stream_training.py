"""The masked-LM objective trained from a stream of shards (`data.stream`), finite and live."""

from assay.config import validate
from assay.train.config import TrainingConfig
from assay.train.trainer import train


def test_masked_lm_from_a_stream(tmp_path):
    from assay.data.produce import produce_stream
    from tests.conftest import tiny_tree

    tree = tiny_tree(tmp_path / "run", stream={"shard_size": 8, "val_shards": 2, "max_backlog": None})
    tree["data"]["stream"] = str(tmp_path / "s")
    cfg = validate(TrainingConfig, tree)
    produce_stream(cfg, tmp_path / "s", shards=4, show=False)
    result = train(cfg)
    assert result.final["val_loss"] > 0 and "val_loss/0" in result.final


def test_training_from_a_live_stream_with_backlog_and_deletion(tmp_path):
    """The trainer starts first and waits; an endless producer (backlog 2) feeds it; shards that
    no checkpoint needs any more are deleted."""
    import threading

    from assay.data.produce import produce_stream
    from assay.data.stream import list_shards, read_cursor
    from tests.conftest import tiny_tree

    tree = tiny_tree(tmp_path / "run", stream={"shard_size": 8, "val_shards": 2, "max_backlog": 2})
    tree["data"].update({"stream": str(tmp_path / "s"), "stream_delete": True, "stream_timeout": 60})
    tree["train"].update({"max_iters": 12, "eval_interval": 4})
    cfg = validate(TrainingConfig, tree)
    result = {}
    trainer = threading.Thread(target=lambda: result.setdefault("r", train(cfg)))
    trainer.start()
    stop = threading.Event()
    producer_cfg = validate(TrainingConfig, tree)
    producer = threading.Thread(
        target=lambda: produce_stream(producer_cfg, tmp_path / "s", show=False, should_stop=stop.is_set)
    )
    producer.start()
    trainer.join(timeout=120)
    stop.set()
    producer.join(timeout=30)
    assert result["r"].iters == 12
    cursor = read_cursor(tmp_path / "s")
    assert cursor == {"read": 12, "keep": 12}  # 12 steps x 8 samples = 12 shards of 8
    left = sorted(list_shards(tmp_path / "s" / "train"))
    # consumed shards are deleted; whatever the producer wrote since is within the backlog
    assert all(seq >= 12 for seq in left) and len(left) <= 2
