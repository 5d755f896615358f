"""LoRA SFT on the synthetic music-config rows: labels, loss, merge, resume, CLI (docs/sft.md).

Everything runs on a tiny randomly initialised Llama (2 layers, 32 wide) that carries the real
SmolLM2 tokenizer and chat template, saved as an HF directory and used as `local/DIR`.
"""

from __future__ import annotations

import copy
import json
import os
from functools import cache
from pathlib import Path

import pytest
import torch

from assay.errors import AssayError, DataError
from tests.conftest import needs_smollm2
from tests.test_tracking import tensorboard_scalars

pytestmark = needs_smollm2  # (a skip outside CI, a failure under CI=true)

PAYLOAD = Path(__file__).resolve().parents[1] / "music" / "data" / "payload_valid.json"
VIBES = [
    ("a lighthouse keeper alone on a winter night", "a lighthouse keeper alnoe on a winter night"),
    ("sunlight through leaves after summer rain", "sunlight through leaves after summer rain"),
    ("a crowded night market, neon and steam", "a crowded night market, neon and steam"),
]


@cache
def smollm2_tokenizer_dir(root: str) -> Path:
    """The real SmolLM2 tokenizer (read from the shipped GGUF, ~8 s), saved once per session."""
    from transformers import AutoTokenizer

    from assay.llm.local import gguf_path

    gguf = gguf_path()
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    out = Path(root) / "smollm2-tokenizer"
    tokenizer.save_pretrained(out)
    return out


def make_tiny_base(directory: Path, tokenizer_dir: Path, seed: int = 0) -> Path:
    """A 2-layer, 32-wide random LlamaForCausalLM with SmolLM2's vocabulary, as an HF directory."""
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=4096,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        initializer_range=0.2,  # HF's 0.02 leaves the frozen, tied output layer too weak to fit anything
    )
    torch.manual_seed(seed)
    LlamaForCausalLM(config).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


@pytest.fixture(scope="session")
def tiny_base(tmp_path_factory) -> Path:
    torch.set_num_threads(1)
    root = tmp_path_factory.getbasetemp()
    return make_tiny_base(root / "tiny-llama", smollm2_tokenizer_dir(str(root)))


def payload(i: int) -> dict:
    p = json.loads(PAYLOAD.read_text())
    p["title"] = ["Lantern Over Winter Sea", "Green After Rain", "Neon Steam"][i % 3]
    p["config"]["tempo"] = ["slow", "medium", "fast"][i % 3]
    return p


def write_rows(path: Path, n: int = 3, with_null: bool = True) -> Path:
    rows = [
        {
            "row_id": f"r{i}",
            "vibe_original": VIBES[i % 3][0],
            "vibe_noisy": VIBES[i % 3][1],
            "config_payload": payload(i),
        }
        for i in range(n)
    ]
    if with_null:
        rows.append({"row_id": "failed", "vibe_original": "x", "vibe_noisy": "x", "config_payload": None})
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def sft_config(out: Path, base: Path, data: Path, val: Path | None = None, **train):
    from assay.config import validate
    from assay.synth.sft.config import SFTConfig

    tree = {
        "data": {"train": str(data), "val": str(val) if val else None},
        "model": {"base": f"local/{base}"},
        "lora": {"r": 4, "alpha": 8, "dropout": 0.1, "target_modules": ["q_proj", "v_proj", "down_proj"]},
        "train": {
            "lr": 2e-2,
            "min_lr": 2e-3,
            "warmup_steps": 1,
            "max_steps": 6,
            "batch_size": 1,
            "grad_accum": 2,
            "eval_interval": 3,
            "checkpoint_interval": 2,
        }
        | train,
        "run": {"out_dir": str(out), "seed": 3, "threads": 1, "progress": False},
    }
    return validate(SFTConfig, tree)


def losses(run: Path, key: str = "train_loss") -> list[float]:
    from assay.train.metrics import read_metrics

    return [r[key] for r in read_metrics(run / "metrics.jsonl") if key in r]


# --- data ---------------------------------------------------------------------------------------


