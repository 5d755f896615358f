"""The trace engine of the self-correction pipeline (`assay correct run`, docs/correct.md "Running").

Per question: an initial answer, then up to `max_turns` reprompts chosen by a policy:

    answer_0 = ask(initial prompt)                      # question (+ context), "Answer: ..." line
    for turn in 1..max_turns:
        mode, conf = predict_context(question, answers, turn)   # the classifier hook, logged on answer turn-1
        arm = credit.choose(Context.make(mode, conf, turn), prev_correct)
        if arm == "stop": break                          # stop credited 0 by Credit
        answer_turn = ask(conversation so far + template[arm])
        credit.observe(check(answer_turn), tokens_of_this_turn)  # reward -> (context, arm)
    (turn limit reached: the last answer is still classified, so every turn has error_mode/confidence)

Correctness comes from the task checker against the reference answer. That is the learning signal
of a training run (the reference is known); the policy itself only sees the predicted context, which
never uses the reference. Policy updates happen in the event loop's single thread, so concurrent
episodes update one shared policy without locks (the order of updates depends on completion order).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import random
import shutil
import time
from pathlib import Path
from typing import Any

from assay.correct.checkers import Checker, checker_for, load_checker
from assay.correct.config import CorrectConfig
from assay.correct.context import Predictor, predict_context
from assay.correct.failure_modes import label_with_answers
from assay.correct.policy import STOP, Context, Credit, Policy, apply_episode
from assay.correct.qa import stream_qa
from assay.correct.records import TraceRecord, TurnRecord, make_trace_id, read_traces, utc_now
from assay.correct.summary import summarize
from assay.correct.templates import Template, load_templates
from assay.errors import ConfigError
from assay.io import atomic_write_json
from assay.llm.types import ChatRequest
from assay.pipeline.runner import completed_ids
from assay.pipeline.step import Job, Step, arun_step
from assay.rng import stable_rng
from assay.version import __version__

ANSWER_FORMATS = {
    "gsm8k": "Answer: <number>",
    "boolq": "Answer: yes or no",
}
ANSWER_LINE = "End your reply with a final line of the form '{fmt}'."


# ----------------------------------------------------------------------------- prompts


def answer_format(dataset: str) -> str:
    return ANSWER_LINE.format(fmt=ANSWER_FORMATS.get(dataset, "Answer: <short answer>"))


def initial_prompt(question: str, context: str | None, dataset: str) -> str:
    """The first user message: the passage (BoolQ, HotpotQA) if any, the question, the answer format."""
    parts = []
    if context:
        parts.append(f"Context:\n{context}\n")
    parts.append(f"Question: {question}")
    parts.append("Think briefly, then answer. " + answer_format(dataset))
    return "\n".join(parts)


def reprompt(template: Template, question: str, previous: str, dataset: str) -> str:
    return template.render(question, previous) + "\n" + answer_format(dataset)


# ----------------------------------------------------------------------------- one episode


class Engine:
    """Runs episodes against one LLM client, checker, template library and shared policy."""

    def __init__(
        self,
        client: Any,
        model: str,
        checker: Checker,
        templates: dict[str, Template],
        policy: Policy,
        config: CorrectConfig,
        version: str = "",
        predictor: Predictor = predict_context,
        *,
        run_tag: str,
    ):
        self.client, self.model, self.checker = client, model, checker
        self.templates, self.policy, self.config, self.version = templates, policy, config, version
        self.predictor, self.run_tag = predictor, run_tag

    async def _ask(self, messages: list[dict[str, str]], row_id: str, turn: int):
        request = ChatRequest(
            model=self.model,
            messages=list(messages),
            temperature=self.config.temperature,
            max_tokens=self.config.max_tokens,
            seed=stable_rng(self.config.seed, row_id, turn).randrange(2**31),
        )
        return await self.client.complete(request)

    def _turn(self, turn_id: int, question: str, prompt: str, response, prev: TurnRecord | None, reference: str):
        check = self.checker.check(response.text, reference)
        billed = response.usage.prompt_tokens + response.usage.completion_tokens
        prev_total = 0 if prev is None else prev.billed_tokens
        return TurnRecord(
            turn_id=turn_id,
            question=question,
            prompt_id=None,
            style=None,
            prompt_text=prompt,
            answer=response.text,
            extracted=check.extracted,
            correct=bool(check.correct),
            score=float(check.score),
            error_mode=None,  # set once the predictor has seen this answer
            confidence_score=None,
            delta_accuracy=0 if prev is None else int(check.correct) - int(prev.correct),
            # the conversation is re-sent each turn: this turn's own tokens are what it added to it
            token_count=max(0, billed - prev_total),
            billed_tokens=billed,
            latency_s=round(response.latency_s, 4),
            cached=response.cached,
            timestamp=utc_now(),
        )

    def _classify(self, question: str, turns: list[TurnRecord]) -> tuple[str, float]:
        """The predictor's (mode, confidence) after the last answer, logged on that turn."""
        mode, confidence = self.predictor(question, [(t.answer, t.extracted) for t in turns], len(turns))
        turns[-1].error_mode, turns[-1].confidence_score = mode, round(confidence, 4)
        return mode, confidence

    async def run(self, row: dict[str, Any]) -> dict[str, Any]:
        """One episode for a QA row (QAItem fields + row_id) -> a TraceRecord dict."""
        rid, question, reference = str(row["row_id"]), row["question"], row["reference_answer"]
        dataset = row.get("dataset") or self.config.dataset
        prompt = initial_prompt(question, row.get("context"), dataset)
        messages = [{"role": "user", "content": prompt}]
        response = await self._ask(messages, rid, 0)
        turns = [self._turn(0, question, prompt, response, None, reference)]
        messages.append({"role": "assistant", "content": response.text})
        # updates are only logged here; arun_correct applies them once the trace is written
        credit = Credit(self.policy, lam=self.config.lam, apply=False)
        stopped_by = "max_turns"
        for turn in range(1, self.config.max_turns + 1):
            prev = turns[-1]
            mode, confidence = self._classify(question, turns)
            context = Context.make(mode, confidence, turn)
            arm = credit.choose(context, prev_correct=prev.correct)
            if arm == STOP:
                stopped_by = "policy"
                break
            template = self.templates[arm]
            text = reprompt(template, question, prev.extracted or prev.answer.strip()[-300:], dataset)
            messages.append({"role": "user", "content": text})
            response = await self._ask(messages, rid, turn)
            record = self._turn(turn, question, text, response, prev, reference)
            record.prompt_id, record.style, record.context = arm, template.style, context.key
            record.reward = credit.observe(new_correct=record.correct, tokens=record.token_count)
            turns.append(record)
            messages.append({"role": "assistant", "content": response.text})
        if turns[-1].error_mode is None:  # the turn limit ended the episode before a prediction
            self._classify(question, turns)
        correct = [t.correct for t in turns]
        keys = [t.extracted if t.extracted is not None else t.answer for t in turns]
        return TraceRecord(
            trace_id=make_trace_id(self.run_tag, rid),
            dataset_name=dataset,
            question_id=rid,
            reference_answer=reference,
            turns=turns,
            final_accuracy=int(correct[-1]),
            total_tokens=sum(t.billed_tokens for t in turns),
            total_turns=len(turns),
            pipeline_version=self.version,
            created_at=utc_now(),
            row_id=rid,
            question=question,
            initial_correct=correct[0],
            failure_mode=label_with_answers(correct, keys),
            stopped_by=stopped_by,
            policy=self.policy.kind,
            predictor=getattr(self.predictor, "name", "heuristic"),
            updates=[u.to_dict() for u in credit.updates],
        ).to_dict()


