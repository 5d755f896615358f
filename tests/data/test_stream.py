import threading
import time

import pytest
import torch
from safetensors.torch import load_file

from assay.config import validate
from assay.data.produce import produce_stream
from assay.data.stream import (
    ShardReader,
    list_shards,
    load_val,
    produce,
    read_cursor,
    read_meta,
    write_meta,
    write_shard,
)
from assay.errors import DataError
from assay.train.config import TrainingConfig
from tests.conftest import run_cli, tiny_tree, write_toml


def shard(seq: int, n: int = 4, width: int = 8) -> dict[str, torch.Tensor]:
    return {"idx": torch.full((n, width), seq, dtype=torch.int32), "score": torch.full((n,), float(seq))}


def finite_stream(folder, total=None):
    write_meta(folder, {"mode": "test", "fields": {}, "seq_len": 8, "train_shards": total})
    return folder


def test_a_reader_never_sees_a_partial_shard(tmp_path):
    big = {"idx": torch.arange(2_000_000, dtype=torch.int32).view(1000, 2000)}
    errors, seen = [], set()

    def writer():
        for seq in range(40):
            write_shard(tmp_path, seq, big)

    thread = threading.Thread(target=writer)
    thread.start()
    while thread.is_alive() or len(seen) < 40:
        for seq, path in list_shards(tmp_path).items():
            if seq not in seen:
                try:
                    assert torch.equal(load_file(str(path))["idx"], big["idx"])
                except Exception as exc:  # noqa: BLE001 -- any failure to read is the bug
                    errors.append(exc)
                seen.add(seq)
    thread.join()
    assert not errors and seen == set(range(40))
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp files left


def test_backlog_is_respected(tmp_path):
    folder = finite_stream(tmp_path)
    stop = threading.Event()
    worst = []

    def watch():
        while not stop.is_set():
            shards = list_shards(folder / "train")
            worst.append(len([s for s in shards if s >= read_cursor(folder)["read"]]))
            time.sleep(0.002)

    producer = threading.Thread(
        target=produce, args=(folder, shard, range(12), 3), kwargs={"poll": 0.005, "should_stop": stop.is_set}
    )
    watcher = threading.Thread(target=watch)
    producer.start()
    watcher.start()
    time.sleep(0.3)
    assert sorted(list_shards(folder / "train")) == [0, 1, 2]  # full: the producer sleeps
    reader = ShardReader(folder, timeout=10)
    got = [int(reader.read()["idx"][0, 0]) for _ in range(12)]
    producer.join(timeout=10)
    stop.set()
    watcher.join()
    assert got == list(range(12))
    assert max(worst) <= 3


def test_consumer_reads_in_order_waits_and_deletes(tmp_path):
    folder = finite_stream(tmp_path)

    def late_writer():
        for seq in (2, 0, 3, 1):  # out of order, with pauses
            time.sleep(0.05)
            write_shard(folder / "train", seq, shard(seq))

    threading.Thread(target=late_writer).start()
    reader = ShardReader(folder, delete=True, timeout=10)
    assert [int(reader.read()["idx"][0, 0]) for _ in range(4)] == [0, 1, 2, 3]
    assert list_shards(folder / "train") == {}  # consumed shards are deleted
    assert read_cursor(folder) == {"read": 4, "keep": 4}


def test_keep_tracks_checkpoints_and_timeout(tmp_path):
    folder = finite_stream(tmp_path)
    for seq in range(5):
        write_shard(folder / "train", seq, shard(seq))
    reader = ShardReader(folder, delete=True, track_keep=True, timeout=0.2)
    for _ in range(4):
        reader.read()
    assert sorted(list_shards(folder / "train")) == [0, 1, 2, 3, 4]  # nothing released yet
    reader.mark_keep(2)
    assert sorted(list_shards(folder / "train")) == [2, 3, 4]
    reader.read()
    with pytest.raises(DataError, match="waited 0 s for shard 5"):
        reader.read()


