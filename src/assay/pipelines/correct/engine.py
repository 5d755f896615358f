"""The trace engine of the self-correction pipeline (`assay correct run`, docs/correct.md "Running").

Per question: an initial answer, then up to `max_turns` reprompts chosen by a policy:

    answer_0 = ask(initial prompt)                      # question (+ context), "Answer: ..." line
    for turn in 1..max_turns:
        mode, conf = predict_context(question, answers, turn)   # the classifier hook
        arm = credit.choose(Context.make(mode, conf, turn), prev_correct)
        if arm == "stop": break                          # stop credited 0 by Credit
        answer_turn = ask(conversation so far + template[arm])
        credit.observe(check(answer_turn), tokens_of_this_turn)  # reward -> (context, arm)

Correctness comes from the task checker against the reference answer. That is the learning signal
of a training run (the reference is known); the policy itself only sees the predicted context, which
never uses the reference. Policy updates happen in the event loop's single thread, so concurrent
episodes update one shared policy without locks (the order of updates depends on completion order).
"""

from __future__ import annotations

import asyncio
import re
import shutil
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from assay.errors import ConfigError
from assay.pipelines.correct.checkers import Checker
from assay.pipelines.correct.config import CorrectConfig
from assay.pipelines.correct.failure_modes import ANCHORED, CORRECTED, FAILURE_MODES, WAVERING, label_with_answers
from assay.pipelines.correct.policy import STOP, Context, Credit, Policy
from assay.pipelines.correct.records import TraceRecord, TurnRecord
from assay.pipelines.correct.templates import Template

ANSWER_FORMATS = {
    "gsm8k": "Answer: <number>",
    "boolq": "Answer: yes or no",
}
ANSWER_LINE = "End your reply with a final line of the form '{fmt}'."
Predictor = Callable[[str, list[tuple[str, str | None]], int], tuple[str, float]]


# ----------------------------------------------------------------------------- the classifier hook

_HEDGES = re.compile(
    r"\b(maybe|might|perhaps|possibly|probably|not sure|unsure|i think|i believe|guess|approximately|"
    r"likely|could be|uncertain|seems?)\b",
    re.IGNORECASE,
)


def answer_keys(answers: list[tuple[str, str | None]]) -> list[str]:
    """Each answer's extracted key, or its whitespace-collapsed, case-folded text when it has none."""
    return [key if key is not None else " ".join(text.split()).casefold() for text, key in answers]


def count_changes(keys: list[str]) -> int:
    """How often consecutive answer keys differ."""
    return sum(a != b for a, b in zip(keys, keys[1:], strict=False))


def hedges(text: str) -> set[str]:
    """The distinct hedging phrases ("maybe", "i think", ...) in `text`, lowercased."""
    return {m.lower() for m in _HEDGES.findall(text)}