# ----------------------------------------------------------------------------- the run


def make_policy(config: CorrectConfig, template_ids: list[str], state_path: Path) -> Policy:
    """The saved policy at `state_path` if it exists (same kind required), else a fresh one."""
    from assay.correct.policy import (
        EpsilonGreedyPolicy,
        FixedPolicy,
        NeverRepromptPolicy,
        OutcomeUCBPolicy,
        RandomPolicy,
        SharedThompsonPolicy,
        ThompsonPolicy,
        load_policy,
        make_arms,
    )

    kind = config.policy_kind
    if config.policy == "fixed":
        if not config.template:
            raise ConfigError("policy fixed needs a template: --template ID (correct.template)")
        if config.template not in template_ids:
            raise ConfigError(f"unknown template {config.template!r} (e.g. {', '.join(template_ids[:4])}, ...)")
    if state_path.exists():
        policy = load_policy(state_path)
        if policy.kind != kind:
            raise ConfigError(f"{state_path} holds a {policy.kind!r} policy, not {kind!r}: use another --policy-state")
        unknown = [a for a in policy.arms if a != STOP and a not in template_ids]
        if unknown:
            raise ConfigError(f"{state_path}: arms not in the template library: {', '.join(unknown[:5])}")
        if config.policy == "fixed" and config.template not in policy.arms:
            raise ConfigError(f"{state_path} is a fixed policy for another template than {config.template!r}")
        return policy
    arms = make_arms(template_ids)
    if config.policy == "ucb":
        return OutcomeUCBPolicy(arms, rng=config.seed)
    if config.policy == "thompson":
        return ThompsonPolicy(arms, rng=config.seed)
    if config.policy == "shared":
        return SharedThompsonPolicy(arms, rng=config.seed)
    if config.policy == "epsilon":
        return EpsilonGreedyPolicy(arms, rng=config.seed)
    if config.policy == "random":
        return RandomPolicy(arms, rng=config.seed)
    if config.policy == "fixed":
        return FixedPolicy(config.template)
    return NeverRepromptPolicy()


