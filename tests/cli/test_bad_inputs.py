"""Every `assay` command fed the bad inputs that apply to it (issue 18): a missing, empty, non-UTF-8,
NUL-laden or multi-GB file; a zero or negative number; a corrupt or truncated checkpoint, JSON or
JSONL file; a checkpoint of the wrong vocabulary or mode; a full disk. Each case must end with

    exit status 2; on stderr one line starting with `error: `, the last one (before it only the
    command's own progress output, e.g. a training log), no traceback and no other exception's or
    warning's line; and every file that was there before left as it was (bytes and mtime; after a
    full disk a JSONL log may have gained whole rows at its end, nothing else).

A case whose command refuses its input must not create files either; after a full disk, new files
are allowed (a resumable partial output) but no temporary file and no torn JSONL row.

The commands run as real processes forked from one that has already imported assay and torch (a
"zygote"), so a case costs what its command does, not an interpreter start.
ASSAY_BAD_INPUTS_PROCESSES=1 runs each case as a fresh `python -m assay` instead (slower, same results).
ASSAY_BAD_INPUTS_TABLE=PATH writes the table of the cases and their messages (Markdown) for the docs.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import resource
import select
import shlex
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from assay import configs
from tests.conftest import ROOT, assay_cmd, tiny_tree, write_toml

GIB = 1 << 30
HUGE = 4 * GIB  # sparse: no disk used; every limit on a file read whole is below it
TIMEOUT_S = 120
PAYLOAD = ROOT / "tests" / "music" / "data" / "payload_valid.json"
EXCEPTION = re.compile(r"Traceback|^\w*(Error|Exception|Warning)\b|^error: ", re.MULTILINE)


# -- the cases ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Case:
    """One command on one bad input. `command` is the `assay` command line, with the fixtures named
    as {placeholders} (see `paths`; {work} is the case's own folder)."""

    group: str  # the subcommand, for the id and the table
    bad: str  # the bad input, in words
    command: str
    expect: str = ""  # a fragment of the error line
    fsize: int | None = None  # a full disk: RLIMIT_FSIZE of the process, in bytes
    prep: Callable[[Path, dict[str, str]], None] | None = None  # files to make in the case's folder first
    lead: str | None = None  # a strict xfail: the fix lies outside this change's files (whose, and what)

    @property
    def id(self) -> str:
        return f"{self.group}: {self.bad}".replace(" ", "-")

    def argv(self, names: dict[str, str]) -> list[str]:
        return [word.format(**names) for word in shlex.split(self.command)]


def copy_into(name: str, source: str):
    """A prep step: copy fixture `source` (a placeholder) into the case's folder as `name`."""

    def prep(work: Path, paths: dict[str, str]) -> None:
        shutil.copytree(paths[source], work / name)

    return prep


def write_file(name: str, data: bytes):
    def prep(work: Path, paths: dict[str, str]) -> None:
        (work / name).parent.mkdir(parents=True, exist_ok=True)
        (work / name).write_bytes(data)

    return prep


def one_row_done(work: Path, paths: dict[str, str]) -> None:
    """A `synth configs` output with the first of two rows done (padded: larger than run_config.json)."""
    row = {"row_id": "v1", "config_payload": None, "pad": "x" * 8000}
    write_file("out/TEST.jsonl", (json.dumps(row) + "\n").encode())(work, paths)


FILES = {  # kind of bad file -> its name in {bad}
    "missing": "missing.txt",
    "empty": "empty.txt",
    "non-UTF-8": "latin1.txt",
    "NUL bytes": "nul.txt",
    "truncated JSONL row": "trunc.jsonl",
    "one cut JSONL row": "cut.jsonl",
    "truncated JSON": "trunc.json",
    "4 GiB": "huge.txt",
}
JSONL_KINDS = {  # a JSONL input: kind -> the fragment its error shows
    "missing": "not found",
    "non-UTF-8": "is not UTF-8 text",
    "NUL bytes": "is not valid JSON",
    "truncated JSONL row": "line 2 is not valid JSON",
    "4 GiB": "is too large (4 GiB)",
}
CONFIG_KINDS = {  # a TOML config given with -c
    "missing": "config not found",
    "empty": "is empty",
    "non-UTF-8": "is not valid TOML",
    "NUL bytes": "is not valid TOML",
    "4 GiB": "is too large (4 GiB",
}


def file_cases(group: str, command: str, what: str, kinds: dict[str, str]) -> list[Case]:
    """`command` with FILE replaced by each kind of bad file: kind -> the fragment its error shows."""
    return [
        Case(group, f"{what}: {kind}", command.replace("FILE", "{bad}/" + FILES[kind]), expect)
        for kind, expect in kinds.items()
    ]


def checkpoint_cases(group: str, command: str) -> list[Case]:
    """`command` on a checkpoint (RUN) corrupted in each way a crash or a bad copy leaves one."""
    return [
        Case(group, "missing run", command.replace("RUN", "{bad}/no-such-run"), "does not exist"),
        Case(group, "garbage model.safetensors", command.replace("RUN", "{ckpt_garbage}"), "cannot load model"),
        Case(group, "truncated model.safetensors", command.replace("RUN", "{ckpt_trunc}"), "cannot load model"),
        Case(group, "truncated config.json", command.replace("RUN", "{ckpt_config}"), "is corrupt"),
        Case(group, "truncated state.json", command.replace("RUN", "{ckpt_state}"), "is corrupt"),
        Case(
            group,
            "a tokenizer of another vocabulary than the model's",
            command.replace("RUN", "{ckpt_vocab}"),
            "vocab",
        ),
    ]


def split_cases(group: str, command: str, kinds=None) -> list[Case]:
    """A step reading <input-dir>/<split>.jsonl, on folders whose split files are all bad (DIR)."""
    kinds = kinds or {
        "missing": ("missing split files", "missing split file"),
        "empty": ("empty split files", "hold no rows"),
        "latin1": ("non-UTF-8 split files", "is not UTF-8 text"),
        "nul": ("split files with NUL bytes", "is not valid JSON"),
        "trunc": ("split files with a truncated row", "line 2 is not valid JSON"),
        "huge": ("4 GiB split files", "is too large (4 GiB)"),
    }
    return [Case(group, bad, command.replace("DIR", "{splits_" + k + "}"), e) for k, (bad, e) in kinds.items()]


OUTSIDE = "lead (outside this test's files): "
LLM = "--model openai/x --api-base http://127.0.0.1:9/v1"  # never reached: the input fails first
SCRIPTED = "--model openai/scripted --api-base {api} --set configs.splits=[TEST] --set runner.progress=false"

CASES: list[Case] = [
    # -- assay train
    *file_cases("train", "train -c FILE", "config", CONFIG_KINDS),
    Case("train", "max_iters 0", "train -c {tiny_toml} --set train.max_iters=0", "train.max_iters"),
    Case("train", "batch_size -1", "train -c {tiny_toml} --set train.batch_size=-1", "train.batch_size"),
    Case("train", "--resume of a missing run", "train --out {bad}/no-such-run --resume", "does not exist"),
    Case("train", "--resume, state.json truncated", "train --out {run_state} --resume", "corrupt"),
    Case("train", "--resume RUN/last, state.json truncated", "train --out {run_state}/last --resume", "corrupt"),
    Case("train", "--resume, garbage model.safetensors", "train --out {run_garbage} --resume", "cannot load model"),
    Case(
        "train",
        "into a run without --overwrite",
        "train -c {tiny_toml} --set run.out_dir={work}/run",
        "--overwrite",
        prep=copy_into("run", "lm"),
    ),
    Case(
        "train",
        "full disk on --resume (checkpoint write)",
        "train --out {work}/run --resume --set train.max_iters=34",
        "disk full",
        fsize=64 << 10,
        prep=copy_into("run", "lm"),
    ),
    # -- assay eval
    Case("eval", "--blocks 0", "eval {lm} --blocks 0", "--blocks"),
    Case("eval", "--blocks -1", "eval {lm} --blocks -1", "--blocks"),
    Case("eval", "--elbo-points 0", "eval {lm} --elbo-points 0", "--elbo-points"),
    Case("eval", "--checkpoint lsat", "eval {lm} --checkpoint lsat", "'lsat' is not one of"),
    *checkpoint_cases("eval", "eval RUN --blocks 1"),
    Case("eval", "--stream of another tokenizer", "eval {scorer} --stream {stream_other}", "another tokenizer"),
    Case("eval", "--stream missing", "eval {lm} --stream {bad}/no-such-stream", "does not exist"),
    *file_cases(
        "eval",
        "eval {lm} --corpus FILE",
        "--corpus",
        {"non-UTF-8": "is not UTF-8 text", "NUL bytes": "NUL bytes", "empty": "holds no text"},
    ),
    Case(
        "eval",
        "4 GiB --corpus",
        "eval {lm} --corpus {bad}/huge.txt",
        "is too large",
    ),
    Case(
        "eval",
        "full disk (a judge's calibration.png)",
        "eval {work}/scorer --blocks 1",
        "disk full or file too large: {work}/scorer",
        fsize=4096,
        prep=copy_into("scorer", "scorer"),
    ),
    # -- assay generate
    Case("generate", "--length 0", "generate {lm} --length 0", "--length"),
    Case("generate", "--length -1", "generate {lm} --length -1", "--length"),
    Case("generate", "--steps 0", "generate {lm} --steps 0", "--steps"),
    Case("generate", "--temperature -1", "generate {lm} --temperature -1", "--temperature"),
    Case("generate", "--top-p 0", "generate {lm} --top-p 0", "--top-p"),
    Case("generate", "--checkpoint lsat", "generate {lm} --checkpoint lsat", "'lsat' is not one of"),
    Case("generate", "a judge run", "generate {scorer}", "needs a language_model"),
    *checkpoint_cases("generate", "generate RUN --length 4 --steps 2"),
    # -- assay report
    Case("report", "missing run", "report {bad}/no-such-run", "no eval.json"),
    Case("report", "empty eval.json", "report {report_empty}", "corrupt"),
    Case("report", "truncated eval.json", "report {report_trunc}", "corrupt"),
    Case("report", "non-UTF-8 eval.json", "report {report_latin1}", "not UTF-8"),
    Case("report", "4 GiB eval.json", "report {report_huge}", "is too large (4 GiB)"),
    # -- assay data produce | show
    *file_cases("data produce", "data produce -c FILE --out {work}/stream", "config", CONFIG_KINDS),
    Case("data produce", "--workers 0", "data produce -c {produce_toml} --workers 0", "--workers"),
    Case("data produce", "--shards 0", "data produce -c {produce_toml} --shards 0", "--shards"),
    Case("data produce", "--shards -1", "data produce -c {produce_toml} --shards -1", "--shards"),
    Case(
        "data produce",
        "full disk",
        "data produce -c {produce_toml} --out {work}/stream --shards 2",
        "disk full or file too large: {work}/stream",
        fsize=4096,
    ),
    Case("data show", "missing stream", "data show {bad}/no-such-stream", "not a stream folder"),
    Case("data show", "--index -1", "data show {stream} --index -1", "--index"),
    Case("data show", "--split bogus", "data show {stream} --split bogus", "--split"),
    Case("data show", "truncated meta.json", "data show {stream_meta}", "corrupt"),
    Case("data show", "truncated shard", "data show {stream_shard}", "shard"),
    # -- assay score
    *file_cases("score", "score {judges} --jsonl FILE", "--jsonl", JSONL_KINDS | {"empty": "no rows to score"}),
    *file_cases(
        "score",
        "score {judges} --file FILE",
        "--file",
        {
            "missing": "not found",
            "empty": "cannot score an empty text",
            "non-UTF-8": "is not UTF-8 text",
            "NUL bytes": "NUL bytes",
            "4 GiB": "is too large (4 GiB)",
        },
    ),
    Case("score", "a language-model run as the judge", "score {lm} 'some text'", "holds no judge"),
    Case("score", "missing judge", "score {bad}/no-such-run 'some text'", "does not exist"),
    Case("score", "garbage model.safetensors", "score {judge_garbage} 'some text'", "cannot load model"),
    Case("score", "--k 0", "score {judges} --pairs {stream} --k 0", "--k"),
    Case("score", "--examples -1", "score {judges} --pairs {stream} --examples -1", "--examples"),
    Case("score", "--pairs of another tokenizer", "score {judges} --pairs {stream_other}", "another tokenizer"),
    # -- assay serve (refused before the server starts)
    *file_cases("serve", "serve --judge {judges} -c FILE", "config", CONFIG_KINDS),
    Case("serve", "missing judge", "serve --judge {bad}/no-such-run", "does not exist"),
    Case("serve", "a language-model run as --judge", "serve --judge {lm}", "holds no judge"),
    Case("serve", "a judge run as --lm", "serve --judge {judges} --lm {scorer}", "language_model"),
    Case("serve", "--port -1", "serve --judge {judges} --port -1", "port"),
    # -- assay synth ingest
    *file_cases(
        "synth ingest",
        "synth ingest --out {work}/texts --source jsonl:FILE",
        "jsonl source",
        JSONL_KINDS | {"empty": "has no text"},
    ),
    Case(
        "synth ingest",
        "4 GiB text in a folder source",
        "synth ingest --out {work}/texts --source folder:{huge_texts}",
        "is too large (4 GiB)",
    ),
    Case("synth ingest", "--per-source 0", "synth ingest --out {work}/t --per-source 0", "--per-source"),
    Case(
        "synth ingest",
        "full disk",
        "synth ingest --out {work}/texts --source folder:{texts}",
        "disk full or file too large: {work}/texts/texts.jsonl",
        fsize=4096,
    ),
    # -- assay synth vibes
    *split_cases(
        "synth vibes",
        f"synth vibes --input-dir DIR --out {{work}}/out {LLM}",
        {
            "missing": ("missing input folder", "no input .jsonl files"),
            "empty": ("empty input files", "hold no rows"),
            "latin1": ("non-UTF-8 input files", "is not UTF-8 text"),
            "nul": ("input files with NUL bytes", "is not valid JSON"),
            "trunc": ("input files with a truncated row", "line 2 is not valid JSON"),
            "huge": ("4 GiB input files", "is too large (4 GiB)"),
        },
    ),
    Case(
        "synth vibes",
        "--limit -1",
        f"synth vibes --input-dir {{vibes}} --out {{work}}/o {LLM} --limit -1",
        "--limit",
    ),
    Case(
        "synth vibes",
        "--limit 0",
        f"synth vibes --input-dir {{vibes}} --out {{work}}/o {LLM} --limit 0",
        "limit",
    ),
    Case(
        "synth vibes",
        "--max-concurrency 0",
        f"synth vibes --input-dir {{vibes}} --out {{work}}/o {LLM} --max-concurrency 0",
        "--max-concurrency",
    ),
    Case(
        "synth vibes",
        "an existing output, without --resume or --overwrite",
        f"synth vibes --input-dir {{vibes}} --out {{work}}/out {LLM}",
        "already exists",
        prep=write_file("out/_progress.jsonl", b'{"row_id": "a"}\n'),
    ),
    # -- assay synth configs | score
    *split_cases("synth configs", f"synth configs --input-dir DIR --out {{work}}/out {LLM}"),
    Case(
        "synth configs",
        "--num-candidates 0",
        f"synth configs --input-dir {{vibes}} --out {{work}}/o {LLM} --num-candidates 0",
        "--num-candidates",
    ),
    Case(
        "synth configs",
        "full disk",
        f"synth configs --input-dir {{vibes}} --out {{work}}/out {SCRIPTED}",
        "disk full or file too large: {work}/out/TEST.jsonl",
        fsize=8 << 10,
    ),
    Case(
        "synth configs",
        "full disk on --resume (the next row does not fit)",
        f"synth configs --input-dir {{vibes}} --out {{work}}/out {SCRIPTED} --resume",
        "disk full or file too large: {work}/out/TEST.jsonl",
        fsize=8200,
        prep=one_row_done,
    ),
    *split_cases("synth score", "synth score --input-dir DIR --out {work}/out --scorers audio"),
    Case(
        "synth score",
        "an unknown scorer",
        "synth score --input-dir {vibes} --out {work}/o --scorers bogus",
        "unknown scorer",
    ),
    # -- assay synth benchmark
    *file_cases(
        "synth benchmark",
        "synth benchmark --input FILE --random --out {work}/b",
        "--input",
        JSONL_KINDS | {"empty": "no rows"},
    ),
    Case("synth benchmark", "--limit 0", "synth benchmark --input {vibes}/TEST.jsonl --random --limit 0", "--limit"),
    Case(
        "synth benchmark",
        "--duration 0",
        "synth benchmark --input {vibes}/TEST.jsonl --random --duration 0",
        "--duration",
    ),
    Case(
        "synth benchmark",
        "full disk",
        "synth benchmark --input {vibes}/TEST.jsonl --random --duration 0.5 --out {work}/b",
        "disk full or file too large",
        fsize=4096,
    ),
    # -- assay synth train-sft | export-sft | train-grpo (refused before the base model loads)
    *file_cases(
        "synth train-sft",
        "synth train-sft --data FILE --out {work}/sft",
        "--data",
        JSONL_KINDS | {"empty": "no usable rows"},
    ),
    Case("synth export-sft", "missing adapter", "synth export-sft {bad}/no-such-adapter --out {work}/m", "not found"),
    Case("synth export-sft", "a run that is no adapter", "synth export-sft {lm} --out {work}/m", "no LoRA adapter"),
    *file_cases(
        "synth train-grpo",
        "synth train-grpo --data FILE --base local/smollm2 --out {work}/g",
        "--data",
        JSONL_KINDS | {"empty": "no prompts"},
    ),
    # -- assay correct
    *file_cases("correct run", f"correct run --out {{work}}/c {LLM} -c FILE", "config", CONFIG_KINDS),
    *file_cases(
        "correct run",
        f"correct run --out {{work}}/c {LLM} --dataset jsonl --data FILE",
        "--data",
        {k: v for k, v in JSONL_KINDS.items() if k != "4 GiB"} | {"empty": "no questions"},
    ),
    Case(
        "correct run",
        "4 GiB --data",
        f"correct run --out {{work}}/c {LLM} --dataset jsonl --data {{bad}}/huge.txt",
        "line 1 is longer than 64 Mi characters",
    ),
    Case("correct run", "--max-turns -1", f"correct run --out {{work}}/c {LLM} --max-turns -1", "--max-turns"),
    *file_cases(
        "correct train-classifier",
        "correct train-classifier FILE --out {work}/c",
        "traces",
        {
            "missing": "no such traces file",
            "empty": "no traces",
            "non-UTF-8": "is not UTF-8 text",
            "NUL bytes": "is not valid JSON",
            "one cut JSONL row": "line 1 is not valid JSON",
        },
    ),
    Case(
        "correct train-classifier",
        "4 GiB traces",
        "correct train-classifier {bad}/huge.txt --out {work}/c",
        "line 1 is longer than 64 Mi characters",
    ),
    Case(
        "correct train-classifier",
        "--epochs 0",
        "correct train-classifier {vibes}/TEST.jsonl --out {work}/c --epochs 0",
        "--epochs",
    ),
    # -- assay music
    *file_cases(
        "music render",
        "music render FILE -o {work}/song.wav",
        "config",
        {
            "missing": "no such config file",
            "empty": "is empty",
            "non-UTF-8": "is not UTF-8 text",
            "NUL bytes": "NUL bytes",
            "truncated JSON": "invalid JSON",
            "4 GiB": "is too large (4 GiB)",
        },
    ),
    Case("music render", "--duration 0", "music render {payload} -o {work}/s.wav --duration 0", "duration"),
    Case("music render", "--duration -1", "music render {payload} -o {work}/s.wav --duration -1", "duration"),
    Case(
        "music render",
        "full disk",
        "music render {payload} -o {work}/song.wav --duration 1",
        "disk full or file too large: {work}/song.wav",
        fsize=64 << 10,
    ),
    Case(
        "music render",
        "full disk over an existing WAV",
        "music render {payload} -o {work}/song.wav --duration 1",
        "disk full or file too large: {work}/song.wav",
        fsize=64 << 10,
        prep=write_file("song.wav", b"RIFF an earlier render"),
    ),
    *split_cases(
        "music map",
        "music map --input-dir DIR --out {work}/map",
        {
            "missing": ("missing split files", "missing split file"),
            "empty": ("split files without a config", "no rows with a selected config"),
            "latin1": ("non-UTF-8 split files", "is not UTF-8 text"),
            "nul": ("split files with NUL bytes", "is not valid JSON"),
            "trunc": ("split files with a truncated row", "line 2 is not valid JSON"),
            "huge": ("4 GiB split files", "is too large (4 GiB)"),
        },
    ),
    Case("music suggest", "missing map", "music suggest rain --map {bad}/no-such-map", "not a retrieval map"),
    Case("music suggest", "-k 0", "music suggest rain --map {map_trunc} -k 0", "-k"),
    Case("music suggest", "truncated map.jsonl", "music suggest rain --map {map_trunc}", "line 2 is not valid JSON"),
    Case("music suggest", "garbage embeddings.safetensors", "music suggest rain --map {map_garbage}", "unreadable"),
    # -- assay experiment
    *file_cases("experiment connectives", "experiment connectives -c FILE", "config", CONFIG_KINDS),
    *file_cases(
        "experiment connectives",
        "experiment connectives -c {connectives_toml} --set strategies.baseline.inventory=FILE "
        "--set experiment.out_dir={work}/x",
        "connective inventory",
        {"non-UTF-8": "is not UTF-8 text", "4 GiB": "is too large (4 GiB)"},
    ),
]


# -- fixtures -------------------------------------------------------------------------------------
def _rows(n: int, pad: str = "") -> list[dict]:
    """Rows every reader of this test accepts as far as their fields go: vibes, texts, payloads."""
    payload = json.loads(PAYLOAD.read_text(encoding="utf-8"))
    return [
        {
            "row_id": f"v{i}",
            "dataset": "d",
            "id_in_dataset": str(i),
            "text": f"The rain fell on the quiet harbour number {i}. " * 8 + pad,
            "vibe_original": f"a quiet harbour in the rain, number {i}",
            "vibe_noisy": f"a quiet harbour in the rain, numbr {i}",
            "config_payload": payload,
            "question": f"What is {i} + 1?",
            "id": str(i),
            "reference_answer": str(i + 1),
        }
        for i in range(1, n + 1)
    ]


def _jsonl(rows: list[dict]) -> bytes:
    return "".join(json.dumps(r) + "\n" for r in rows).encode()


def _huge(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        f.truncate(HUGE)  # sparse: no block is written
    return path


@pytest.fixture(scope="module")
def paths(tmp_path_factory, tiny_lm, judges, tiny_stream) -> dict[str, str]:
    """The fixtures the cases name: bad files, tiny runs and streams, and their corrupt copies."""
    root = tmp_path_factory.mktemp("bad-inputs")
    bad = root / "bad"
    bad.mkdir()
    good = _rows(2)
    trunc = _jsonl(good[:1]) + _jsonl(good[1:])[:40]  # the second row cut in half
    files = {
        "empty.txt": b"",
        "latin1.txt": "caf\u00e9 cr\u00e8me\n".encode("latin-1"),
        "nul.txt": b"some text\x00with a NUL byte\n",
        "trunc.jsonl": trunc,
        "cut.jsonl": _jsonl(good[:1])[:40],
        "trunc.json": b'{"tempo": "slow", "bright',
    }
    for name, data in files.items():
        (bad / name).write_bytes(data)
    _huge(bad / "huge.txt")
    p = {"bad": str(bad), "lm": str(tiny_lm), "judges": str(judges), "scorer": str(judges / "scorer")}
    p |= {"stream": str(tiny_stream), "payload": str(PAYLOAD)}
    p["connectives_toml"] = str(configs.resolve("connectives_kjv"))

    # checkpoints (a checkpoint folder each) and runs, corrupted
    ckpts = root / "ckpt"
    for name, corrupt in {
        "garbage": lambda d: (d / "model.safetensors").write_bytes(b"garbage"),
        "trunc": lambda d: (d / "model.safetensors").write_bytes((d / "model.safetensors").read_bytes()[:2000]),
        "config": lambda d: (d / "config.json").write_bytes((d / "config.json").read_bytes()[:100]),
        "state": lambda d: (d / "state.json").write_bytes((d / "state.json").read_bytes()[:10]),
        "vocab": _shrink_vocab,
    }.items():
        shutil.copytree(tiny_lm / "best", ckpts / name)
        corrupt(ckpts / name)
        p[f"ckpt_{name}"] = str(ckpts / name)
    for name, corrupt in {
        "state": lambda d: (d / "last/state.json").write_bytes((d / "last/state.json").read_bytes()[:10]),
        "garbage": lambda d: (d / "last/model.safetensors").write_bytes(b"garbage"),
    }.items():
        shutil.copytree(tiny_lm, root / f"run_{name}")
        corrupt(root / f"run_{name}")
        p[f"run_{name}"] = str(root / f"run_{name}")
    shutil.copytree(judges / "scorer", root / "judge_garbage")
    (root / "judge_garbage/best/model.safetensors").write_bytes(b"garbage")
    p["judge_garbage"] = str(root / "judge_garbage")

    # streams: another tokenizer's, a truncated meta.json, a truncated shard
    for name in ("other", "meta", "shard"):
        shutil.copytree(tiny_stream, root / f"stream_{name}")
        p[f"stream_{name}"] = str(root / f"stream_{name}")
    _shrink_vocab(root / "stream_other")
    meta = root / "stream_meta/meta.json"
    meta.write_bytes(meta.read_bytes()[:50])
    shard = sorted((root / "stream_shard/val").iterdir())[0]
    shard.write_bytes(shard.read_bytes()[:100])

    # runs for `assay report`
    for name, data in {"empty": b"", "trunc": b'{"val_loss": 1.2', "latin1": "\u00e9".encode("latin-1")}.items():
        shutil.copytree(tiny_lm, root / f"report_{name}", ignore=shutil.ignore_patterns("best", "last"))
        (root / f"report_{name}/eval.json").write_bytes(data)
        p[f"report_{name}"] = str(root / f"report_{name}")
    shutil.copytree(tiny_lm, root / "report_huge", ignore=shutil.ignore_patterns("best", "last"))
    (root / "report_huge/eval.json").unlink()
    _huge(root / "report_huge/eval.json")
    p["report_huge"] = str(root / "report_huge")

    # configs
    p["tiny_toml"] = str(write_toml(tiny_tree(root / "unused-run"), root / "tiny.toml"))
    stream_cfg = tiny_tree(root / "unused-run", stream={"shard_size": 16, "val_shards": 1})
    p["produce_toml"] = str(write_toml(stream_cfg, root / "produce.toml"))

    # pipeline inputs: one file per input folder, the four split files per splits folder
    vibes = root / "vibes"
    vibes.mkdir()
    for split in ("TEST", "SFT-Val", "GRPO", "SFT-Train"):
        (vibes / f"{split}.jsonl").write_bytes(_jsonl(good))
    p["vibes"] = str(vibes)
    kinds = {"empty": b"", "latin1": files["latin1.txt"], "nul": files["nul.txt"], "trunc": trunc, "huge": None}
    for kind, data in kinds.items():
        (root / f"splits_{kind}").mkdir()
        for name in ("TEST", "SFT-Val", "GRPO", "SFT-Train"):
            target = root / f"splits_{kind}" / f"{name}.jsonl"
            _huge(target) if data is None else target.write_bytes(data)
        p[f"splits_{kind}"] = str(root / f"splits_{kind}")
    p["splits_missing"] = str(root / "no-such-folder")
    texts = root / "texts"
    texts.mkdir()
    for i in range(2):
        (texts / f"t{i}.txt").write_text("word " * 3000 + "\n", encoding="utf-8")
    p["texts"] = str(texts)
    _huge(root / "huge_texts/big.txt")
    p["huge_texts"] = str(root / "huge_texts")

    # retrieval maps (no embedding model needed: they fail before one would be loaded)
    for name in ("trunc", "garbage"):
        folder = root / f"map_{name}"
        folder.mkdir()
        (folder / "map.jsonl").write_bytes(trunc if name == "trunc" else _jsonl(good))
        (folder / "embeddings.safetensors").write_bytes(b"garbage")
        (folder / "meta.json").write_text("{}", encoding="utf-8")
        p[f"map_{name}"] = str(folder)
    return p


def _shrink_vocab(folder: Path) -> None:
    """Another vocabulary: the tokenizer without its last five characters."""
    vocab = folder / "tokenizer" / "vocab.json"
    tree = json.loads(vocab.read_text(encoding="utf-8"))
    tree["chars"] = tree["chars"][:-5]
    vocab.write_text(json.dumps(tree), encoding="utf-8")


@pytest.fixture(scope="module")
def llm_server():
    from assay.llm.testserver import ScriptedServer
    from tests.synth.synth_server import responder

    with ScriptedServer(responder=responder()) as server:
        yield server


# -- running a command ----------------------------------------------------------------------------
ZYGOTE = r"""
import atexit, json, os, resource, signal, sys, threading
import torch  # what most commands import: paid once, here
import assay.cli.main, assay.cli.tasks, assay.train.checkpoint, assay.train.evaluate, assay.judges.judge
from assay.cli.main import main

print(json.dumps({"ready": True}), flush=True)
for line in sys.stdin:
    req = json.loads(line)
    pid = os.fork()
    if pid == 0:  # the command's process: its files, limits and arguments, then `assay`'s own main
        os.chdir(req["cwd"])
        os.environ.clear()
        os.environ.update(req["env"])
        os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
        for fd, path in ((1, req["out"][0]), (2, req["out"][1])):
            os.dup2(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644), fd)
        if req["fsize"] is not None:
            sys.dont_write_bytecode = True
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
            resource.setrlimit(resource.RLIMIT_FSIZE, (req["fsize"], req["fsize"]))
        if req["memory"]:
            resource.setrlimit(resource.RLIMIT_AS, (req["memory"], req["memory"]))
        sys.argv = ["assay", *req["argv"]]
        try:
            main(req["argv"])
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 0 if exc.code is None else 1
            if not isinstance(exc.code, (int, type(None))):
                print(exc.code, file=sys.stderr)
        except BaseException:
            sys.excepthook(*sys.exc_info())  # what the interpreter prints: the traceback
            code = 1
        # the interpreter's exit, less the module teardown (a second with torch loaded)
        threading._shutdown()
        atexit._run_exitfuncs()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    print(json.dumps({"pid": pid}), flush=True)
    _, status = os.waitpid(pid, 0)
    print(json.dumps({"rc": os.waitstatus_to_exitcode(status)}), flush=True)
"""


class Zygote:
    """A process that has imported assay and torch and forks one child per command."""

    def __init__(self, env: dict[str, str]):
        self.proc = subprocess.Popen(
            [sys.executable, "-c", ZYGOTE], env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        assert self._reply(TIMEOUT_S) == {"ready": True}

    def _reply(self, timeout: float) -> dict:
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        if not ready:
            return {}
        return json.loads(self.proc.stdout.readline())

    def run(self, argv, cwd, env, out, err, fsize, memory) -> int | None:
        request = {"argv": argv, "cwd": str(cwd), "env": env, "out": [str(out), str(err)]}
        self.proc.stdin.write(json.dumps(request | {"fsize": fsize, "memory": memory}) + "\n")
        self.proc.stdin.flush()
        pid = self._reply(10)["pid"]
        done = self._reply(TIMEOUT_S)
        if not done:
            os.kill(pid, signal.SIGKILL)
            self._reply(10)
            return None
        return done["rc"]

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(timeout=30)


@pytest.fixture(scope="module")
def runner(paths):
    """run(argv, cwd, fsize, memory_guard) -> (status, stdout, stderr) of one `assay` command."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONDONTWRITEBYTECODE": "1", "COLUMNS": "200"}
    fresh = os.environ.get("ASSAY_BAD_INPUTS_PROCESSES") == "1"
    zygote = None if fresh else Zygote(env)
    logs = Path(paths["bad"]).parent / "logs"
    logs.mkdir()
    counter = iter(range(10**6))

    def run(argv: list[str], cwd: Path, fsize: int | None, memory_guard: bool) -> tuple[int | None, str, str]:
        n = next(counter)
        out, err = logs / f"{n}.out", logs / f"{n}.err"
        memory = _memory_cap() if memory_guard else None
        if zygote is not None:
            status = zygote.run(argv, cwd, env, out, err, fsize, memory)
        else:
            with open(out, "wb") as fo, open(err, "wb") as fe:
                try:
                    status = subprocess.run(
                        [*assay_cmd(), *argv],
                        cwd=cwd,
                        env=env,
                        stdin=subprocess.DEVNULL,
                        stdout=fo,
                        stderr=fe,
                        timeout=TIMEOUT_S,
                        preexec_fn=lambda: _limits(fsize, memory),
                    ).returncode
                except subprocess.TimeoutExpired:
                    status = None
        return status, out.read_text(errors="replace"), err.read_text(errors="replace")

    yield run
    if zygote is not None:
        zygote.close()


def _limits(fsize: int | None, memory: int | None) -> None:
    if fsize is not None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))
    if memory is not None:
        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))


def _memory_cap() -> int:
    """An address-space cap for a case with a huge file: about what a process with torch maps (0.9
    GiB), plus 1 GiB; a 4 GiB file read whole then fails with MemoryError instead of filling the
    machine's memory (and the case fails on its traceback)."""
    return 2 * GIB


# -- what a failure may leave behind -------------------------------------------------------------
def snapshot(roots: list[Path]) -> dict[str, tuple[int, int, str | None]]:
    """Every file under `roots`: (size, mtime in ns, sha1 of its bytes; None for a file over 64 MiB).
    A run's `.lock` is left out: a writer records its pid there, even one that then refuses to run."""
    files: dict[str, tuple[int, int, str | None]] = {}
    for root in roots:
        found = [root] if root.is_file() else [p for p in root.rglob("*") if p.is_file() and p.name != ".lock"]
        for path in found:
            stat = path.stat()
            digest = hashlib.sha1(path.read_bytes()).hexdigest() if stat.st_size <= 64 << 20 else None
            files[str(path)] = (stat.st_size, stat.st_mtime_ns, digest)
    return files


def changes(before: dict, after: dict, full_disk: bool) -> list[str]:
    """What the command did to the files, against the rules of the module docstring."""
    problems = []
    for path, old in before.items():
        new = after.get(path)
        if new == old:
            continue
        if new is None:
            problems.append(f"deleted: {path}")
        elif not (full_disk and path.endswith(".jsonl") and _grew_by_rows(path, old)):
            problems.append(f"changed: {path}")
    for path in sorted(set(after) - set(before)):
        name = Path(path).name
        if not full_disk:
            problems.append(f"created: {path}")
        elif name.endswith(".tmp") or ".tmp" in Path(path).parent.name:
            problems.append(f"temporary file left: {path}")
        elif name.endswith(".jsonl") and (data := Path(path).read_bytes()) and not data.endswith(b"\n"):
            problems.append(f"torn last row: {path}")
    return problems


def _grew_by_rows(path: str, old: tuple[int, int, str | None]) -> bool:
    data = Path(path).read_bytes()
    return data.endswith(b"\n") and hashlib.sha1(data[: old[0]]).hexdigest() == old[2]


def error_line(stderr: str) -> str | None:
    """The `error: ` line that ends stderr, if nothing before it is a traceback, another error or a
    warning (progress output is allowed: a bar, a training log)."""
    lines = [line for line in stderr.splitlines() if line.strip()]
    if not lines or not lines[-1].startswith("error: ") or EXCEPTION.search("\n".join(lines[:-1])):
        return None
    return lines[-1]


# -- the test -------------------------------------------------------------------------------------
TABLE: list[tuple[Case, list[str], str, dict[str, str]]] = []  # what the passing cases printed


def _param(c: Case):
    marks = [pytest.mark.xfail(strict=True, reason=c.lead)] if c.lead else []
    return pytest.param(c, id=c.id, marks=marks)


@pytest.mark.parametrize("c", [_param(c) for c in CASES])
def test_bad_input_is_one_line(c: Case, paths, runner, llm_server, tmp_path):
    names = paths | {"work": str(tmp_path), "api": llm_server.base_url}
    if c.prep is not None:
        c.prep(tmp_path, names)
    argv = c.argv(names)
    used = set(re.findall(r"{(\w+)}", c.command)) - {"work", "api"}
    watched = [tmp_path] + [Path(paths[k]) for k in sorted(used) if Path(paths[k]).exists()]
    before = snapshot(watched)

    status, stdout, stderr = runner(argv, tmp_path, c.fsize, memory_guard="huge" in c.command)

    assert status is not None, f"no answer in {TIMEOUT_S} s"
    line = error_line(stderr)
    assert status == 2 and line is not None, f"status {status}, stderr:\n{stderr}\nstdout:\n{stdout[-2000:]}"
    assert c.expect.format(**names) in line, line
    assert changes(before, snapshot(watched), full_disk=c.fsize is not None) == []
    TABLE.append((c, argv, line, names))


@pytest.fixture(scope="module", autouse=True)
def _write_table():
    yield
    target = os.environ.get("ASSAY_BAD_INPUTS_TABLE")
    if target and TABLE:
        Path(target).write_text(markdown_table(TABLE), encoding="utf-8")


def markdown_table(rows) -> str:
    """command | bad input | the message, with the test's paths made short: a fixture by its name in
    capitals (LM, JUDGES, ...), the bad files and the case's folder by their names alone."""
    out = ["| command | bad input | the one-line message |", "|---|---|---|"]
    for c, argv, line, names in rows:
        shown = {v: ("" if k in ("bad", "work") else k.upper()) for k, v in names.items()}
        command = "assay " + " ".join(shlex.quote(_short(a, shown)) for a in argv)
        out.append(f"| `{command}` | {c.bad} | `{_short(line, shown)}` |")
    return "\n".join(out) + "\n"


def _short(text: str, shown: dict[str, str]) -> str:
    for path in sorted(shown, key=len, reverse=True):
        name = shown[path]
        text = text.replace(path + "/", name + "/" if name else "").replace(path, name or ".")
    return text


def _exception(kind: str) -> Exception:
    """What a reader that forgot to catch it raises on a bad file."""
    import errno

    if kind == "json":
        return json.JSONDecodeError("Expecting value", "{", 1)
    if kind == "unicode":
        return UnicodeDecodeError("utf-8", b"\xff", 0, 1, "invalid start byte")
    if kind == "pydantic":
        from pydantic import BaseModel, Field, ValidationError

        class Blocks(BaseModel):
            blocks: int = Field(ge=1)

        try:
            Blocks(blocks=0)
        except ValidationError as exc:
            return exc
    if kind == "safetensors":
        from safetensors import SafetensorError

        return SafetensorError("Error while deserializing header: header too small")
    if kind == "disk":
        return OSError(errno.EFBIG, "File too large", "/data/out.jsonl")
    return OSError(errno.ENOSPC, "No space left on device")


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("json", "a file is not valid JSON (Expecting value at line 1 column 2)"),
        ("unicode", "a file is not UTF-8 text (invalid start byte)"),
        ("pydantic", "invalid value: blocks: input should be greater than or equal to 1"),
        ("safetensors", "a safetensors file is corrupt (Error while deserializing header: header too small)"),
        ("disk", "disk full or file too large: /data/out.jsonl"),
        ("nameless disk", "disk full or file too large (while writing an output)"),
    ],
)
def test_last_resort_handler(kind, message):
    """`assay`'s top-level handler: a bad-file error no reader caught becomes the one `error:` line."""
    from assay.cli.main import _last_resort

    assert _last_resort(_exception(kind)) == message
    assert _last_resort(KeyError("a bug")) is None  # anything else keeps its traceback
