"""Schema-guided JSON decoding of the music payload schema (`assay synth configs`) with SmolLM2-135M:
the hand-written decoder assay had until llguidance replaced it (the baseline, loaded from git)
against llguidance, xgrammar and outlines-core, all in the same run, on the same checks.

Decoders (each one constrains the same model, prompt, sampler and per-string token cap, 64):

  hand-written   src/assay/llm/local_guided.py + local_pattern.py + tree scoring in
                 local_session.py at BASELINE_COMMIT, read with `git show` into a temporary
                 package (the walker: structure forced, enum options scored as whole texts in one
                 tree-masked pass, regex subset for patterns)
  llguidance     assay.llm.local.guided (what the local backend runs now)
  xgrammar       GrammarCompiler.compile_json_schema + GrammarMatcher token masks, in a token
                 loop like assay's (MaskLoopDecoder): its jump-forward string, tokenised, and a
                 single allowed token are taken without the model (run with the next pass)
  outlines-core  build_regex_from_schema + Index + Guide token masks, the same loop (no jump-
                 forward: a forced key is written token by token, each with a forward pass;
                 whitespace pattern "": compact JSON, it has no separators option)

Checks, per decoder:

  noise valid    answers decoded from random logits (a fresh "model" per seed, temperature 1)
                 that pass the pipeline's validity(): format, schema and palette valid
  model valid    the same with SmolLM2 on the configs step's prompt (system prompt = instructions
                 + the schema) for a handful of vibes, temperature 0.8, seeded
  compile ms     schema -> grammar/matcher, cold (per schema; a process may cache it)
  first mask ms  the first token mask after compiling
  first token ms compile + everything the decoder does before it first asks the model for
                 logits (model time excluded): the latency it adds to the first token
  overhead ms/tok (decode wall time - model forward time) / answer tokens: what the decoder
                 costs on top of the model (masks, sampling over them, bookkeeping); the model
                 time is measured with hooks on the transformer and its output layer
  grammar ms/tok time inside the grammar engine only (mask + consume + forced tokens)
  s/payload      decode wall time per answer (model included), passes = forward passes
  install MB     wheel size (pip download) and size in site-packages of the library and the
                 runtime dependencies it adds to assay's (xgrammar: apache-tvm-ffi, and triton,
                 declared for Linux x86_64, not installed here: its wheel size is shown)

Ratios compare each decoder with the hand-written baseline of the same run.

    ASSAY_LOCAL_THREADS=1 python benchmarks/guided_decoding.py   # writes benchmarks/results/guided_decoding.json
    python benchmarks/guided_decoding.py --quick                 # a smoke run
"""

from __future__ import annotations

import argparse
import atexit
import importlib
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from assay.llm.local import load_model, prompt_ids
from assay.llm.local.guided import GuidedOptions, StringState, TokenTable, compile_schema, generate_json
from assay.llm.local.session import KVSession
from assay.sampling import pick
from common import RESULTS, report  # benchmarks/common.py (the script's folder is on sys.path)

ROOT = Path(__file__).resolve().parents[1]
BASELINE_COMMIT = "065e7ec5534f7e0dc9fa1a9474dadc59bab1cc2a"  # the last commit with the hand-written decoder
LEGACY_MODULES = ("local_guided", "local_pattern", "local_sampling", "local_session")
STRING_TOKENS = 64  # the backend's default per-string token cap
MAX_TOKENS = 1500  # the configs step's max_tokens
TEMPERATURE = 0.8  # the configs step's temperature
VIBES = [
    "A calm night drive through a neon city.",
    "Rain on a tin roof at dawn, lonely but hopeful.",
    "A crowded market at noon, bright and chaotic.",
    "Snow falling on a silent pine forest.",
    "The last dance at a wedding, warm and a little sad.",
    "A storm building over a dark sea.",
]
# Wheel sizes in MB, measured with `pip download --no-deps <pin>` (x86_64 Linux, CPython 3.11).
WHEEL_MB = {
    "llguidance==1.9.1": 3.07,
    "outlines-core==0.2.14": 2.34,
    "xgrammar==0.2.8": 1.31,
    "apache-tvm-ffi==0.1.15.post2": 3.35,
    "triton==3.9.0": 285.78,  # declared by xgrammar on Linux x86_64; not installed here
}
PACKAGES = {
    "hand-written": [],
    "llguidance": ["llguidance==1.9.1"],
    "xgrammar": ["xgrammar==0.2.8", "apache-tvm-ffi==0.1.15.post2", "triton==3.9.0"],
    "outlines-core": ["outlines-core==0.2.14"],
}


