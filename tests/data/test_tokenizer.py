import json

import numpy as np
import pytest

from assay.data.corpus import load_corpus
from assay.data.tokenizer import SPECIAL_TOKENS, BPETokenizer, CharTokenizer, build_tokenizer, load_tokenizer
from assay.errors import DataError

TEXT = load_corpus("tinyshakespeare").documents[0].text


@pytest.fixture(scope="module")
def bpe():
    return BPETokenizer.train([TEXT[:200_000]], vocab_size=600)


def test_char_round_trip_and_specials_after_the_base_vocab():
    tok = CharTokenizer.train([TEXT])
    assert len(tok.chars) == 65  # nanoGPT's vocabulary
    assert tok.vocab_size == 69
    assert [tok.pad_id, tok.mask_id, tok.cls_id, tok.unk_id] == [65, 66, 67, 68]
    assert tok.special_ids == [65, 66, 67, 68]
    sample = TEXT[:5000]
    assert tok.decode(tok.encode(sample)) == sample
    assert np.array_equal(tok.encode_array(sample), np.array(tok.encode(sample)))
    ids = tok.encode("Hi€")
    assert ids[-1] == tok.unk_id
    assert tok.decode(ids) == "Hi"
    assert tok.decode(ids, skip_special=False) == "Hi[UNK]"


def test_bpe_round_trip_specials_and_offsets(bpe):
    assert bpe.vocab_size == 600
    assert bpe.special_ids == list(range(596, 600))
    assert [bpe.token_to_id(t) for t in SPECIAL_TOKENS] == [596, 597, 598, 599]
    sample = TEXT[300_000:305_000]  # not seen in training
    assert bpe.decode(bpe.encode(sample)) == sample
    ids, offsets = bpe.encode_with_offsets("Thou art a villain.")
    pieces = ["Thou art a villain."[a:b] for a, b in offsets]
    assert "".join(pieces) == "Thou art a villain."
    assert len(ids) == len(offsets) < len("Thou art a villain.")


def test_bpe_batched_encoding_equals_whole_text(bpe):
    sample = TEXT[:150_000]
    assert np.array_equal(bpe.encode_array(sample), np.array(bpe.encode(sample)))


@pytest.mark.parametrize("kind", ["char", "bpe"])
def test_save_load_round_trip(tmp_path, kind, bpe):
    tok = CharTokenizer.train([TEXT]) if kind == "char" else bpe
    tok.save(tmp_path / "tok")
    loaded = load_tokenizer(tmp_path / "tok")
    assert type(loaded) is type(tok)
    assert loaded.vocab_size == tok.vocab_size and loaded.special_ids == tok.special_ids
    assert loaded.fingerprint() == tok.fingerprint()
    assert loaded.encode(TEXT[:2000]) == tok.encode(TEXT[:2000])


def test_load_a_user_tokenizer_json_adds_missing_specials(tmp_path, bpe):
    from tokenizers import Tokenizer as HF

    raw = HF.from_str(bpe.hf.to_str())
    data = json.loads(raw.to_str())
    data["added_tokens"] = []  # a plain BPE without our specials
    path = tmp_path / "tokenizer.json"
    path.write_text(json.dumps(data))
    tok = build_tokenizer("bpe", [], path=str(path))
    assert tok.mask_id >= 596 and tok.mask_id in tok.special_ids


def test_tokenizer_errors(tmp_path):
    with pytest.raises(DataError, match="no tokenizer"):
        load_tokenizer(tmp_path)
    (tmp_path / "tokenizer_config.json").write_text("{broken")
    with pytest.raises(DataError, match="corrupt"):
        load_tokenizer(tmp_path)
    with pytest.raises(DataError, match="not found"):
        build_tokenizer("bpe", [], path=str(tmp_path / "missing.json"))
    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    with pytest.raises(DataError, match="cannot load tokenizer"):
        build_tokenizer("bpe", [], path=str(bad))