def test_finite_stream_repeats(tmp_path):
    folder = finite_stream(tmp_path, total=3)
    for seq in range(3):
        write_shard(folder / "train", seq, shard(seq))
    reader = ShardReader(folder, timeout=1)
    assert [int(reader.read()["idx"][0, 0]) for _ in range(7)] == [0, 1, 2, 0, 1, 2, 0]
    once = ShardReader(folder, repeat=False)
    assert len(list(once)) == 3
    with pytest.raises(DataError, match="cannot delete"):
        ShardReader(folder, delete=True)


def test_meta_errors(tmp_path):
    with pytest.raises(DataError, match="not a stream folder"):
        read_meta(tmp_path)
    (tmp_path / "meta.json").write_text("{")
    with pytest.raises(DataError, match="corrupt"):
        read_meta(tmp_path)


def _bytes(folder, split):
    return {seq: path.read_bytes() for seq, path in list_shards(folder / split).items()}


def test_masked_lm_shards_are_deterministic_and_worker_independent(tmp_path):
    tree = tiny_tree(tmp_path / "unused", stream={"shard_size": 8, "val_shards": 3, "max_backlog": None})
    cfg = validate(TrainingConfig, tree)
    produce_stream(cfg, tmp_path / "a", workers=1, shards=6, show=False)
    produce_stream(cfg, tmp_path / "b", workers=1, shards=6, show=False)
    produce_stream(cfg, tmp_path / "c", workers=2, shards=6, show=False)
    for split in ("train", "val"):
        a, b, c = (_bytes(tmp_path / x, split) for x in "abc")
        assert sorted(a) == list(range(6 if split == "train" else 3))
        assert a == b == c  # byte-identical, whoever made them
    other = validate(TrainingConfig, tree | {"run": tree["run"] | {"seed": 8}})
    produce_stream(other, tmp_path / "d", workers=1, shards=6, show=False)
    assert _bytes(tmp_path / "d", "train") != _bytes(tmp_path / "a", "train")
    meta = read_meta(tmp_path / "a")
    assert meta["fields"]["idx"] == {"dtype": "int32", "shape": [32]}
    assert meta["train_shards"] == 6 and meta["vocab_size"] == 69 and meta["mode"] == "masked_lm"


def test_produce_refuses_another_config_and_resumes_the_same(tmp_path):
    tree = tiny_tree(tmp_path / "unused", stream={"shard_size": 4, "val_shards": 1, "max_backlog": None})
    cfg = validate(TrainingConfig, tree)
    produce_stream(cfg, tmp_path / "s", shards=3, show=False)
    (list_shards(tmp_path / "s" / "train")[1]).unlink()
    produce_stream(cfg, tmp_path / "s", shards=3, show=False)  # fills the gap, keeps the rest
    assert sorted(list_shards(tmp_path / "s" / "train")) == [0, 1, 2]
    cfg.masking.stages[0].rate = 0.5
    with pytest.raises(DataError, match="another config"):
        produce_stream(cfg, tmp_path / "s", shards=3, show=False)


def test_load_val(tiny_stream):
    val = load_val(tiny_stream)
    assert val["idx"].shape == (32, 32) and val["score"].shape == (32,)


def test_ray_producers_make_the_shards_of_the_local_producer(tmp_path, ray_local, capsys):
    """`assay data produce --engine ray`: the producers are Ray tasks writing into one folder, and
    the per-shard seeds make the bytes independent of who made which shard."""
    tree = tiny_tree(tmp_path / "unused", stream={"shard_size": 8, "val_shards": 3, "max_backlog": None})
    cfg = validate(TrainingConfig, tree)
    produce_stream(cfg, tmp_path / "local", workers=1, shards=6, show=False)
    config = write_toml(tree, tmp_path / "stream.toml")
    args = ["data", "produce", "-c", config, "--out", tmp_path / "ray", "--workers", "2", "--shards", "6"]
    code, _, err = run_cli(capsys, *args, "--engine", "ray", "--device", "cpu")
    assert code == 0, err
    for split in ("train", "val"):
        local, ray = (_bytes(tmp_path / x, split) for x in ("local", "ray"))
        assert sorted(local) == list(range(6 if split == "train" else 3)) and local == ray
    # the same content (a TOML file has no null: its max_backlog, which is not content, is the default)
    assert read_meta(tmp_path / "local")["fingerprint"] == read_meta(tmp_path / "ray")["fingerprint"]