def test_labels_cover_only_the_assistant_turn(tiny_base, tmp_path):
    from transformers import AutoTokenizer

    from assay.model.transformer import IGNORE_INDEX as IGNORE
    from assay.synth.music_configs import build_messages, system_prompt
    from assay.synth.sft.data import load_examples

    tokenizer = AutoTokenizer.from_pretrained(tiny_base)
    data = load_examples(write_rows(tmp_path / "SFT-Train.jsonl"), tokenizer)
    assert data.summary() == {"rows": 4, "examples": 3, "skipped": {"no_payload": 1}}
    for i, example in enumerate(data.examples):
        n = example.prompt_len
        assert all(label == IGNORE for label in example.labels[:n])
        assert example.labels[n:] == example.input_ids[n:]
        # the prompt is the configs step's own, from the *noisy* vibe, ending with the assistant header
        prompt = tokenizer.apply_chat_template(build_messages(VIBES[i][1]), tokenize=False, add_generation_prompt=True)
        assert example.input_ids[:n] == tokenizer.encode(prompt, add_special_tokens=False)
        assert system_prompt() in tokenizer.decode(example.input_ids[:n])
        assert f"<vibe>{VIBES[i][1]}</vibe>" in tokenizer.decode(example.input_ids[:n])
        # the labelled tokens are exactly the payload JSON and the end-of-turn token
        assert tokenizer.decode(example.labels[n:]) == json.dumps(payload(i)) + "<|im_end|>"
        assert example.labels[-1] == tokenizer.eos_token_id


def test_too_long_rows_are_skipped_and_counted(tiny_base, tmp_path):
    from transformers import AutoTokenizer

    from assay.synth.sft.data import load_examples

    tokenizer = AutoTokenizer.from_pretrained(tiny_base)
    data = load_examples(write_rows(tmp_path / "t.jsonl"), tokenizer, max_seq_len=100)
    assert data.summary() == {"rows": 4, "examples": 0, "skipped": {"no_payload": 1, "too_long": 3}}


def test_missing_file_and_field_are_one_line_errors(tiny_base, tmp_path):
    from transformers import AutoTokenizer

    from assay.synth.sft.data import load_examples

    tokenizer = AutoTokenizer.from_pretrained(tiny_base)
    with pytest.raises(DataError, match="file not found"):
        load_examples(tmp_path / "nope.jsonl", tokenizer)
    path = write_rows(tmp_path / "rows.jsonl")
    with pytest.raises(DataError, match="line 1 has no field 'vibe_typo'") as err:
        load_examples(path, tokenizer, prompt_field="vibe_typo")
    assert "\n" not in str(err.value)
    with pytest.raises(DataError, match="line 1 has no field 'payload'"):
        load_examples(path, tokenizer, target_field="payload")


def test_assistant_loss_equals_the_hf_labels_loss(tiny_base):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from assay.synth.sft.data import Example, collate, encode_conversation
    from assay.synth.sft.loop import assistant_loss

    tokenizer = AutoTokenizer.from_pretrained(tiny_base)
    model = AutoModelForCausalLM.from_pretrained(tiny_base).eval()
    # short conversations (HF's loss computes logits everywhere); two lengths: right padding is exercised
    examples = []
    for vibe, answer in [
        ("rain", '{"title": "Rain"}'),
        ("a long slow winter night", '{"title": "Night", "x": [1, 2]}'),
    ]:
        ids, labels = encode_conversation(
            tokenizer, [{"role": "user", "content": f"<vibe>{vibe}</vibe>"}, {"role": "assistant", "content": answer}]
        )
        examples.append(Example(vibe, ids, labels))
    batch = collate(examples, tokenizer.pad_token_id)
    assert (
        examples[0].input_ids != examples[1].input_ids
        and batch["attention_mask"][0].sum() < batch["input_ids"].shape[1]
    )
    with torch.no_grad():
        summed, n = assistant_loss(model, batch)
        reference = model(**batch).loss  # HF shifts the labels and ignores -100
    assert n == int((batch["labels"][:, 1:] != -100).sum())
    assert torch.allclose(summed / n, reference, atol=1e-5)


# --- LoRA: adapters and the merge ---------------------------------------------------------------