def make_predictor(config: CorrectConfig) -> Predictor:
    """The trained classifier of `config.classifier`, else the heuristic `predict_context`."""
    if config.classifier is None:
        return predict_context
    from assay.correct.classifier import FailureClassifier

    return FailureClassifier.load(config.classifier)


# Settings that never change a trace: left out of the run tag (the policy files count by content).
_TAG_IGNORES = {"plots", "policy_state", "policy_init", "data"}


def _digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, ensure_ascii=False, default=str).encode()).hexdigest()


def run_tag(
    config: CorrectConfig, llm: Any, rows: list[dict[str, Any]], templates: list[Template], policy: Policy
) -> str:
    """12 hex digits naming a run: trace_id = `<run tag>:<question id>`, and the policy's `applied`
    keys. A digest of what decides the run's traces: assay's version, the [correct] settings (not
    plots or file locations), the model and endpoint, the questions, the templates, the trained
    classifier's classifier.json, and the policy state the run starts from. So a rerun of the same
    inputs (same seed) has the same ids, while a run that continues a policy which has learned since
    gets new ones, and no two runs feeding one policy state share a key. A custom checker file counts
    by its path only."""
    public = llm.public_dict() if hasattr(llm, "public_dict") else {}
    classifier = None
    if config.classifier is not None and (Path(config.classifier) / "classifier.json").is_file():
        classifier = hashlib.sha256((Path(config.classifier) / "classifier.json").read_bytes()).hexdigest()
    identity = {
        "assay": __version__,
        "correct": config.model_dump(mode="json", exclude=_TAG_IGNORES),
        "llm": {"model": public.get("model"), "api_base": public.get("api_base")},
        "questions": _digest(rows),
        "templates": [[t.id, t.style, t.text] for t in templates],
        "classifier": classifier,
        "policy": policy.to_json(),
    }
    return _digest(identity)[:12]


def _saved_run_tag(out_dir: Path) -> str | None:
    """The tag of the run in `out_dir` (run_config.json), kept across --resume."""
    try:
        tag = json.loads((out_dir / "run_config.json").read_text(encoding="utf-8")).get("run_tag")
    except (OSError, ValueError, AttributeError):
        return None
    return tag if isinstance(tag, str) and tag else None


SAVE_EVERY_S = 2.0  # the policy state is saved at most this often while a run goes (and at its end)


