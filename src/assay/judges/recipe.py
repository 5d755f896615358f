"""`assay judge train`: one path from a corpus to a judge, in four stages.

    1/4 lm         a masked-diffusion LM trained on the corpus (or the one --lm names)
    2/4 stream     its rewrites: real passages partly rewritten, labelled per token (rewriters.py)
    3/4 scorer     a sequence scorer fine-tuned from the LM (what fraction is machine-written?)
    4/4 inspector  a token classifier fine-tuned from the LM (which tokens?)

Both judges take their shape (layers, heads, width, ...) from the LM's checkpoint, start from its
weights, and end with an evaluation on the stream's validation shards (made from the corpus's
validation split) beside the likelihood baseline, as `assay train` does; `summary_rows` reads the
finished runs' eval.json the way `assay report` does.

The settings are one config tree (`RecipeConfig`), built in this order, last wins: the defaults
below (the shipped demo's: `shakespeare_char` for the LM, `judge_shakespeare` for the judges), the
saved recipe.json when resuming, a TOML file, the command's flags, `--set key=value`. Sections:

    corpus, lm_run   the corpus spec; an existing LM run to use instead of training one
    [lm]             the LM's training config (`lm.train.max_iters`, `lm.model.n_layer`, ...)
    [rewrite]        kind = "lm" | "llm" | "jsonl" and that rewriter's settings (`rewrite.shards`, ...)
    [llm]            the LLM of the llm rewriter (`llm.model`, `llm.api_base`, `llm.cache`, ...)
    [scorer]         the sequence scorer's training config (`scorer.train.lr`, `scorer.features.groups`, ...)
    [inspector]      the token inspector's (`inspector.train.max_iters`, ...)

Keys the recipe sets itself (output folders, the stream, the judges' mode, shape and LM) are refused.

A folder OUT holds:

    recipe.json   the settings (a --resume continues with them)
    lm/           the LM's run (not with --lm)
    stream/       the rewrites
    scorer/       the sequence scorer's run
    inspector/    the token inspector's run (none when the stream has no token labels)
    llm.sqlite    the llm rewriter's response cache (kept by --overwrite: its answers are replayed)

A stage is finished when its run has eval.json, or its stream every shard. `resume` skips finished
stages and continues an interrupted training run from its last/ checkpoint.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import Field

from assay.checkpoint_io import resolve_checkpoint
from assay.config import Section, build_tree, set_key, to_dict, validate
from assay.data.config import DataConfig
from assay.data.corpus import check_corpus_spec
from assay.data.stream import read_meta
from assay.data.tokens import split_texts
from assay.errors import AssayError, CheckpointError, ConfigError, DataError
from assay.io import JSON_MAX, atomic_write_json, check_size, folder_lock, remove_entries
from assay.judges.features import JudgeConfig
from assay.judges.rewrite_jsonl import read_labelled, rewrite_from_jsonl
from assay.judges.rewrite_llm import rewrite_with_llm
from assay.judges.rewriters import LMRewrite, Rewrite, Sources, rewrite_with_lm, stream_complete
from assay.judges.tasks import TASKS as JUDGE_TASKS
from assay.llm.settings import LLMSettings
from assay.progress import console
from assay.train.checkpoint import Checkpoint, ObjectiveError, load_checkpoint
from assay.train.config import TrainingConfig
from assay.train.lm_tasks import CORE_TASKS

RECIPE = "recipe.json"
FORMAT = 1
ENTRIES = ("lm", "stream", "scorer", "inspector", RECIPE)  # what --overwrite removes
# rewrite.kind -> the function that makes the stream (rewriters.py)
REWRITERS = {"lm": rewrite_with_lm, "llm": rewrite_with_llm, "jsonl": rewrite_from_jsonl}
SHAPE = ("n_layer", "n_head", "n_embd", "mlp_ratio", "bias", "rope_base")  # the judges take these from the LM


def defaults() -> dict[str, Any]:
    """The shipped demo's settings, less the keys the recipe sets itself: the `shakespeare_char`
    config for the LM (4 layers x 128, 300 steps of 32 x 256 characters, ~4 min on 2 cores), the
    `judge_shakespeare` config for the judges (a multi-task scorer fed the LM's log-probabilities,
    300 steps each). The inspector goes without the LM's features, to keep the default run short
    (they add ~0.01 AUROC, docs/judges.md). The lm rewriter's masks are that config's too
    (rewriters.py)."""
    from assay.config import read_toml

    lm, judge = read_toml("shakespeare_char"), read_toml("judge_shakespeare")
    for section in ("masking", "stream", "data"):  # the rewriter's, the stream's, and the recipe's own
        judge.pop(section, None)
    for tree, group in ((lm, "lm"), (judge, "judge")):
        for key in _OWN[group]:
            _drop(tree, key)
    inspector = json.loads(json.dumps(judge))
    inspector["features"] = {"lm_features": False}
    return {"lm": lm, "rewrite": {"kind": "lm"}, "scorer": judge, "inspector": inspector}


# keys the recipe sets itself, and why (a user's value for one is refused)
_OWN = {
    "lm": {
        "run.out_dir": "the LM goes to OUT/lm",
        "data.corpus": "give the corpus with --corpus",
        "data.stream": "the LM learns from the corpus",
        "model.mode": "the LM is a masked-diffusion language model",
        "model.attention": "the LM is a masked-diffusion language model",
    },
    "judge": {
        "run.out_dir": "the judges go to OUT/scorer and OUT/inspector",
        "data.stream": "the judges learn from OUT/stream",
        "data.block_size": "the judges read the stream's samples (set rewrite.block_size)",
        "model.mode": "the scorer is a sequence_scorer, the inspector a token_classifier",
        "model.attention": "the judges take the LM's shape",
        "model.init_from": "the judges start from the LM",
        "features.lm": "the judges' features come from the LM",
        **{f"model.{key}": "the judges take the LM's shape" for key in SHAPE},
    },
}


class RecipeConfig(Section):
    """The settings of `assay judge train` (see the module docstring)."""

    corpus: str | None = Field(
        None, description="The corpus: a shipped name or a .txt/.jsonl/folder path; none = the LM's (with lm_run)."
    )
    lm_run: str | None = Field(None, description="An existing masked-diffusion LM run to use instead of training one.")
    lm: TrainingConfig = Field(default_factory=TrainingConfig, description="The LM's training config.")
    rewrite: Rewrite = Field(default_factory=LMRewrite, description="The rewriter (kind) and its settings.")
    llm: LLMSettings = Field(default_factory=LLMSettings, description="The llm rewriter's model and endpoint.")
    scorer: JudgeConfig = Field(default_factory=JudgeConfig, description="The sequence scorer's training config.")
    inspector: JudgeConfig = Field(default_factory=JudgeConfig, description="The token inspector's training config.")


@dataclass
class Stage:
    name: str  # lm, stream, scorer, inspector
    path: Path
    status: str  # trained, resumed, finished earlier, given, skipped, interrupted
    seconds: float = 0.0


@dataclass
class RecipeResult:
    out: Path
    recipe: RecipeConfig
    stages: list[Stage] = field(default_factory=list)
    interrupted: bool = False  # a stage was stopped (Ctrl-C): continue with resume
    seconds: float = 0.0


# -- the settings ---------------------------------------------------------------------------------
def _get(tree: dict[str, Any], dotted: str) -> Any:
    node: Any = tree
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def _drop(tree: dict[str, Any], dotted: str) -> None:
    *parents, last = dotted.split(".")
    node = _get(tree, ".".join(parents)) if parents else tree
    if isinstance(node, dict):
        node.pop(last, None)


def _refuse_own_keys(tree: dict[str, Any]) -> None:
    for section, group in (("lm", "lm"), ("scorer", "judge"), ("inspector", "judge")):
        for key, why in _OWN[group].items():
            if _get(tree, f"{section}.{key}") is not None:
                raise ConfigError(f"{section}.{key} is set by `assay judge train` ({why}): remove it")


def settings_tree(
    out: Path, config: str | Path | None, settings: dict[str, Any], sets: list[str] | tuple[str, ...], resume: bool
) -> dict[str, Any]:
    """The user's settings tree: defaults (or, resuming, the saved recipe), the file, the flags given
    in `settings` (dotted key -> value, None = not given), then the `--set` overrides."""
    base = defaults()
    saved = out / RECIPE
    if resume and saved.is_file():
        try:
            base = json.loads(check_size(saved, JSON_MAX, "a recipe.json").read_text(encoding="utf-8"))["tree"]
        except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError):
            raise DataError(f"{saved} is corrupt: start afresh with --overwrite") from None
    tree = build_tree(config, (), base)
    for key, value in settings.items():
        if value is not None:
            set_key(tree, key, str(value) if isinstance(value, Path) else value)
    tree = build_tree(None, list(sets), tree)
    _refuse_own_keys(tree)
    return tree


def masked_lm(path: str | Path) -> Checkpoint:
    """The masked-diffusion LM at `path`; a one-line error for anything else."""
    try:
        ckpt = load_checkpoint(path, tasks=CORE_TASKS | JUDGE_TASKS)
    except ObjectiveError as exc:
        raise ConfigError(f"{path} is a {exc.objective} run, not a masked-diffusion LM") from None
    model = ckpt.config.model
    if model.mode != "language_model" or model.causal:
        raise ConfigError(f"{path} is a {ckpt.config.objective} run, not a masked-diffusion LM")
    return ckpt


def build_recipe(out: Path, tree: dict[str, Any]) -> RecipeConfig:
    """The validated recipe for OUT, with the keys it sets itself filled in."""
    tree = json.loads(json.dumps(tree))
    corpus, lm_run = tree.get("corpus"), tree.get("lm_run")
    if not corpus:
        if not lm_run:
            raise ConfigError("say what to learn from: --corpus SPEC (or --lm RUN, whose corpus is then used)")
        corpus = tree["corpus"] = masked_lm(lm_run).config.data.corpus
    check_corpus_spec(str(corpus))
    lm_dir = Path(lm_run) if lm_run else out / "lm"
    set_key(tree, "lm.run.out_dir", str(out / "lm"))
    set_key(tree, "lm.data.corpus", str(corpus))
    for name, mode in (("scorer", "sequence_scorer"), ("inspector", "token_classifier")):
        set_key(tree, f"{name}.run.out_dir", str(out / name))
        set_key(tree, f"{name}.data.stream", str(out / "stream"))
        set_key(tree, f"{name}.model.mode", mode)
        set_key(tree, f"{name}.model.init_from", str(lm_dir))
        set_key(tree, f"{name}.features.lm", str(lm_dir))
    if _get(tree, "llm.cache") is None:
        set_key(tree, "llm.cache", str(out / "llm.sqlite"))
    return validate(RecipeConfig, tree)


# -- the stages -----------------------------------------------------------------------------------
def _banner(step: int, title: str, detail: str = "") -> None:
    console.print(f"\n[bold]== {step}/4 {title}[/]" + (f": {detail}" if detail else ""))


def _check_corpus_size(data: DataConfig, train_need: int, val_need: int, what: str) -> None:
    """A one-line DataError when the corpus's splits are too short for `what` (counted in characters,
    which a character-level tokenizer makes one token each)."""
    _, _, texts = split_texts(data)
    train, val = len(texts["train"]), len(texts["val"])
    if train < train_need or val < val_need:
        raise DataError(
            f"corpus {data.corpus!r} is too small for {what}: its training split has {train:,} characters and its "
            f"validation split {val:,} (needed: {train_need:,} and {val_need:,}); give more text, or lower "
            "lm.data.block_size / rewrite.block_size with --set"
        )


def _train_stage(cfg: TrainingConfig, run: Path, tasks) -> tuple[str, bool]:
    """Train `cfg` into `run`, or continue it from its last/ checkpoint; (status, interrupted)."""
    from assay.train.trainer import config_for_resume, train

    try:
        resolve_checkpoint(run, "last")
        ckpt = load_checkpoint(run, prefer="last", tasks=tasks)
    except CheckpointError:
        if (run / "last").exists() or (run / "best").exists():
            raise
        result = train(cfg, tasks=tasks, overwrite=True)  # (a folder without a checkpoint holds nothing to keep)
        return "trained", result.interrupted
    # the current train section wins (a larger max_iters continues further); the model and data are the run's
    overrides = [f"train.{key}={json.dumps(value)}" for key, value in to_dict(cfg.train).items()]
    resumed = config_for_resume(ckpt, run, overrides)
    if int(ckpt.state["iter"]) >= resumed.train.max_iters:  # stopped after its last step, before eval.json
        _final_evaluation(ckpt, run)
        return "resumed", False
    console.print(f"continuing {run} from iter {ckpt.state['iter']}")
    result = train(resumed, resume=ckpt, tasks=tasks)
    return "resumed", result.interrupted


def _shorter(run: Path, cfg: TrainingConfig) -> None:
    """A note when a finished run stopped before the steps the recipe now asks for."""
    try:
        done = int(json.loads((run / "eval.json").read_text(encoding="utf-8"))["iter"])
    except (OSError, ValueError, KeyError, TypeError):
        return
    if done < cfg.train.max_iters:
        console.print(
            f"({run} stopped at iter {done}, the recipe now says {cfg.train.max_iters}: train it further with "
            f"`assay train --out {run} --resume --set train.max_iters={cfg.train.max_iters}`)"
        )


def _final_evaluation(ckpt: Checkpoint, run: Path) -> None:
    """The eval.json a run killed between its last checkpoint and its final evaluation lacks."""
    from assay.train.evaluate import evaluate_checkpoint

    metrics = evaluate_checkpoint(load_checkpoint(run, prefer="best", tasks=JUDGE_TASKS | CORE_TASKS))
    keep = {k: v for k, v in metrics.items() if k not in ("checkpoint", "objective", "seconds", "val_samples")}
    atomic_write_json(run / "eval.json", {"iter": int(ckpt.state["iter"])} | keep)


def _stage_lm(recipe: RecipeConfig, out: Path) -> tuple[Stage, bool]:
    if recipe.lm_run:
        masked_lm(recipe.lm_run)
        _banner(1, "language model", f"using {recipe.lm_run} (--lm)")
        return Stage("lm", Path(recipe.lm_run), "given"), False
    run = out / "lm"
    cfg = recipe.lm
    if (run / "eval.json").exists():
        _banner(1, "language model", f"{run} is finished: reusing it")
        _shorter(run, cfg)
        return Stage("lm", run, "finished earlier"), False
    _banner(1, "language model", f"masked diffusion on {cfg.data.corpus}, {cfg.train.max_iters} steps -> {run}")
    block = cfg.data.block_size
    _check_corpus_size(cfg.data, 2 * block, block, f"the LM's blocks of {block}")
    status, interrupted = _train_stage(cfg, run, CORE_TASKS)
    return Stage("lm", run, "interrupted" if interrupted else status), interrupted


def _rewrite_data(lm: Checkpoint, corpus: str) -> DataConfig:
    """The LM's [data] section on the recipe's corpus (its own split unless the corpus is another)."""
    data = lm.config.data
    if corpus != data.corpus:
        keys = ("split", "val_fraction", "val_documents", "test_documents", "text_field")
        data = data.model_copy(update={k: type(data).model_fields[k].default for k in keys})
    return data.model_copy(update={"corpus": corpus, "stream": None})


def _stage_stream(recipe: RecipeConfig, out: Path, lm_dir: Path, show: bool) -> tuple[Stage, bool]:
    folder, cfg = out / "stream", recipe.rewrite
    if stream_complete(folder):
        _banner(2, "rewrites", f"{folder} is complete: reusing it")
        return Stage("stream", folder, "finished earlier"), False
    lm = masked_lm(lm_dir)
    if cfg.block_size > lm.config.data.block_size:
        console.print(f"rewrite.block_size lowered to the LM's block size, {lm.config.data.block_size}")
        cfg = cfg.model_copy(update={"block_size": lm.config.data.block_size})
    what = {"lm": "the LM fills masked positions", "llm": f"{recipe.llm.model} rewrites spans"}
    detail = what.get(cfg.kind, f"labelled texts from {getattr(cfg, 'path', None)}")
    _banner(2, "rewrites", f"{detail}; {cfg.shards} training shards of {cfg.shard_size} -> {folder}")
    data = _rewrite_data(lm, recipe.corpus)
    if cfg.kind == "lm":
        _check_corpus_size(data, cfg.block_size, cfg.block_size, f"passages of {cfg.block_size}")
    src = Sources(lm=lm_dir, tokenizer=lm.tokenizer, data=data, llm=recipe.llm, show=show)
    REWRITERS[cfg.kind](cfg, src, folder)
    done = stream_complete(folder)
    return Stage("stream", folder, "made" if done else "interrupted"), not done


def judge_config(base: JudgeConfig, lm: Checkpoint, stream: Path) -> JudgeConfig:
    """A judge's config with the LM's shape (so every trunk tensor transfers) and the stream's sample length."""
    tree = to_dict(base)
    tree["model"] |= {key: getattr(lm.config.model, key) for key in SHAPE} | {"attention": "bidirectional"}
    tree["data"]["block_size"] = int(read_meta(stream)["seq_len"])
    return validate(JudgeConfig, tree)