def music_schema() -> tuple[dict, Callable[[str], dict]]:
    """The payload schema and validity() of the configs step."""
    from assay.music import payload_json_schema, validity

    return payload_json_schema(), validity


def is_valid(validity, text: str) -> bool:
    check = validity(text)
    return bool(check["format_valid"] and check["schema_valid"] and check["palette_valid"])


# --- timing the model ----------------------------------------------------------------------------


class ModelClock:
    """Wall time spent inside the transformer and its output layer (forward hooks)."""

    def __init__(self, model):
        self.seconds = 0.0
        self._start: list[float] = []
        for module in (model.base_model, model.get_output_embeddings()):
            module.register_forward_pre_hook(lambda *_: self._start.append(time.perf_counter()))
            module.register_forward_hook(lambda *_: self._stop())

    def _stop(self) -> None:
        self.seconds += time.perf_counter() - self._start.pop()


class FirstCall:
    """Wraps a token model: records when the decoder first asks it for logits or scores."""

    def __init__(self, inner):
        self.inner = inner
        self.first: float | None = None

    def __getattr__(self, name):
        attr = getattr(self.inner, name)
        if name in ("next_logits", "score") and self.first is None:
            self.first = time.perf_counter()
        return attr


# --- the hand-written baseline, from git ----------------------------------------------------------