def predict_context(question: str, answers_so_far: list[tuple[str, str | None]], turn: int) -> tuple[str, float]:
    """The heuristic (failure mode, confidence) before reprompt `turn` (1-based), used when no trained
    classifier is given (`correct.classifier`, see classifier.py); it never looks at the reference.
    `answers_so_far` = [(raw text, extracted key or None), ...].
    - mode: from how often the extracted answer changed so far (k changes): k = 0 -> "anchored" (the
      model holds its answer), k = 1 -> "corrected" (it moved once), k >= 2 -> "wavering".
    - confidence: 0.9, minus 0.2 per distinct hedging phrase in the last answer, minus 0.1 per change,
      0.2 when no answer could be extracted; clipped to [0.05, 0.95].
    """
    changes = count_changes(answer_keys(answers_so_far))
    mode = ANCHORED if changes == 0 else CORRECTED if changes == 1 else WAVERING
    assert mode in FAILURE_MODES
    last_text, last_key = answers_so_far[-1]
    if last_key is None:
        return mode, 0.2
    confidence = 0.9 - 0.2 * len(hedges(last_text)) - 0.1 * changes
    return mode, min(0.95, max(0.05, confidence))


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


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


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
    ):
        self.client, self.model, self.checker = client, model, checker
        self.templates, self.policy, self.config, self.version = templates, policy, config, version
        self.predictor = predictor

    async def _ask(self, messages: list[dict[str, str]], row_id: str, turn: int):
        from assay.llm.types import ChatRequest
        from assay.rng import stable_rng

        request = ChatRequest(
            model=self.model,
            messages=list(messages),
            temperature=self.config.temperature,
            max_tokens=self.config.max_tokens,
            seed=stable_rng(self.config.seed, row_id, turn).randrange(2**31),
        )
        return await self.client.complete(request)

    def _turn(self, turn_id: int, prompt: str, response, prev_total: int, prev_correct: bool | None, reference: str):
        check = self.checker.check(response.text, reference)
        billed = response.usage.prompt_tokens + response.usage.completion_tokens
        return TurnRecord(
            turn_id=turn_id,
            prompt_id=None,
            style=None,
            prompt_text=prompt,
            answer=response.text,
            extracted=check.extracted,
            correct=bool(check.correct),
            score=float(check.score),
            delta_accuracy=0 if prev_correct is None else int(check.correct) - int(prev_correct),
            # the conversation is re-sent each turn: this turn's own tokens are what it added to it
            token_count=max(0, billed - prev_total),
            billed_tokens=billed,
            latency_s=round(response.latency_s, 4),
            cached=response.cached,
            timestamp=_now(),
        )

    async def run(self, row: dict[str, Any]) -> dict[str, Any]:
        """One episode for a QA row (QAItem fields + row_id) -> a TraceRecord dict."""
        rid, question, reference = str(row["row_id"]), row["question"], row["reference_answer"]
        dataset = row.get("dataset") or self.config.dataset
        prompt = initial_prompt(question, row.get("context"), dataset)
        messages = [{"role": "user", "content": prompt}]
        response = await self._ask(messages, rid, 0)
        turns = [self._turn(0, prompt, response, 0, None, reference)]
        messages.append({"role": "assistant", "content": response.text})
        # updates are only logged here; arun_correct applies them once the trace is written
        credit = Credit(self.policy, lam=self.config.lam, apply=False)
        stopped_by = "max_turns"
        for turn in range(1, self.config.max_turns + 1):
            prev = turns[-1]
            mode, confidence = self.predictor(question, [(t.answer, t.extracted) for t in turns], turn)
            context = Context.make(mode, confidence, turn)
            arm = credit.choose(context, prev_correct=prev.correct)
            if arm == STOP:
                stopped_by = "policy"
                break
            template = self.templates[arm]
            text = reprompt(template, question, prev.extracted or prev.answer.strip()[-300:], dataset)
            messages.append({"role": "user", "content": text})
            response = await self._ask(messages, rid, turn)
            record = self._turn(turn, text, response, prev.billed_tokens, prev.correct, reference)
            record.prompt_id, record.style = arm, template.style
            record.context, record.error_mode, record.confidence_score = context.key, mode, round(confidence, 4)
            record.reward = credit.observe(new_correct=record.correct, tokens=record.token_count)
            turns.append(record)
            messages.append({"role": "assistant", "content": response.text})
        correct = [t.correct for t in turns]
        keys = [t.extracted if t.extracted is not None else t.answer for t in turns]
        return TraceRecord(
            row_id=rid,
            question_id=rid,
            dataset_name=dataset,
            question=question,
            reference_answer=reference,
            turns=turns,
            initial_correct=correct[0],
            final_correct=correct[-1],
            failure_mode=label_with_answers(correct, keys),
            n_turns=len(turns) - 1,
            total_tokens=sum(t.billed_tokens for t in turns),
            stopped_by=stopped_by,
            policy=self.policy.kind,
            predictor=getattr(self.predictor, "name", "heuristic"),
            updates=[{"context": u.context, "arm": u.arm, "reward": u.reward} for u in credit.updates],
            pipeline_version=self.version,
            created_at=_now(),
        ).to_dict()


# ----------------------------------------------------------------------------- the run