def _stage_judge(step: int, name: str, base: JudgeConfig, lm_dir: Path, stream: Path) -> tuple[Stage, bool]:
    run = Path(base.run.out_dir)
    title = {"scorer": "sequence scorer", "inspector": "token inspector"}[name]
    if (run / "eval.json").exists():
        _banner(step, title, f"{run} is finished: reusing it")
        _shorter(run, base)
        return Stage(name, run, "finished earlier"), False
    if name == "inspector" and not read_meta(stream).get("token_labels", True):
        _banner(step, title, "skipped: the labelled texts have scores only, no token labels")
        return Stage(name, run, "skipped"), False
    lm = masked_lm(lm_dir)
    cfg = judge_config(base, lm, stream)
    m = cfg.model
    _banner(step, title, f"{m.n_layer} x {m.n_embd} from the LM, {cfg.train.max_iters} steps -> {run}")
    status, interrupted = _train_stage(cfg, run, JUDGE_TASKS)
    return Stage(name, run, "interrupted" if interrupted else status), interrupted


# -- the whole -------------------------------------------------------------------------------------
def _preflight(recipe: RecipeConfig, out: Path, fresh: bool) -> None:
    """The input errors a stage would meet, found before anything is written: an LM that is not a
    masked-diffusion LM, a corpus too small for the LM's blocks, a bad labelled JSONL."""
    if recipe.lm_run:
        masked_lm(recipe.lm_run)
    elif fresh or not (out / "lm" / "eval.json").exists():
        block = recipe.lm.data.block_size
        _check_corpus_size(recipe.lm.data, 2 * block, block, f"the LM's blocks of {block}")
    rewrite = recipe.rewrite
    if rewrite.kind == "jsonl" and (fresh or not stream_complete(out / "stream")):
        if not rewrite.path:
            raise ConfigError("the jsonl rewriter needs the labelled texts: --jsonl FILE (rewrite.path)")
        read_labelled(rewrite.path)