def load_legacy(commit: str):
    """The hand-written decoder's modules at `commit`, as a temporary package `legacy_guided`."""
    root = Path(tempfile.mkdtemp(prefix="legacy-guided-"))
    atexit.register(shutil.rmtree, root, ignore_errors=True)
    package = root / "legacy_guided"
    package.mkdir()
    (package / "__init__.py").write_text("")
    for name in LEGACY_MODULES:
        source = subprocess.run(
            ["git", "-C", str(ROOT), "show", f"{commit}:src/assay/llm/{name}.py"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        (package / f"{name}.py").write_text(source.replace("assay.llm.local_", "legacy_guided.local_"))
    sys.path.insert(0, str(root))
    guided = importlib.import_module("legacy_guided.local_guided")
    session = importlib.import_module("legacy_guided.local_session")
    return guided, session


class LegacyDecoder:
    name = "hand-written"

    def __init__(self, lm, commit: str):
        self.guided, self.session_mod = load_legacy(commit)
        started = time.perf_counter()
        special = set(lm.tokenizer.all_special_ids)
        texts = [
            None if i in special or i >= len(lm.tokenizer) else lm.tokenizer.decode([i]) for i in range(lm.vocab_size)
        ]
        self.vocab = self.guided.Vocab(texts)
        self.setup_s = time.perf_counter() - started
        self.lm = lm
        self.prefixes = self.session_mod.PrefixCache()

    def compile(self, schema):
        return self.guided.compile_schema(schema)

    def first_mask(self, compiled) -> float | None:
        return None  # (no mask: the walker forces the structure and scores options)

    def session(self, ids, prefix_len):
        lm = self.lm
        return self.session_mod.KVSession(lm.model, lm.tokenizer, self.vocab, ids, prefix_len, self.prefixes)

    def decode(self, compiled, model, gen, temperature=TEMPERATURE) -> dict:
        options = self.guided.GuidedOptions(
            temperature=temperature, generator=gen, max_tokens=MAX_TOKENS, max_string_tokens=STRING_TOKENS
        )
        result = self.guided.generate_json(compiled, model, options)
        tokens = model.consumed if hasattr(model, "consumed") else 0
        return {"text": result.text, "tokens": tokens, "grammar_s": None, "finish": result.finish_reason}

    def noise_model(self, seed: int):
        return LegacyNoise(self.vocab, seed, self.lm.tokenizer)


class LegacyNoise:
    """The hand-written decoder's TokenModel with random logits and scores."""

    def __init__(self, vocab, seed: int, tokenizer):
        self.vocab, self.tokenizer = vocab, tokenizer
        self.gen = torch.Generator().manual_seed(seed)
        self.committed, self.pending = 0, ""

    @property
    def consumed(self) -> int:
        return self.committed + (
            len(self.tokenizer.encode(self.pending, add_special_tokens=False)) if self.pending else 0
        )

    def _flush(self):
        if self.pending:
            self.committed += len(self.tokenizer.encode(self.pending, add_special_tokens=False))
            self.pending = ""

    def push_text(self, text):
        self.pending += text

    def push_token(self, token):
        self._flush()
        self.committed += 1

    def next_logits(self, among=None):
        self._flush()
        logits = torch.randn(self.vocab.size, generator=self.gen) * 3
        if among is None:
            return logits
        return torch.full_like(logits, -torch.inf).index_copy_(0, among, logits[among])

    def score(self, texts):
        return torch.randn(len(texts), generator=self.gen) * 3

    def commit(self, index):
        self._flush()
        self.committed += 2


# --- the libraries ---------------------------------------------------------------------------------


class NoiseModel:
    """A TokenModel with random logits (a different 'model' per seed)."""

    def __init__(self, size: int, seed: int):
        self.size = size
        self.gen = torch.Generator().manual_seed(seed)

    def push(self, ids):
        pass

    def next_logits(self, among=None):
        return torch.randn(self.size if among is None else len(among), generator=self.gen) * 3


class LLGuidanceDecoder:
    name = "llguidance"

    def __init__(self, lm):
        started = time.perf_counter()
        self.table = TokenTable(lm.tokenizer, lm.vocab_size, lm.eos_ids)
        self.setup_s = time.perf_counter() - started
        self.lm = lm

    def compile(self, schema):
        from assay.llm.local import guided

        guided._compile.cache_clear()
        grammar = compile_schema(schema)
        self.table.matcher(grammar)  # (the matcher is made per request; its construction counts here)
        return grammar

    def first_mask(self, compiled) -> float:
        matcher = self.table.matcher(compiled)
        while ff := matcher.compute_ff_tokens():
            matcher.consume_tokens(ff)
        started = time.perf_counter()
        self.table.allowed(matcher)
        return time.perf_counter() - started

    def session(self, ids, prefix_len):
        return KVSession(self.lm.model, ids, prefix_len, self.lm.prefixes)

    def decode(self, compiled, model, gen, temperature=TEMPERATURE) -> dict:
        options = GuidedOptions(
            temperature=temperature, generator=gen, max_tokens=MAX_TOKENS, max_string_tokens=STRING_TOKENS
        )
        result = generate_json(compiled, model, self.table, options)
        return {
            "text": result.text,
            "tokens": len(result.tokens),
            "grammar_s": result.grammar_s,
            "finish": result.finish_reason,
        }

    def noise_model(self, seed: int):
        return NoiseModel(self.lm.vocab_size, seed)


class MaskLoopDecoder:
    """A library that gives a token bitmask per step, in the same loop as assay's llguidance path:
    a single allowed token is taken without the model (run with the next pass), the model samples
    among the allowed ones (only their output rows when few), the same per-string token cap."""

    name = "?"

    def __init__(self, lm):
        self.lm = lm
        self.size = lm.vocab_size
        self.quote_start = np.zeros(self.size, dtype=bool)
        self.token_bytes: list[bytes] = []
        self.eos = set(lm.eos_ids)
        self.bitmask = torch.full((1, (self.size + 31) // 32), -1, dtype=torch.int32)

    def _bytes_table(self):
        inverse = {c: b for b, c in _bytes_to_unicode().items()}
        special = set(self.lm.tokenizer.all_special_ids)
        pieces = self.lm.tokenizer.convert_ids_to_tokens(list(range(len(self.lm.tokenizer))))
        out = []
        for i in range(self.size):
            piece = pieces[i] if i < len(pieces) and i not in special else None
            out.append(bytes(inverse[c] for c in piece) if piece and all(c in inverse for c in piece) else b"")
        self.token_bytes = out
        self.quote_start = np.array([bool(b) and b[0] == ord('"') for b in out])

    def allowed(self, state) -> np.ndarray:
        raise NotImplementedError

    def forced(self, state) -> list[int]:
        """Tokens the grammar forces from here, already accepted (none if the library cannot say)."""
        return []

    def session(self, ids, prefix_len):
        return KVSession(self.lm.model, ids, prefix_len, self.lm.prefixes)

    def first_mask(self, compiled) -> float:
        state = self.start(compiled)
        started = time.perf_counter()
        self.allowed(state)
        return time.perf_counter() - started

    def decode(self, compiled, model, gen, temperature=TEMPERATURE) -> dict:
        state = self.start(compiled)
        strings = StringState()
        out: list[int] = []
        grammar_s = 0.0
        finish = "stop"
        while True:
            if len(out) >= MAX_TOKENS:
                finish = "length"
                break
            started = time.perf_counter()
            forced = self.forced(state)
            if forced:
                grammar_s += time.perf_counter() - started
                out.extend(forced)
                for token in forced:
                    strings.feed(self.token_bytes[token])
                model.push(forced)
                continue
            ids = self.allowed(state)
            grammar_s += time.perf_counter() - started
            if len(ids) == 0 or all(int(i) in self.eos for i in ids):
                break
            if len(ids) == 1:
                token = int(ids[0])
            else:
                if strings.inside and not strings.escaped and strings.sampled >= STRING_TOKENS:
                    closers = ids[self.quote_start[ids]]
                    if len(closers):
                        ids = closers
                among = torch.from_numpy(ids)
                logits = model.next_logits(among if len(ids) * 4 <= self.size else None)
                if logits.shape[0] != len(ids):
                    logits = logits[among]
                token = int(ids[pick(logits, temperature, None, gen)])
                strings.sampled += strings.inside
            if token in self.eos:
                break
            started = time.perf_counter()
            self.accept(state, token)
            grammar_s += time.perf_counter() - started
            out.append(token)
            strings.feed(self.token_bytes[token])
            model.push([token])
        text = b"".join(self.token_bytes[t] for t in out).decode("utf-8", errors="replace")
        return {"text": text, "tokens": len(out), "grammar_s": grammar_s, "finish": finish}

    def noise_model(self, seed: int):
        return NoiseModel(self.size, seed)

    def _bits(self) -> np.ndarray:
        bits = np.unpackbits(self.bitmask.numpy().view(np.uint8), bitorder="little")
        return np.flatnonzero(bits[: self.size])


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2's byte-level BPE alphabet: byte -> the character its tokens spell it with."""
    keep = (
        list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    )
    chars, extra = {}, 0
    for b in range(256):
        if b in keep:
            chars[b] = chr(b)
        else:
            chars[b] = chr(256 + extra)
            extra += 1
    return chars


class XGrammarDecoder(MaskLoopDecoder):
    name = "xgrammar"

    def __init__(self, lm):
        super().__init__(lm)
        import xgrammar as xgr

        self.xgr = xgr
        started = time.perf_counter()
        info = xgr.TokenizerInfo.from_huggingface(lm.tokenizer, vocab_size=self.size, stop_token_ids=sorted(self.eos))
        self.compiler = xgr.GrammarCompiler(info, max_threads=1, cache_enabled=False)
        self._bytes_table()
        self.setup_s = time.perf_counter() - started

    def compile(self, schema):
        compiled = self.compiler.compile_json_schema(
            json.dumps(schema), any_whitespace=False, separators=(", ", ": "), strict_mode=True
        )
        self.xgr.GrammarMatcher(compiled)
        return compiled

    def start(self, compiled):
        return self.xgr.GrammarMatcher(compiled)

    def allowed(self, state) -> np.ndarray:
        state.fill_next_token_bitmask(self.bitmask)
        return self._bits()

    def accept(self, state, token: int) -> None:
        if not state.accept_token(token):
            raise RuntimeError(f"xgrammar refused token {token}")

    def forced(self, state) -> list[int]:
        """xgrammar's jump-forward string, tokenised, as far as the matcher accepts it."""
        text = state.find_jump_forward_string()
        taken: list[int] = []
        for token in self.lm.tokenizer.encode(text, add_special_tokens=False) if text else []:
            if not state.accept_token(token):
                break
            taken.append(token)
        return taken


class OutlinesDecoder(MaskLoopDecoder):
    name = "outlines-core"

    def __init__(self, lm):
        super().__init__(lm)
        import outlines_core

        self.oc = outlines_core
        started = time.perf_counter()
        self._bytes_table()
        groups: dict[bytes, list[int]] = {}
        for i, piece in enumerate(self.token_bytes):
            if piece and i not in self.eos:
                groups.setdefault(piece, []).append(i)
        eos = min(self.eos)
        self.vocabulary = outlines_core.Vocabulary(eos, groups)
        self.setup_s = time.perf_counter() - started

    def compile(self, schema):
        from outlines_core.json_schema import build_regex_from_schema

        regex = build_regex_from_schema(json.dumps(schema), whitespace_pattern="")
        return self.oc.Index(regex, self.vocabulary)

    def start(self, compiled):
        return self.oc.Guide(compiled)

    def allowed(self, state) -> np.ndarray:
        state.write_mask_into(self.bitmask.data_ptr(), self.bitmask.numel(), self.bitmask.element_size())
        return self._bits()

    def accept(self, state, token: int) -> None:
        state.advance(token, return_tokens=False)


# --- measuring ---------------------------------------------------------------------------------------


def noise_validity(decoder, compiled, validity, seeds: int) -> dict:
    valid, errors, started = 0, [], time.perf_counter()
    for seed in range(seeds):
        model = decoder.noise_model(seed)
        out = decoder.decode(compiled, model, torch.Generator().manual_seed(seed), temperature=1.0)
        ok = is_valid(validity, out["text"])
        valid += ok
        if not ok and len(errors) < 3:
            errors.append(validity(out["text"])["error"] or out["finish"])
    return {"seeds": seeds, "valid": valid, "errors": errors, "seconds": time.perf_counter() - started}


def model_runs(decoder, schema, vibes: list[str], validity, clock: ModelClock) -> dict:
    lm = decoder.lm
    from assay.synth.music_configs import build_messages  # the configs step's own prompt

    runs = []
    for index, vibe in enumerate(vibes):
        messages = build_messages(vibe)
        ids, prefix_len = prompt_ids(lm.tokenizer, messages)
        session = decoder.session(ids, prefix_len)  # (prefill: not timed; the prefix is cached after the first)
        # first token: a cold compile, then the decoder up to its first request for logits
        started = time.perf_counter()
        if index == 0:
            compiled = decoder.compile(schema)
        wrapped = FirstCall(session)
        decode_start = time.perf_counter()
        model_before = clock.seconds
        out = decoder.decode(compiled, wrapped, torch.Generator().manual_seed(index))
        wall = time.perf_counter() - decode_start
        model_s = clock.seconds - model_before
        first = (wrapped.first - started) if wrapped.first is not None else float("nan")
        tokens = out["tokens"]
        runs.append(
            {
                "vibe": vibe,
                "valid": is_valid(validity, out["text"]),
                "error": validity(out["text"])["error"],
                "finish": out["finish"],
                "tokens": tokens,
                "passes": getattr(session, "passes", 0) + getattr(session, "tree_passes", 0),
                "decode_s": wall,
                "model_s": model_s,
                "overhead_ms_per_token": 1000 * (wall - model_s) / max(tokens, 1),
                "grammar_ms_per_token": None if out["grammar_s"] is None else 1000 * out["grammar_s"] / max(tokens, 1),
                "first_token_ms": 1000 * first if index == 0 else None,
                "text": out["text"],
            }
        )
        print(
            f"  {decoder.name:<13} vibe {index}: valid={runs[-1]['valid']} {tokens} tokens, {wall:.1f} s "
            f"(model {model_s:.1f} s), overhead {runs[-1]['overhead_ms_per_token']:.2f} ms/token",
            flush=True,
        )
    return {"runs": runs}


def site_packages_mb(pins: list[str]) -> float | None:
    from importlib.metadata import PackageNotFoundError, distribution

    total = 0
    for pin in pins:
        name = pin.split("==")[0]
        try:
            total += sum((f.size or 0) for f in distribution(name).files or [])
        except PackageNotFoundError:
            if name != "triton":  # (declared by xgrammar, not needed on a CPU)
                return None
    return total / 1e6


def make_table(result: dict):
    from rich.table import Table

    machine = result["machine"]
    table = Table(
        title=f"Guided decoding of the music payload schema with SmolLM2-135M ({machine['torch_threads']} torch "
        f"thread(s), {machine['cpus']} cores); ratios against the hand-written decoder"
    )
    columns = (
        "decoder",
        "noise valid",
        "model valid",
        "compile ms",
        "1st token ms",
        "overhead ms/tok",
        "grammar ms/tok",
        "s/payload",
        "passes",
        "MB wheel/inst.",
        "overhead ratio",
        "s/payload ratio",
    )
    for column in columns:
        table.add_column(column, justify="left" if column == "decoder" else "right", no_wrap=column in columns[::9])
    for name, row in result["decoders"].items():
        if "skipped" in row:
            table.add_row(name, "skipped", *[""] * (len(columns) - 2))
            continue
        ratio = row.get("ratio_vs_hand_written", {})
        installed = row["site_packages_mb"]
        grammar = row["grammar_ms_per_token"]
        table.add_row(
            name,
            f"{row['noise']['valid']}/{row['noise']['seeds']}",
            f"{row['model_valid']}/{row['model_answers']}",
            f"{row['compile_ms']:.1f}",
            f"{row['first_token_ms']:.1f}",
            f"{row['overhead_ms_per_token']:.2f}",
            "-" if grammar is None else f"{grammar:.3f}",  # (None: no separate grammar engine)
            f"{row['decode_s_per_payload']:.1f}",
            f"{row['passes_per_payload']:.0f}",
            f"{row['wheel_mb']:.1f}/{installed:.1f}" if installed is not None else f"{row['wheel_mb']:.1f}/-",
            f"{ratio['overhead_ms_per_token']:.2f}" if ratio else "",
            f"{ratio['decode_s_per_payload']:.2f}" if ratio else "",
        )
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 vibes, 4 noise seeds (a smoke run)")
    parser.add_argument(
        "--vibes", type=int, default=len(VIBES), help=f"SmolLM2 answers per decoder (default {len(VIBES)})"
    )
    parser.add_argument("--seeds", type=int, default=100, help="noise answers per decoder (default 100)")
    parser.add_argument("--decoders", default="hand-written,llguidance,xgrammar,outlines-core")
    parser.add_argument("--baseline-commit", default=BASELINE_COMMIT)
    parser.add_argument(
        "--threads", type=int, default=None, help="torch threads (default $ASSAY_LOCAL_THREADS or torch's)"
    )
    parser.add_argument("--out", type=Path, default=RESULTS / "guided_decoding.json")
    parser.add_argument("--show", type=Path, default=None, help="print the table of a result file and stop")
    args = parser.parse_args()
    if args.show:
        from rich.console import Console

        Console(width=140).print(make_table(json.loads(args.show.read_text())))
        return
    vibes_n, seeds = (2, 4) if args.quick else (args.vibes, args.seeds)
    threads = args.threads or int(os.environ.get("ASSAY_LOCAL_THREADS", "0") or 0) or None
    if threads:
        torch.set_num_threads(threads)
    schema, validity = music_schema()
    lm = load_model("smollm2")
    clock = ModelClock(lm.model)
    makers = {
        "hand-written": lambda: LegacyDecoder(lm, args.baseline_commit),
        "llguidance": lambda: LLGuidanceDecoder(lm),
        "xgrammar": lambda: XGrammarDecoder(lm),
        "outlines-core": lambda: OutlinesDecoder(lm),
    }
    results: dict[str, dict] = {}
    for name in args.decoders.split(","):
        print(f"{name}:", flush=True)
        try:
            decoder = makers[name]()
        except (ImportError, subprocess.CalledProcessError, OSError) as exc:
            print(f"  skipped: {exc}")
            results[name] = {"skipped": str(exc)}
            continue
        started = time.perf_counter()
        compiled = decoder.compile(schema)
        compile_s = time.perf_counter() - started
        first_mask = decoder.first_mask(compiled)
        noise = noise_validity(decoder, compiled, validity, seeds)
        print(f"  noise: {noise['valid']}/{seeds} valid {noise['errors']}", flush=True)
        runs = model_runs(decoder, schema, VIBES[:vibes_n], validity, clock)["runs"]
        results[name] = {
            "setup_s": decoder.setup_s,
            "compile_ms": 1000 * compile_s,
            "first_mask_ms": None if first_mask is None else 1000 * first_mask,
            "first_token_ms": runs[0]["first_token_ms"],
            "noise": noise,
            "model_valid": sum(r["valid"] for r in runs),
            "model_answers": len(runs),
            "overhead_ms_per_token": statistics.mean(r["overhead_ms_per_token"] for r in runs),
            "grammar_ms_per_token": None
            if runs[0]["grammar_ms_per_token"] is None
            else statistics.mean(r["grammar_ms_per_token"] for r in runs),
            "decode_s_per_payload": statistics.mean(r["decode_s"] for r in runs),
            "model_ms_per_token": 1000 * sum(r["model_s"] for r in runs) / sum(r["tokens"] for r in runs),
            "tokens_per_payload": statistics.mean(r["tokens"] for r in runs),
            "passes_per_payload": statistics.mean(r["passes"] for r in runs),
            "packages": PACKAGES[name],
            "wheel_mb": sum(WHEEL_MB[p] for p in PACKAGES[name]),
            "site_packages_mb": site_packages_mb(PACKAGES[name]),
            "runs": runs,
        }
    base = results.get("hand-written", {})
    for row in results.values():
        if "skipped" in row or "skipped" in base or not base:
            continue
        row["ratio_vs_hand_written"] = {
            "overhead_ms_per_token": row["overhead_ms_per_token"] / base["overhead_ms_per_token"],
            "decode_s_per_payload": row["decode_s_per_payload"] / base["decode_s_per_payload"],
            "first_token_ms": row["first_token_ms"] / base["first_token_ms"],
        }

    result = {
        "benchmark": "guided_decoding",
        "command": " ".join(["python", "benchmarks/guided_decoding.py", *sys.argv[1:]]),
        "env": {"ASSAY_LOCAL_THREADS": os.environ.get("ASSAY_LOCAL_THREADS")},
        "machine": {"cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(), "platform": platform.platform()},
        "model": "local/smollm2 (SmolLM2-135M-Instruct, fp32, CPU)",
        "schema": "music payload (assay synth configs)",
        "settings": {"max_tokens": MAX_TOKENS, "temperature": TEMPERATURE, "max_string_tokens": STRING_TOKENS},
        "baseline_commit": args.baseline_commit,
        "decoders": results,
    }
    report(make_table(result), result, args.out)


if __name__ == "__main__":
    main()
