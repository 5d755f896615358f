"""Split rows -> chat messages -> token ids with labels on the assistant's tokens only.

One training example is the conversation the configs step had with the LLM, answered well:

    system     the configs step's instructions + payload JSON Schema (`configs.system_prompt`)
    user       <vibe>{row[prompt_field]}</vibe>               (`configs.build_messages`)
    assistant  json.dumps(row[target_field])                  (the selected payload)

Tokens are those the model sees at inference: the prompt is the chat template rendered with
`add_generation_prompt=True` and encoded alone (as `assay.llm.local.prompt_ids` does), then the
rest of the rendered conversation -- the assistant's text and its end-of-turn token -- is encoded
and appended. Labels are -100 on every prompt token and equal the input ids on the completion,
up to and including the end-of-turn token (anything the template puts after it is dropped).
Rows whose target is null (no valid candidate) or whose tokens exceed `max_seq_len` are skipped
and counted; a missing file, a row without the prompt field or with a non-object target is a
one-line DataError.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from assay.errors import DataError
from assay.model.transformer import IGNORE_INDEX  # the label torch's cross-entropy skips


@dataclass
class Example:
    row_id: str
    input_ids: list[int]
    labels: list[int]  # IGNORE_INDEX on the prompt, = input_ids on the completion

    @property
    def prompt_len(self) -> int:
        return next(i for i, label in enumerate(self.labels) if label != IGNORE_INDEX)


@dataclass
class SFTData:
    examples: list[Example]
    rows: int  # rows read
    skipped: dict[str, int] = field(default_factory=dict)  # reason -> rows

    def summary(self) -> dict[str, Any]:
        return {"rows": self.rows, "examples": len(self.examples), "skipped": dict(self.skipped)}


def prompt_messages(vibe: str) -> list[dict[str, str]]:
    """System (instructions + schema) and `<vibe>...</vibe>` user turn: the configs step's own."""
    from assay.synth.music_configs import build_messages

    return build_messages(vibe)


def completion_text(payload: dict[str, Any]) -> str:
    """The assistant's answer: the payload as the local guided decoder writes it (`json.dumps`)."""
    return json.dumps(payload)


def chat_messages(vibe: str, payload: dict[str, Any]) -> list[dict[str, str]]:
    return prompt_messages(vibe) + [{"role": "assistant", "content": completion_text(payload)}]


def encode_prompt(tokenizer, messages: list[dict[str, str]]) -> tuple[str, list[int]]:
    """(text, ids) of the prompt up to and including the assistant header."""
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    return text, tokenizer.encode(text, add_special_tokens=False)


def end_of_turn_id(tokenizer) -> int:
    eos = tokenizer.eos_token_id
    if not isinstance(eos, int):
        raise DataError("the tokenizer has no end-of-sequence token to end the assistant's turn with")
    return eos


def encode_conversation(tokenizer, messages: list[dict[str, str]]) -> tuple[list[int], list[int]]:
    """(input_ids, labels) of a conversation whose last turn is the assistant's."""
    if not messages or messages[-1]["role"] != "assistant":
        raise ValueError("the last message must be the assistant's")
    prompt_text, prompt_ids = encode_prompt(tokenizer, messages[:-1])
    full = tokenizer.apply_chat_template(messages, tokenize=False)
    if not full.startswith(prompt_text):
        raise DataError("the chat template does not render the prompt as a prefix of the conversation")
    completion = tokenizer.encode(full[len(prompt_text) :], add_special_tokens=False)
    eot = end_of_turn_id(tokenizer)
    completion = completion[: completion.index(eot) + 1] if eot in completion else [*completion, eot]
    return prompt_ids + completion, [IGNORE_INDEX] * len(prompt_ids) + completion


def load_examples(
    path: str | Path,
    tokenizer,
    prompt_field: str = "vibe_noisy",
    target_field: str = "config_payload",
    max_seq_len: int = 4096,
    limit: int | None = None,
) -> SFTData:
    """Every usable row of a split file as an `Example` (file order), with the skipped rows counted."""
    examples: list[Example] = []
    skipped: dict[str, int] = {}
    rows = 0
    for lineno, row, vibe, payload in checked_rows(path, prompt_field, target_field):
        if limit is not None and len(examples) >= limit:
            break
        rows += 1
        if payload is None:
            skipped["no_payload"] = skipped.get("no_payload", 0) + 1
            continue
        ids, labels = encode_conversation(tokenizer, chat_messages(vibe, payload))
        if len(ids) > max_seq_len:
            skipped["too_long"] = skipped.get("too_long", 0) + 1
            continue
        examples.append(Example(str(row.get("row_id", f"line{lineno}")), ids, labels))
    return SFTData(examples, rows, skipped)


def checked_rows(
    path: str | Path, prompt_field: str, target_field: str
) -> Iterator[tuple[int, dict[str, Any], str, dict[str, Any] | None]]:
    """(line number, row, vibe, payload) for every row of a split file, checked: a JSON object
    with a non-empty string vibe and an object (or null: no valid candidate) payload."""
    from assay.io import JSONL_MAX, check_size, iter_jsonl

    path = Path(path)
    for lineno, row in iter_jsonl(check_size(path, JSONL_MAX, "an SFT split file")):
        if not isinstance(row, dict):
            raise DataError(f"{path} line {lineno}: a row must be a JSON object")
        where = f"{path} line {lineno}"
        if prompt_field not in row:
            raise DataError(f"{where} has no field {prompt_field!r} (fields: {', '.join(row)})")
        if target_field not in row:
            raise DataError(f"{where} has no field {target_field!r} (fields: {', '.join(row)})")
        vibe, payload = row[prompt_field], row[target_field]
        if not isinstance(vibe, str) or not vibe.strip():
            raise DataError(f"{where}: field {prompt_field!r} is not a non-empty string")
        if payload is not None and not isinstance(payload, dict):
            raise DataError(f"{where}: field {target_field!r} is not a JSON object")
        yield lineno, row, vibe, payload


def check_split(path: str | Path, prompt_field: str, target_field: str) -> int:
    """The rows of a split file that can become examples, after checking every row: a bad file
    fails here, at once, not after the base model has loaded."""
    usable = sum(payload is not None for *_, payload in checked_rows(path, prompt_field, target_field))
    if not usable:
        raise DataError(f"{path}: no usable rows (no row has a {target_field})")
    return usable


def collate(examples: list[Example], pad_id: int) -> dict[str, Any]:
    """Right-padded tensors: input_ids, labels (IGNORE_INDEX on padding), attention_mask, all [b, T]."""
    import torch

    width = max(len(e.input_ids) for e in examples)
    ids = torch.full((len(examples), width), pad_id, dtype=torch.long)
    labels = torch.full((len(examples), width), IGNORE_INDEX, dtype=torch.long)
    mask = torch.zeros((len(examples), width), dtype=torch.long)
    for i, e in enumerate(examples):
        n = len(e.input_ids)
        ids[i, :n] = torch.tensor(e.input_ids)
        labels[i, :n] = torch.tensor(e.labels)
        mask[i, :n] = 1
    return {"input_ids": ids, "labels": labels, "attention_mask": mask}


def target_tokens(examples: list[Example]) -> int:
    """Tokens the loss is taken on (each label predicts from the position before it)."""
    return sum(sum(label != IGNORE_INDEX for label in e.labels[1:]) for e in examples)