@contextmanager
def _keeps_what_is_done(out: Path) -> Iterator[None]:
    """An input error met once OUT holds a recipe says how to go on from there."""
    try:
        yield
    except AssayError as exc:
        message = f"{exc} (fix it, then continue with --resume: {out} keeps the finished stages)"
        try:
            error = type(exc)(message)
        except TypeError:  # an error class with other arguments
            error = AssayError(message)
        raise error from None


def _claim(out: Path, resume: bool, overwrite: bool) -> None:
    """Refuse a non-empty OUT unless resuming or overwriting."""
    if resume and overwrite:
        raise ConfigError("--resume and --overwrite are exclusive: continue the run, or start it afresh")
    if out.exists() and not out.is_dir():
        raise ConfigError(f"{out} is a file, not a folder")
    held = out.is_dir() and any(p.name != ".lock" for p in out.iterdir())
    if held and not (resume or overwrite):
        raise ConfigError(
            f"{out} is not empty: continue it with --resume, or start afresh with --overwrite "
            "(deletes its lm, stream, scorer and inspector)"
        )
    if held and resume and not (out / RECIPE).is_file():
        raise ConfigError(f"{out} holds no `assay judge train` run (no {RECIPE}): choose another --out")


def train_judge(
    out: str | Path,
    *,
    config: str | Path | None = None,
    settings: dict[str, Any] | None = None,
    sets: list[str] | tuple[str, ...] = (),
    resume: bool = False,
    overwrite: bool = False,
    show: bool = True,
) -> RecipeResult:
    """Run the recipe into `out`: the settings are built as the module docstring says (`settings`:
    dotted key -> value for the flags given, e.g. {"corpus": "my.txt", "lm.train.max_iters": 500});
    a non-empty `out` needs `resume` (skip finished stages, continue an interrupted one) or
    `overwrite` (remove the recipe's folders first)."""
    out = Path(out)
    started = time.perf_counter()
    _claim(out, resume, overwrite)
    tree = settings_tree(out, config, settings or {}, sets, resume)
    recipe = build_recipe(out, tree)
    _preflight(recipe, out, fresh=overwrite or not resume)
    with folder_lock(out, "judge"), _keeps_what_is_done(out):
        if overwrite:
            remove_entries(out, ENTRIES)
        atomic_write_json(out / RECIPE, {"format": FORMAT, "tree": tree})
        result = RecipeResult(out, recipe)
        lm_dir = Path(recipe.lm_run) if recipe.lm_run else out / "lm"
        stages = [
            lambda: _stage_lm(recipe, out),
            lambda: _stage_stream(recipe, out, lm_dir, show),
            lambda: _stage_judge(3, "scorer", recipe.scorer, lm_dir, out / "stream"),
            lambda: _stage_judge(4, "inspector", recipe.inspector, lm_dir, out / "stream"),
        ]
        for run_stage in stages:
            begun = time.perf_counter()
            stage, result.interrupted = run_stage()
            stage.seconds = time.perf_counter() - begun
            result.stages.append(stage)
            if result.interrupted:
                break
    result.seconds = time.perf_counter() - started
    return result


