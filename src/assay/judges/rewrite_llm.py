"""The llm rewriter: any model of assay.llm rewrites spans of real passages (`assay judge train
--rewriter llm --model M`).

For every sample: a passage of block_size - 1 characters of the corpus's split (at a random offset
for training, at fixed consecutive offsets for validation; a pure function of seed, split and shard
number), `spans` word-aligned spans in it (each covering a share of the passage drawn from `rate`),
and per span one chat request that shows the passage with that span marked [[like this]] and asks
for replacement text only (`build_messages`). The answer is cleaned (`clean_answer`) and spliced in;
the characters it put there are labelled 1, every other character 0, and the text continues with
the corpus's own text after the passage, so the sample keeps its length. Tokens are the LM's
(character-level only: a span's characters are its tokens), characters it does not know are
[UNK] and never scored. An answer equal to the span changed nothing and is labelled 0.

Fields per sample, as the synthetic provider's: idx, token_labels, score (the fraction of scored
tokens labelled 1), rate (the share of the passage's characters that was asked to be rewritten) and
original ([CLS] + the passage as it was: `assay score --pairs` reads it).

Every call goes through the LLM client, with its cache (OUT/llm.sqlite unless --cache says
otherwise): a rerun or a resumed stream replays the answers. Quality depends on the model: the
small local model (local/smollm2) often ignores the instruction, answers with more than the span or
repeats it; an answer is cut to at most twice the span's length (and to one line when the span has
no line break).
"""

from __future__ import annotations

import asyncio
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch

from assay.data.tokens import split_texts
from assay.errors import ConfigError, DataError
from assay.judges.rewriters import LLMRewrite, Sources, fingerprint, write_stream
from assay.llm import ChatRequest, LLMClient
from assay.model.transformer import IGNORE_INDEX
from assay.progress import console
from assay.rng import stable_rng

MODE = "rewrite_llm"
OPEN, CLOSE = "[[", "]]"
SYSTEM = (
    "You are an editor. You get a passage in which one part is marked [[like this]]. Write new text to "
    "replace the marked part: it must fit the words around it, keep the passage's style, and be about as "
    "long as the marked part. Reply with the replacement text only: no brackets, no quotes, no comments."
)
USER = "Passage:\n{before}[[{span}]]{after}\n\nReplacement for the marked part (about {n} characters):"