def make_policy(config: CorrectConfig, template_ids: list[str], state_path: Path) -> Policy:
    """The saved policy at `state_path` if it exists (same kind required), else a fresh one."""
    from assay.pipelines.correct.policy import (
        EpsilonGreedyPolicy,
        FixedPolicy,
        NeverRepromptPolicy,
        RandomPolicy,
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
    if config.policy == "thompson":
        return ThompsonPolicy(arms, rng=config.seed)
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
    from assay.pipelines.correct.classifier import FailureClassifier

    return FailureClassifier.load(config.classifier)


def _run_tag(out_dir: Path, resume: bool) -> str:
    """Names this traces file in the policy's `applied` keys; kept across --resume, new otherwise."""
    import json
    import uuid

    if resume:
        try:
            tag = json.loads((out_dir / "run_config.json").read_text(encoding="utf-8")).get("run_tag")
        except (OSError, ValueError):
            tag = None
        if isinstance(tag, str) and tag:
            return tag
    return uuid.uuid4().hex[:12]


SAVE_EVERY_S = 2.0  # the policy state is saved at most this often while a run goes (and at its end)


async def arun_correct(
    config: CorrectConfig, out_dir: Path, client: Any, llm_settings: Any, runner_settings: Any
) -> dict[str, Any]:
    """One run with an open LLM client: OUT/traces.jsonl, OUT/summary.json, the policy state, plots.

    The policy learns only from written traces: each trace's logged updates are applied right after
    it is flushed (`apply_episode`, keyed by run tag and question id), and on --resume the traces
    already in the file whose updates the saved state lacks (a kill between a write and a save) are
    applied first. So the saved state always equals "the updates of the traces written", never more.
    """
    import time

    from assay import __version__
    from assay.data.qa import stream_qa
    from assay.io import atomic_write_json
    from assay.pipelines.correct.checkers import checker_for, load_checker
    from assay.pipelines.correct.policy import apply_episode
    from assay.pipelines.correct.summary import summarize
    from assay.pipelines.correct.templates import load_templates
    from assay.pipelines.runner import arun_rows, guard_outputs, read_jsonl, write_run_config

    out_dir = Path(out_dir)
    traces_path = out_dir / "traces.jsonl"
    guard_outputs([traces_path], runner_settings)
    if runner_settings.overwrite and not runner_settings.resume:
        for name in ("summary.json", "policy.json"):
            (out_dir / name).unlink(missing_ok=True)
    state_path = Path(config.policy_state) if config.policy_state else out_dir / "policy.json"
    if config.policy_init is not None and not state_path.exists():
        if not Path(config.policy_init).is_file():
            raise ConfigError(f"policy_init: no such file {config.policy_init}")
        state_path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(config.policy_init, state_path)
    templates = load_templates(config.templates)
    policy = make_policy(config, [t.id for t in templates], state_path)
    checker = load_checker(config.checker) if config.checker else checker_for(config.dataset)
    predictor = make_predictor(config)
    rows = [item.to_dict() | {"row_id": item.id} for item in stream_qa(config.dataset, config.data)]
    if not rows:
        raise ConfigError(f"no questions in {config.data or config.dataset + ' sample'}")
    run_tag = _run_tag(out_dir, runner_settings.resume)
    if runner_settings.resume and traces_path.exists():
        for trace in read_jsonl(traces_path):
            apply_episode(policy, f"{run_tag}:{trace['row_id']}", trace.get("updates", []))
    write_run_config(
        out_dir,
        "correct",
        {
            "correct": config.model_dump(mode="json"),
            "llm": llm_settings.public_dict(),
            "runner": runner_settings.model_dump(),
        },
        {"policy_state": str(state_path), "run_tag": run_tag},
    )
    engine = Engine(
        client, llm_settings.model, checker, {t.id: t for t in templates}, policy, config, __version__, predictor
    )
    last_save = [time.monotonic()]
    usage_before = client.usage.summary()  # the client may be shared (compare): report this run's part

    def on_written(trace: dict[str, Any]) -> None:
        apply_episode(policy, f"{run_tag}:{trace['row_id']}", trace["updates"])
        if time.monotonic() - last_save[0] >= SAVE_EVERY_S:
            policy.save(state_path)
            last_save[0] = time.monotonic()

    try:
        stats = await arun_rows(rows, engine.run, traces_path, runner_settings, "correct", on_written)
    finally:
        policy.save(state_path)  # also when the run aborts: it holds exactly the written traces' updates
    traces = list(read_jsonl(traces_path))
    summary = summarize(traces) | {
        "policy": policy.kind,
        "policy_state": str(state_path),
        "predictor": getattr(predictor, "name", "heuristic"),
        "run": stats.to_dict(),
        "usage": _usage_delta(usage_before, client.usage.summary()),
    }
    atomic_write_json(out_dir / "summary.json", summary)
    if config.plots and traces:
        from assay.pipelines.correct.plots import plot_run

        plot_run(traces, out_dir / "plots")
    return summary


def _usage_delta(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """`after - before` for every number of a usage summary (nested per model), rounded like it."""
    out: dict[str, Any] = {}
    for key, value in after.items():
        old = before.get(key)
        if isinstance(value, dict):
            out[key] = _usage_delta(old if isinstance(old, dict) else {}, value)
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            delta = value - (old if isinstance(old, (int, float)) else 0)
            out[key] = round(delta, 8) if isinstance(delta, float) else delta
        else:
            out[key] = value
    return out


def run_correct(config: CorrectConfig, out_dir: Path, llm_settings: Any, runner_settings: Any) -> dict[str, Any]:
    """`arun_correct` with its own LLM client; returns the summary."""
    from assay.llm.client import LLMClient

    async def main() -> dict[str, Any]:
        client = LLMClient(llm_settings)
        try:
            return await arun_correct(config, out_dir, client, llm_settings, runner_settings)
        finally:
            await client.aclose()

    return asyncio.run(main())