# -- the summary ----------------------------------------------------------------------------------
def summary_rows(result: RecipeResult) -> list[dict[str, Any]]:
    """Per finished run (the LM, when it has an eval.json, then the judges): its final metrics and
    their likelihood baselines, as `assay report` reads them."""
    from assay.train.report import load_reports

    runs = [s.path for s in result.stages if s.status not in ("skipped", "interrupted") and s.name != "stream"]
    runs = [run for run in runs if (run / "eval.json").is_file()]
    return load_reports(runs, CORE_TASKS | JUDGE_TASKS)


def render_summary(result: RecipeResult, rows: list[dict[str, Any]]) -> None:
    """Where everything is, the metrics table (each judge beside the likelihood baseline) and how to use it."""
    import shlex

    from rich.console import Console
    from rich.table import Table

    out = Console(highlight=False, soft_wrap=True)
    titles = {"lm": "language model", "stream": "rewrites", "scorer": "sequence scorer", "inspector": "token inspector"}
    minutes, seconds = divmod(round(result.seconds), 60)
    out.print(f"\n[bold]assay judge train[/]: {minutes} min {seconds} s")
    for stage in result.stages:
        out.print(f"  {titles[stage.name]:16} {stage.path}  ({stage.status}, {stage.seconds:.0f} s)")
    table = Table(title="held-out validation (eval.json): each judge beside the LM-likelihood baseline")
    for col in ("run", "metric", "value", "baseline", "difference"):
        table.add_column(col, justify="left" if col in ("run", "metric") else "right")
    names = {"diffusion": "language model", "sequence_scoring": "sequence scorer", "token_classification": "inspector"}
    for row in rows:
        for i, m in enumerate(row["metrics"]):
            base = m["baseline"]
            table.add_row(
                names.get(row["objective"], row["objective"]) if i == 0 else "",
                m["metric"],
                f"{m['value']:.4f}",
                "" if base is None else f"{base:.4f}",
                "" if base is None else f"{m['value'] - base:+.4f}",
            )
        table.add_section()
    out.print(table)
    if result.interrupted:
        out.print(f"interrupted: continue with  assay judge train --out {shlex.quote(str(result.out))} --resume")
        return
    judges = [s for s in result.stages if s.name in ("scorer", "inspector") and s.status != "skipped"]
    if judges:
        out.print(f'score texts with:  assay score {shlex.quote(str(result.out))} "some text"')