def pick_spans(passage: str, n: int, rate: tuple[float, float], rng) -> list[tuple[int, int]]:
    """Up to `n` non-overlapping [start, end) character spans of whole words (no surrounding
    whitespace), one in each of n equal runs of the passage's words, each about `rate` of the
    passage long (drawn per span)."""
    words = [(m.start(), m.end()) for m in re.finditer(r"\S+", passage)]
    spans = []
    for k in range(n):
        group = words[k * len(words) // n : (k + 1) * len(words) // n]
        if not group:
            continue
        target = rng.uniform(*rate) * len(passage) / n
        i = rng.randrange(len(group))
        j = i
        while j + 1 < len(group) and group[j][1] - group[i][0] < target:
            j += 1
        spans.append((group[i][0], group[j][1]))
    return spans


def build_messages(passage: str, start: int, end: int) -> list[dict[str, str]]:
    """The request for one span (kept apart from the call: the prompt is tested and cached as is)."""
    user = USER.format(before=passage[:start], span=passage[start:end], after=passage[end:], n=end - start)
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": user}]


def clean_answer(answer: str, span: str) -> str:
    """The replacement text in an answer: without surrounding whitespace or an echoed [[...]] marker;
    its first line if the span is one line; without wrapping quotes; at most 2 x len(span) + 8 characters (cut
    at a space where there is one)."""
    text = answer.strip()
    if text.startswith(OPEN) and CLOSE in text:
        text = text[len(OPEN) : text.index(CLOSE)].strip()
    if "\n" not in span and text:
        text = text.splitlines()[0].strip()
    if len(text) >= 2 and text[0] in "\"'“" and text[-1] in "\"'”" and span[:1] not in "\"'“":
        text = text[1:-1].strip()
    limit = 2 * len(span) + 8
    if len(text) > limit:
        cut = text.rfind(" ", 0, limit)
        text = text[: cut if cut > 0 else limit].rstrip()
    return text


def splice(text: str, spans: list[tuple[int, int]], answers: list[str]) -> tuple[str, np.ndarray]:
    """`text` with each span replaced by its answer, and per character of the result 1 where an
    answer went (0 if the answer equals the span: nothing was rewritten)."""
    parts, labels, pos = [], [], 0
    for (start, end), answer in sorted(zip(spans, answers, strict=True)):
        parts += [text[pos:start], answer]
        labels += [np.zeros(start - pos, np.int8), np.full(len(answer), int(answer != text[start:end]), np.int8)]
        pos = end
    parts.append(text[pos:])
    labels.append(np.zeros(len(text) - pos, np.int8))
    return "".join(parts), np.concatenate(labels)


class LLMShards:
    """Shard (split, seq) of the llm rewriter; see the module docstring."""

    def __init__(self, cfg: LLMRewrite, src: Sources, client: LLMClient):
        if src.tokenizer.kind != "char":
            raise ConfigError("the llm rewriter needs a character-level LM (lm.data.tokenizer = char)")
        self.cfg, self.tokenizer, self.client = cfg, src.tokenizer, client
        self.width = cfg.block_size - 1  # characters (= tokens) of text per sample
        _, _, texts = split_texts(src.data)
        self.texts = texts
        for split, name in (("train", "training"), ("val", "validation")):
            if len(texts[split]) < 2 * self.width:
                raise DataError(
                    f"corpus {src.data.corpus!r}: its {name} split has {len(texts[split]):,} characters, fewer "
                    f"than the {2 * self.width} the llm rewriter reads per passage (lower rewrite.block_size)"
                )
        self.val_starts = np.arange(0, len(texts["val"]) - 2 * self.width + 1, self.width)

    def starts(self, split: str, seq: int, rng) -> list[int]:
        n = self.cfg.shard_size
        if split == "val":
            return [int(self.val_starts[i % len(self.val_starts)]) for i in range(seq * n, (seq + 1) * n)]
        return [rng.randrange(len(self.texts["train"]) - 2 * self.width + 1) for _ in range(n)]

    def __call__(self, split: str, seq: int) -> dict[str, torch.Tensor]:
        cfg, width = self.cfg, self.width
        rng = stable_rng(cfg.seed, "llm-rewrite", split, seq)
        text = self.texts[split]
        windows = [text[s : s + 2 * width] for s in self.starts(split, seq, rng)]  # passage + what follows
        spans = [pick_spans(w[:width], cfg.spans, cfg.rate, rng) for w in windows]
        requests = [
            ChatRequest(
                model="",
                messages=build_messages(w[:width], a, b),
                temperature=cfg.temperature,
                max_tokens=cfg.max_tokens,
                seed=cfg.seed,
            )
            for w, ss in zip(windows, spans, strict=True)
            for a, b in ss
        ]
        answers = iter(_run(self._complete(requests)))
        ids, labels, originals, scores, rates = [], [], [], [], []
        for w, ss in zip(windows, spans, strict=True):
            new, char_labels = splice(w, ss, [clean_answer(next(answers), w[a:b]) for a, b in ss])
            tokens = np.asarray(self.tokenizer.encode(new[:width]), dtype=np.int64)
            label = char_labels[:width].astype(np.int64)
            label[np.isin(tokens, self.tokenizer.special_ids)] = IGNORE_INDEX  # [UNK]
            scored = label != IGNORE_INDEX
            ids.append(tokens)
            labels.append(label)
            originals.append(np.asarray(self.tokenizer.encode(w[:width]), dtype=np.int64))
            scores.append((label == 1).sum() / max(scored.sum(), 1))
            rates.append(sum(b - a for a, b in ss) / width)
        cls = np.full((len(ids), 1), self.tokenizer.cls_id)
        ignored = np.full_like(cls, IGNORE_INDEX)
        return {
            "idx": torch.from_numpy(np.concatenate([cls, np.stack(ids)], 1)).int(),
            "token_labels": torch.from_numpy(np.concatenate([ignored, np.stack(labels)], 1)).int(),
            "score": torch.tensor(scores, dtype=torch.float32),
            "rate": torch.tensor(rates, dtype=torch.float32),
            "original": torch.from_numpy(np.concatenate([cls, np.stack(originals)], 1)).int(),
        }

    async def _complete(self, requests: list[ChatRequest]) -> list[str]:
        """The answers' texts, in order (the client bounds how many are in flight)."""
        responses = await asyncio.gather(*(self.client.complete(r) for r in requests))
        return [r.text for r in responses]


def _run(coroutine):
    """Run a coroutine to its end from sync code, also when the caller has a loop running (a notebook)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coroutine)
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


def rewrite_with_llm(cfg: LLMRewrite, src: Sources, out: Path) -> None:
    """The stream of passages rewritten by the LLM of `src.llm` (see the module docstring)."""
    client = LLMClient(src.llm)
    try:
        shards = LLMShards(cfg, src, client)
        digest = fingerprint(
            MODE, cfg.model_dump(), src.tokenizer.fingerprint(), src.data.model_dump(exclude={"cache_dir", "stream"}),
            src.llm.model, src.llm.api_base, SYSTEM, USER,
        )  # fmt: skip
        write_stream(out, shards, src=src, cfg=cfg, val_shards=cfg.val_shards, mode=MODE, digest=digest)
    finally:
        client.close()
    if src.show:
        u = client.usage.summary()
        console.print(
            f"LLM {src.llm.model}: {u['requests']} requests ({u['cache_hits']} from the cache), "
            f"{u['prompt_tokens'] + u['completion_tokens']:,} tokens, ${u['cost_usd']:.4f}"
        )