class CorrectStep(Step):
    """One run: OUT/traces.jsonl, OUT/summary.json, the policy state, plots.

    The policy learns only from written traces: each trace's logged updates are applied right after
    it is flushed (`written`, keyed by run tag and question id), and on --resume the traces already
    in the file whose updates the saved state lacks (a kill between a write and a save) are applied
    first. So the saved state always equals "the updates of the traces written", never more.
    """

    name = "correct"
    not_shipped = ("rows",)  # a Ray actor gets its questions as the rows it processes

    def __init__(self, config: CorrectConfig, out_dir: Path, llm, runner):
        super().__init__(out_dir, runner, llm)
        self.config = config
        self.traces_path = self.out_dir / "traces.jsonl"
        self.state_path = Path(config.policy_state) if config.policy_state else self.out_dir / "policy.json"
        self.policy: Policy | None = None

    def outputs(self) -> list[Path]:
        return [self.traces_path]

    def stale_files(self) -> list[Path]:
        return [self.out_dir / "summary.json", self.out_dir / "policy.json"]

    def settings(self) -> dict[str, Any]:
        return {"correct": self.config.model_dump(mode="json")}

    def run_info(self) -> dict[str, Any]:
        return {"policy_state": str(self.state_path), "run_tag": self.run_tag}

    def setup(self) -> None:
        config = self.config
        if config.policy_init is not None and not self.state_path.exists():
            if not Path(config.policy_init).is_file():
                raise ConfigError(f"policy_init: no such file {config.policy_init}")
            self.state_path.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(config.policy_init, self.state_path)
        templates = load_templates(config.templates)
        self.policy = make_policy(config, [t.id for t in templates], self.state_path)
        checker = load_checker(config.checker) if config.checker else checker_for(config.dataset)
        self.predictor = make_predictor(config)
        self.rows = [item.to_dict() | {"row_id": item.id} for item in stream_qa(config.dataset, config.data)]
        if not self.rows:
            raise ConfigError(f"no questions in {config.data or config.dataset + ' sample'}")
        saved = _saved_run_tag(self.out_dir) if self.runner.resume else None
        self.run_tag = saved or run_tag(config, self.llm, self.rows, templates, self.policy)
        if self.runner.resume and self.traces_path.exists():
            completed_ids(self.traces_path)  # cuts off a line torn by the kill, as the runner will
            # old traces (no trace_id) get <run tag>:<question id>, the key the old engine applied them under
            for trace in read_traces(self.traces_path, run_tag=self.run_tag):
                apply_episode(self.policy, trace.trace_id, [u.model_dump() for u in trace.updates])
        templates_by_id = {t.id: t for t in templates}
        # the client is opened after set-up, just before the jobs run
        self.engine = Engine(
            None,
            self.llm.model,
            checker,
            templates_by_id,
            self.policy,
            config,
            __version__,
            self.predictor,
            run_tag=self.run_tag,
        )
        self.last_save = time.monotonic()

    def start(self) -> None:
        self.engine.client = self.client

    def refresh(self) -> None:
        """Under Ray (docs/scale.md): choose arms with the policy the driver has learned from the
        traces written so far, read from its state file whenever the driver has saved a newer one
        (at most every SAVE_EVERY_S); this actor keeps its own random stream, seeded apart from the
        other actors' so that their draws differ."""
        try:
            stamp = self.state_path.stat().st_mtime_ns
        except OSError:
            stamp = None
        if not hasattr(self, "_state_seen"):  # the first batch of this actor
            self._state_seen = None
            if hasattr(self.policy, "rng"):
                self.policy.rng = random.Random(os.urandom(16))
        if stamp is None or stamp == self._state_seen:
            return
        from assay.correct.policy import load_policy

        fresh = load_policy(self.state_path)
        if hasattr(self.policy, "rng") and hasattr(fresh, "rng"):
            fresh.rng = self.policy.rng
        self._state_seen = stamp
        self.policy = self.engine.policy = fresh

    def jobs(self) -> list[Job]:
        return [Job(self.rows, self.traces_path, "correct")]

    async def process(self, row: dict[str, Any]) -> dict[str, Any]:
        return await self.engine.run(row)

    def written(self, trace: dict[str, Any]) -> None:
        apply_episode(self.policy, trace["trace_id"], trace["updates"])
        if time.monotonic() - self.last_save >= SAVE_EVERY_S:
            self.policy.save(self.state_path)
            self.last_save = time.monotonic()

    async def close(self) -> None:
        if self.policy is not None:  # also when the run aborts: it holds exactly the written traces' updates
            self.policy.save(self.state_path)

    def finish(self, stats) -> dict[str, Any]:
        traces = list(read_traces(self.traces_path, run_tag=self.run_tag))
        if self.config.plots and traces:
            from assay.correct.plots import plot_run

            plot_run(traces, self.out_dir / "plots")
        return summarize(traces) | {
            "policy": self.policy.kind,
            "policy_state": str(self.state_path),
            "predictor": getattr(self.predictor, "name", "heuristic"),
            "run": stats["correct"].to_dict(),
        }


async def arun_correct(
    config: CorrectConfig, out_dir: Path, llm_settings: Any, runner_settings: Any, client: Any = None
) -> dict[str, Any]:
    """One run in a running event loop; `client`: an open LLM client to share (`assay correct
    compare`), else the run opens its own. Returns the summary (with this run's LLM usage), also
    written to OUT/summary.json."""
    summary = await arun_step(CorrectStep(config, Path(out_dir), llm_settings, runner_settings), client)
    atomic_write_json(Path(out_dir) / "summary.json", summary)
    return summary


def run_correct(config: CorrectConfig, out_dir: Path, llm_settings: Any, runner_settings: Any) -> dict[str, Any]:
    """`arun_correct` with its own event loop and LLM client."""
    return asyncio.run(arun_correct(config, out_dir, llm_settings, runner_settings))
