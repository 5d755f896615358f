"""Reprompt policies: posterior maths, learning on simulated bandits, credit assignment, persistence."""

from __future__ import annotations

import json
import random

import pytest

from assay.correct.policy import (
    STOP,
    Context,
    Credit,
    EpsilonGreedyPolicy,
    FixedPolicy,
    NeverRepromptPolicy,
    Policy,
    RandomPolicy,
    ThompsonPolicy,
    all_contexts,
    confidence_bin,
    load_policy,
    make_arms,
    reward,
    turn_bin,
)
from assay.correct.templates import load_templates
from assay.errors import AssayError

CTX = Context.make("anchored", 0.5, 1)
ARMS = make_arms(["a", "b", "c"])


def _bandit(policy: Policy, means: dict[str, float], steps: int, env: random.Random, ctx=CTX) -> list[str]:
    """Each reprompt arm fixes (+1) with probability means[arm] and breaks (-1) otherwise; STOP earns 0."""
    chosen = []
    for _ in range(steps):
        arm = policy.select(ctx)
        r = 0.0 if arm == STOP else (1.0 if env.random() < means[arm] else -1.0)
        policy.update(ctx, arm, r)
        chosen.append(arm)
    return chosen


def test_contexts_bins_and_reward():
    assert [confidence_bin(x) for x in (0.0, 0.39, 0.4, 0.69, 0.7, 1.0)] == [
        "<0.4",
        "<0.4",
        "<0.7",
        "<0.7",
        ">=0.7",
        ">=0.7",
    ]
    assert [turn_bin(t) for t in (1, 2, 3, 9)] == ["t1", "t2", "t3+", "t3+"]
    assert Context.make("wavering", 0.9, 4).key == "wavering|>=0.7|t3+"
    assert len(all_contexts()) == 54 == len({c.key for c in all_contexts()})
    assert reward(False, True, 100, 0.001) == pytest.approx(0.9)
    assert reward(True, False, 0, 0.5) == -1.0
    assert reward(True, True, 10, 0.01) == pytest.approx(-0.1)
    for bad in (lambda: confidence_bin(1.5), lambda: turn_bin(0), lambda: Context.make("confused", 0.5, 1)):
        with pytest.raises(AssayError):
            bad()
    assert make_arms(["x", STOP, "y"]) == ("x", "y", STOP)


def test_beta_posterior_after_known_rewards():
    p = ThompsonPolicy(ARMS, rng=0)
    assert p.params(CTX, "a") == (1.0, 1.0, 0)
    for r in (1.0, 1.0, -1.0, 0.0, 3.0, -0.5):  # p = 1, 1, 0, 0.5, clipped 1, 0.25
        p.update(CTX, "a", r)
    a, b, n = p.params(CTX, "a")
    assert (a, b, n) == (
        pytest.approx(1 + 1 + 1 + 0 + 0.5 + 1 + 0.25),
        pytest.approx(1 + 0 + 0 + 1 + 0.5 + 0 + 0.75),
        6,
    )
    p.update(CTX, STOP, 0.0)
    assert p.params(CTX, STOP) == (1.5, 1.5, 1) and p.expected_reward(CTX, STOP) == 0.0
    # Other contexts and arms are untouched.
    assert p.params(Context.make("anchored", 0.5, 2), "a") == (1.0, 1.0, 0)
    assert p.params(CTX, "b") == (1.0, 1.0, 0)
    with pytest.raises(AssayError, match="unknown arm"):
        p.update(CTX, "zzz", 1.0)
    with pytest.raises(AssayError, match="finite"):
        p.update(CTX, "a", float("nan"))
    assert p.params(CTX, "a")[2] == 6


def test_thompson_converges_to_the_best_arm():
    p = ThompsonPolicy(ARMS, rng=1)
    chosen = _bandit(p, {"a": 0.3, "b": 0.5, "c": 0.8}, 2000, random.Random(2))
    assert chosen[-500:].count("c") / 500 > 0.8
    assert p.best_arm(CTX) == "c"


def test_epsilon_decays_and_greedy_picks_the_best_mean():
    p = EpsilonGreedyPolicy(ARMS, rng=3, epsilon0=0.5, decay=0.99, epsilon_min=0.05)
    assert p.epsilon() == 0.5
    assert p.epsilon(10) == pytest.approx(0.5 * 0.99**10)
    assert p.epsilon(10_000) == 0.05
    chosen = _bandit(p, {"a": 0.3, "b": 0.5, "c": 0.8}, 2000, random.Random(4))
    assert p.step == 2000 and p.epsilon() == 0.05
    assert p.best_arm(CTX) == "c"
    assert chosen[-500:].count("c") / 500 > 0.9
    mean, n = p.value(CTX, "c")
    assert n > 1500 and mean == pytest.approx(0.6, abs=0.1)  # 0.8 * 1 + 0.2 * -1


def test_running_mean_is_exact():
    p = EpsilonGreedyPolicy(ARMS, rng=0)
    for r in (1.0, -1.0, 0.5):
        p.update(CTX, "b", r)
    assert p.value(CTX, "b") == (pytest.approx(0.5 / 3), 3)


@pytest.mark.parametrize("cls", [ThompsonPolicy, EpsilonGreedyPolicy])
def test_stop_wins_when_reprompting_hurts_and_loses_when_it_helps(cls):
    hurt = cls(ARMS, rng=5)
    chosen = _bandit(hurt, {"a": 0.2, "b": 0.3, "c": 0.1}, 1500, random.Random(6))
    assert chosen[-500:].count(STOP) / 500 > 0.8
    assert hurt.best_arm(CTX) == STOP
    helps = cls(ARMS, rng=5)
    chosen = _bandit(helps, {"a": 0.2, "b": 0.75, "c": 0.1}, 1500, random.Random(6))
    assert chosen[-500:].count(STOP) / 500 < 0.15
    assert helps.best_arm(CTX) == "b"