def test_merged_model_equals_base_plus_adapter(tiny_base, tmp_path):
    from assay.llm.local import load_model
    from assay.synth.sft.lora import export, load_adapter, load_base, save_adapter, wrap

    model, tokenizer, _ = load_base(f"local/{tiny_base}")
    peft = wrap(model, 4, 8, 0.0, ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"])
    torch.manual_seed(1)
    with torch.no_grad():  # LoRA's B starts at 0 (a no-op adapter): give it weight
        for name, p in peft.named_parameters():
            if "lora_" in name:
                p.normal_(0, 0.2)
    peft.eval()
    probe = torch.tensor([tokenizer.encode('{"title": "Rain at midnight", "config": {"tempo"')])
    with torch.no_grad():
        adapted = peft(input_ids=probe).logits
        with peft.disable_adapter():
            plain = peft(input_ids=probe).logits
    assert not torch.allclose(adapted, plain, atol=1e-3)  # the adapter changes the outputs

    adapter = tmp_path / "adapter"
    save_adapter(peft, adapter, {"base": f"local/{tiny_base}"})
    assert {p.name for p in adapter.iterdir()} >= {"adapter_model.safetensors", "adapter_config.json", "sft.json"}
    reloaded, _, _ = load_adapter(adapter)
    with torch.no_grad():
        assert torch.allclose(reloaded(input_ids=probe).logits, adapted, atol=1e-6)

    merged_dir = tmp_path / "merged"
    export(adapter, merged_dir)
    assert (merged_dir / "model.safetensors").is_file() and (merged_dir / "tokenizer.json").is_file()
    assert not list(merged_dir.glob("*.bin"))
    lm = load_model(str(merged_dir))  # what `--model local/PATH` does
    assert lm.source == "dir"
    with torch.no_grad():
        merged = lm.model(input_ids=probe).logits
    # fp32: folding B @ A * scale into W rounds differently from adding it after the matmul
    assert (merged - adapted).abs().max() < 1e-4 * adapted.abs().max()


# --- the loop: loss falls, resume is exact ------------------------------------------------------


def test_loss_falls_and_resume_continues_exactly(tiny_base, tmp_path):
    from safetensors.torch import load_file

    from assay.synth.sft.loop import train_sft

    data = write_rows(tmp_path / "SFT-Train.jsonl")
    val = write_rows(tmp_path / "SFT-Val.jsonl", n=1, with_null=False)
    straight = train_sft(sft_config(tmp_path / "straight", tiny_base, data, val))
    assert straight["finished"] and straight["steps"] == 6
    assert straight["train"] == {"rows": 4, "examples": 3, "skipped": {"no_payload": 1}}
    full = losses(tmp_path / "straight")
    assert len(full) == 6 and all(map(lambda x: x == x, full))
    assert full[-1] < full[0] - 0.5, full  # it learns the rows
    assert len(losses(tmp_path / "straight", "val_loss")) == 2  # steps 3 and 6

    cfg = sft_config(tmp_path / "resumed", tiny_base, data, val)
    cfg.log.backend = "tensorboard"  # the tracker continues too (assay.tracking)
    first = train_sft(cfg, stop_after=3)
    assert not first["finished"] and not (tmp_path / "resumed" / "adapter").exists()
    state = json.loads((tmp_path / "resumed" / "checkpoint" / "state.json").read_text())
    assert state["step"] == 3 and state["cursor"] == 6 and sorted(state["order"]) == [0, 1, 2]
    assert not list((tmp_path / "resumed").rglob("*.bin")) and not list((tmp_path / "resumed").rglob("*.pt"))
    # a kill between the two renames of a checkpoint swap leaves only checkpoint.old: resume from it
    os.replace(tmp_path / "resumed" / "checkpoint", tmp_path / "resumed" / "checkpoint.old")
    second = train_sft(cfg, resume=True)
    assert second["finished"]
    assert (tmp_path / "resumed" / "checkpoint").is_dir() and not (tmp_path / "resumed" / "checkpoint.old").exists()
    assert losses(tmp_path / "resumed") == full  # identical, not just close
    tracked = tensorboard_scalars(tmp_path / "resumed")["train_loss"]
    assert list(tracked) == [1, 2, 3, 4, 5, 6] and list(tracked.values()) == pytest.approx(full, rel=1e-6)
    assert losses(tmp_path / "resumed", "val_loss") == losses(tmp_path / "straight", "val_loss")
    a = load_file(str(tmp_path / "straight" / "adapter" / "adapter_model.safetensors"))
    b = load_file(str(tmp_path / "resumed" / "adapter" / "adapter_model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_gradient_checkpointing_takes_the_same_steps(tiny_base, tmp_path):
    from safetensors.torch import load_file

    from assay.synth.sft.loop import train_sft

    data = write_rows(tmp_path / "SFT-Train.jsonl")
    for name, flag in (("plain", False), ("ckpt", True)):
        train_sft(sft_config(tmp_path / name, tiny_base, data, max_steps=2, gradient_checkpointing=flag))
    assert losses(tmp_path / "plain") == pytest.approx(losses(tmp_path / "ckpt"), rel=1e-6)
    a = load_file(str(tmp_path / "plain" / "adapter" / "adapter_model.safetensors"))
    b = load_file(str(tmp_path / "ckpt" / "adapter" / "adapter_model.safetensors"))
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)  # same dropout masks in the recomputation


def test_resume_refuses_other_data_and_fresh_run_refuses_old_folder(tiny_base, tmp_path):
    from assay.synth.sft.loop import train_sft

    data = write_rows(tmp_path / "a.jsonl")
    cfg = sft_config(tmp_path / "run", tiny_base, data, max_steps=2)
    train_sft(cfg, stop_after=1)
    with pytest.raises(AssayError, match="already holds a run"):
        train_sft(cfg)
    other = copy.deepcopy(cfg)
    other.data.train = str(write_rows(tmp_path / "b.jsonl", n=2))
    with pytest.raises(DataError, match="not the training data"):
        train_sft(other, resume=True)
    with pytest.raises(AssayError, match="nothing to resume"):
        train_sft(sft_config(tmp_path / "empty", tiny_base, data), resume=True)
    # --overwrite deletes the run's files (not the folder's others) and trains afresh
    (tmp_path / "run" / "notes.txt").write_text("mine")
    with pytest.raises(AssayError, match="exclusive"):
        train_sft(cfg, resume=True, overwrite=True)
    train_sft(cfg, overwrite=True)
    assert (tmp_path / "run" / "notes.txt").read_text() == "mine"
    assert len(losses(tmp_path / "run")) == 2  # this run's two steps, nothing of the old one


# --- CLI ----------------------------------------------------------------------------------------


def run_cli(args: list[str], capsys) -> tuple[int, str, str]:
    from assay.cli.main import main

    with pytest.raises(SystemExit) as exit_info:
        main(args)
    captured = capsys.readouterr()
    return exit_info.value.code, captured.out, captured.err


def test_cli_train_resume_and_export(tiny_base, tmp_path, capsys):
    from assay.llm.local import load_model

    data = write_rows(tmp_path / "SFT-Train.jsonl")
    val = write_rows(tmp_path / "SFT-Val.jsonl", n=1, with_null=False)
    out = tmp_path / "run"
    sets = ["--set", "train.max_steps=2", "--set", "train.grad_accum=1", "--set", "lora.r=2", "--set", "run.threads=1"]
    args = ["synth", "train-sft", "--data", str(data), "--val", str(val), "--base", f"local/{tiny_base}"]
    code, stdout, _ = run_cli([*args, "--out", str(out), *sets], capsys)
    assert code == 0, stdout
    assert json.loads(stdout[: stdout.rindex("}") + 1])["steps"] == 2
    assert json.loads((out / "config.json").read_text())["lora"]["r"] == 2
    # more steps on the same run: --resume keeps the saved config, --set extends it
    code, stdout, _ = run_cli(
        ["synth", "train-sft", "--out", str(out), "--resume", "--set", "train.max_steps=3"], capsys
    )
    assert code == 0 and len(losses(out)) == 3
    code, stdout, _ = run_cli(["synth", "export-sft", str(out), "--out", str(tmp_path / "merged")], capsys)
    assert code == 0 and "merged" in stdout
    assert load_model(str(tmp_path / "merged")).source == "dir"


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--data", "missing.jsonl"], "error: file not found: missing.jsonl"),
        (["--data", "{data}", "--set", "train.max_stpes=3"], "did you mean 'max_steps'"),
        (["--data", "{data}", "--base", "openai/gpt-4o"], "use local/smollm2 or local/PATH"),
        (["--data", "{data}", "--resume"], "nothing to resume"),
        (["--data", "{data}", "--set", "lora.target_modules=[nope]"], "no module named nope"),
    ],
)
def test_cli_errors_are_one_line(tiny_base, tmp_path, capsys, extra, message):
    data = write_rows(tmp_path / "rows.jsonl")
    extra = [e.replace("{data}", str(data)) for e in extra]
    base = [] if "--base" in extra else ["--base", f"local/{tiny_base}"]
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        code, _, err = run_cli(["synth", "train-sft", *base, "--out", str(tmp_path / "run"), *extra], capsys)
    finally:
        os.chdir(cwd)
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("error: ") and message in err, err


def test_export_of_a_folder_without_adapter_is_one_line(tmp_path, capsys):
    code, _, err = run_cli(["synth", "export-sft", str(tmp_path), "--out", str(tmp_path / "m")], capsys)
    assert code == 2 and err.startswith("error: ") and "holds no LoRA adapter" in err and err.count("\n") == 1