def test_contexts_learn_separately():
    p = ThompsonPolicy(ARMS, rng=7)
    good, bad = Context.make("anchored", 0.2, 1), Context.make("unchanged_correct", 0.9, 1)
    env = random.Random(8)
    _bandit(p, {"a": 0.9, "b": 0.9, "c": 0.9}, 800, env, ctx=good)
    _bandit(p, {"a": 0.05, "b": 0.05, "c": 0.05}, 800, env, ctx=bad)
    assert p.best_arm(good) != STOP and p.best_arm(bad) == STOP


def test_credit_goes_to_the_action_that_produced_the_answer():
    """A 3-turn episode: W -(a)-> R -(b)-> W -(stop). Each reward lands on the arm that made the answer."""
    script = iter(["a", "b", STOP])

    class Scripted(ThompsonPolicy):
        def select(self, context):
            super().select(context)
            return next(script)

    policy = Scripted(ARMS, rng=0)
    credit = Credit(policy, lam=0.001)
    answers = [False]  # answer 0 is wrong
    model = iter([(True, 100), (False, 50)])  # what each reprompt produces: (correct, tokens)
    contexts = []
    for turn in range(1, 4):
        ctx = Context.make(["anchored", "corrected", "wavering"][turn - 1], 0.3 * turn, turn)
        contexts.append(ctx)
        arm = credit.choose(ctx, prev_correct=answers[-1])
        if arm == STOP:
            break
        assert credit.pending
        correct, tokens = next(model)
        answers.append(correct)
        credit.observe(correct, tokens)
    assert [(u.context, u.arm) for u in credit.updates] == [
        (contexts[0].key, "a"),
        (contexts[1].key, "b"),
        (contexts[2].key, STOP),
    ]
    assert [u.reward for u in credit.updates] == [pytest.approx(0.9), pytest.approx(-1.05), 0.0]
    assert policy.params(contexts[0], "a") == (pytest.approx(1.95), pytest.approx(1.05), 1)
    assert policy.params(contexts[1], "b")[2] == 1 and policy.params(contexts[1], "a")[2] == 0
    assert policy.params(contexts[2], STOP) == (1.5, 1.5, 1)
    assert not credit.pending


def test_credit_refuses_out_of_order_calls():
    credit = Credit(FixedPolicy("a"))
    with pytest.raises(AssayError, match="no reprompt pending"):
        credit.observe(True, 10)
    credit.choose(CTX, prev_correct=False)
    with pytest.raises(AssayError, match="not observed"):
        credit.choose(CTX, prev_correct=False)


@pytest.mark.parametrize(
    "make",
    [
        lambda: ThompsonPolicy(ARMS, rng=11, prior_alpha=2.0, prior_beta=0.5),
        lambda: EpsilonGreedyPolicy(ARMS, rng=11, epsilon0=0.4, decay=0.99),
        lambda: RandomPolicy(ARMS, rng=11),
    ],
)
def test_save_load_continues_exactly_like_an_uninterrupted_run(tmp_path, make):
    means = {"a": 0.3, "b": 0.6, "c": 0.5}
    contexts = all_contexts()[:4]

    def run(policy, steps, env):
        out = []
        for i in range(steps):
            out += _bandit(policy, means, 1, env, ctx=contexts[i % 4])
        return out

    whole = make()
    env = random.Random(12)
    straight = run(whole, 600, env)

    half = make()
    env = random.Random(12)
    first = run(half, 300, env)
    path = tmp_path / "policy.json"
    half.save(path)
    resumed = load_policy(path)
    assert type(resumed) is type(half) and resumed.to_json() == half.to_json()
    second = run(resumed, 300, env)

    assert first + second == straight
    assert resumed.to_json() == whole.to_json()
    assert json.loads(path.read_text())["kind"] == whole.kind
    assert type(whole).load(path).to_json() == half.to_json()


def test_baselines():
    never = NeverRepromptPolicy()
    assert {never.select(c) for c in all_contexts()} == {STOP}
    fixed = FixedPolicy("step_redo")
    assert fixed.arms == ("step_redo", STOP)
    assert {fixed.select(c) for c in all_contexts()} == {"step_redo"}
    fixed.update(CTX, "step_redo", 1.0)  # baselines accept updates and ignore them
    with pytest.raises(AssayError):
        FixedPolicy(STOP)
    arms = make_arms([t.id for t in load_templates()])
    rnd = RandomPolicy(arms, rng=0)
    picks = [rnd.select(CTX) for _ in range(5000)]
    assert set(picks) == set(arms)
    assert max(picks.count(a) for a in arms) < 2 * 5000 / len(arms)
    for p in (never, fixed):
        assert Policy.from_json(p.to_json()).select(CTX) == p.select(CTX)


def test_load_errors(tmp_path):
    with pytest.raises(AssayError, match="cannot read policy file"):
        load_policy(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(AssayError, match="not valid JSON"):
        load_policy(bad)
    bad.write_text('{"format": "something else"}')
    with pytest.raises(AssayError, match="not a saved reprompt policy"):
        load_policy(bad)
    ThompsonPolicy(ARMS, rng=0).save(bad)
    with pytest.raises(AssayError, match="kind 'thompson', expected epsilon_greedy"):
        EpsilonGreedyPolicy.load(bad)
    data = json.loads(bad.read_text())
    del data["state"]["table"]
    bad.write_text(json.dumps(data))
    with pytest.raises(AssayError, match="malformed"):
        load_policy(bad)
