"""The episode simulator (`assay correct simulate`), the shared-strength policy and the outcome
model (`ucb`, the default learner)."""

from __future__ import annotations

import json
import math
import random

import pytest

from assay.correct.policy import (
    STOP,
    Credit,
    Outcome,
    OutcomeUCBPolicy,
    Policy,
    SharedThompsonPolicy,
    ThompsonPolicy,
    apply_episode,
)
from assay.correct.simulate import (
    ANY,
    ArmRates,
    Rates,
    compare,
    make_policy,
    rates_from_toml,
    rates_to_toml,
    simulate,
)
from assay.errors import ConfigError
from tests.conftest import one_error, run_cli

RATES_TOML = """
p_initial = 0.6
max_turns = 1
lam = 0.0
[contexts]
right = {"unchanged_correct|>=0.7" = 1.0}
wrong = {"anchored|<0.4" = 1.0}
[[rates]]
arm = "redo"
right_to_wrong = 0.2
wrong_to_right = 0.5
tokens = 100
[[rates]]
arm = "review"
right_to_wrong = 0.05
wrong_to_right = 0.1
tokens = 50
[[rates]]
arm = "review"
context = "anchored|<0.4"
right_to_wrong = 0.05
wrong_to_right = 0.7
tokens = 50
"""


@pytest.fixture()
def rates(tmp_path) -> Rates:
    path = tmp_path / "rates.toml"
    path.write_text(RATES_TOML)
    return rates_from_toml(path)


def test_the_simulator_reproduces_the_rates_it_was_given(rates):
    n = 20_000
    for arm, rw, wr in (("redo", 0.2, 0.5), ("review", 0.05, 0.7)):  # review: its anchored|<0.4 rate
        from assay.correct.policy import FixedPolicy

        ep = simulate(rates, FixedPolicy(arm), n, seed=1)
        right = [i for i, s in enumerate(ep.initial) if s]
        wrong = [i for i, s in enumerate(ep.initial) if not s]
        for observed, p, count in (
            (len(right) / n, 0.6, n),
            (sum(not ep.final[i] for i in right) / len(right), rw, len(right)),
            (sum(ep.final[i] for i in wrong) / len(wrong), wr, len(wrong)),
        ):
            assert abs(observed - p) < 4 * math.sqrt(p * (1 - p) / count), (arm, observed, p)
    # the best arm depends on the context: stop after a right answer, review after a wrong one
    assert rates.context_dependent()
    assert (
        rates.expected_step(False, "anchored|<0.4", "review")[1]
        > rates.expected_step(False, "anchored|<0.4", "redo")[1]
    )


def test_rates_estimated_from_real_traces():
    from assay.correct.simulate import rates_from_traces
    from tests.conftest import ROOT

    rates = rates_from_traces([ROOT / "tests/correct/fixtures/old_run/traces.jsonl"])
    assert rates.p_initial == pytest.approx(1 / 3) and rates.max_turns == 2 and len(rates.arms) == 6
    for (mc, arm), r in rates.table.items():  # smoothed: never exactly 0 or 1 from a handful of counts
        assert 0 < r.right_to_wrong < 1 and 0 < r.wrong_to_right < 1 and (mc == ANY or (ANY, arm) in rates.table)


def test_shared_policy_without_sharing_is_per_context_thompson():
    arms = ["a", "b", "c", STOP]
    shared = SharedThompsonPolicy(
        arms, rng=7, strength=0, prior_alpha=1, prior_beta=1, sample_stop=True, prune_after=None
    )
    plain = ThompsonPolicy(arms, rng=7)
    world = random.Random(3)
    contexts = ["anchored|<0.4|t1", "wavering|>=0.7|t1", "anchored|<0.7|t2"]
    for _ in range(500):
        context = world.choice(contexts)
        arm = plain.select(context)
        assert shared.select(context) == arm
        r = 0.0 if arm == STOP else world.choice([-1.0, 0.0, 1.0]) - 0.05
        plain.update(context, arm, r)
        shared.update(context, arm, r)


def test_the_shared_policy_state_survives_a_kill_exactly():
    arms = ["a", "b", "c", STOP]

    def feed(policy, steps, world, rewards=None):
        """`steps` choices; the policy learns from its own (random rewards), or, with `rewards`, from
        updates of arms the world picks (as from earlier traces), so that even bad arms get data."""
        chosen = []
        for _ in range(steps):
            context = world.choice(["anchored|<0.4|t1", "wavering|>=0.7|t1", "wavering|<0.4|t2"])
            arm = policy.select(context)
            noise = world.choice([-1.0, 1.0])
            if rewards:
                taught = world.choice(sorted(rewards))
                policy.update(context, taught, rewards[taught])
            else:
                policy.update(context, arm, 0.0 if arm == STOP else noise)
            chosen.append(arm)
        return chosen

    # random rewards; then updates that let the pruning rule out b and c
    for rewards, prune_after in ((None, 10), ({"a": 1.0, "b": -1.0, "c": -1.0}, 10)):
        whole_world, cut_world = random.Random(5), random.Random(5)
        whole_policy = SharedThompsonPolicy(arms, rng=11, prune_after=prune_after)
        whole = feed(whole_policy, 400, whole_world, rewards)
        first = SharedThompsonPolicy(arms, rng=11, prune_after=prune_after)
        part = feed(first, 203, cut_world, rewards)  # not a multiple of the pruning period
        saved = json.loads(json.dumps(first.to_json()))  # through the file format
        resumed = Policy.from_json(saved)
        assert isinstance(resumed, SharedThompsonPolicy) and resumed.stats == first.stats
        assert part + feed(resumed, 197, cut_world, rewards) == whole
        assert resumed._pruned_set() == whole_policy._pruned_set()
    assert whole_policy._pruned_set() == {"b", "c"}


def test_sharing_lends_a_new_context_what_its_failure_mode_taught():
    policy = SharedThompsonPolicy(["good", "bad", STOP], rng=0)
    for _ in range(40):
        policy.update("anchored|<0.4|t1", "good", 1.0)
        policy.update("anchored|<0.4|t1", "bad", -1.0)
    unseen = "anchored|>=0.7|t2"  # same failure mode, never updated
    assert policy.expected_reward(unseen, "good") > 0.3 > -0.3 > policy.expected_reward(unseen, "bad")
    assert ThompsonPolicy(["good", "bad", STOP]).expected_reward(unseen, "good") == 0.0  # no sharing: the prior
    assert policy.pruned("bad") and not policy.pruned("good") and STOP in policy.live_arms()
    assert policy.select(unseen) == "good"


def test_compare_finds_the_best_fixed_policy_and_regret(rates):
    result = compare(rates, ["never", "fixed:*", "random", "shared"], episodes=200, seeds=3)
    fixed = {
        n: r["reward_per_episode"] for n, r in result["policies"].items() if n.startswith("fixed:") or n == "never"
    }
    assert result["best_fixed"] == max(fixed, key=fixed.get)
    assert result["policies"][result["best_fixed"]]["regret"] == 0.0
    assert all(len(r["cumulative_reward"]) == 200 for r in result["policies"].values())


def test_bad_rates_are_refused(tmp_path):
    with pytest.raises(ConfigError, match="contexts.wrong"):
        Rates(0.5, {"right": {"a|<0.4": 1.0}, "wrong": {}}, {(ANY, "x"): ArmRates(0.1, 0.2, 3)}, ["x"])
    with pytest.raises(ConfigError, match="in context"):
        Rates(
            0.5, {"right": {"a|<0.4": 1.0}, "wrong": {"a|<0.4": 1.0}}, {("a|<0.4", "x"): ArmRates(0.1, 0.2, 3)}, ["x"]
        )
    bad = tmp_path / "bad.toml"
    bad.write_text("p_initial = 0.5\n")
    with pytest.raises(ConfigError, match="missing or bad field"):
        rates_from_toml(bad)


def test_simulate_command(tmp_path, capsys):
    path = tmp_path / "rates.toml"
    path.write_text(RATES_TOML)
    code, out, err = run_cli(
        capsys, "correct", "simulate", "--rates", path, "--episodes", "50", "--seeds", "2", "--json"
    )
    assert code == 0, err
    result = json.loads(out)
    expected = {"never", "fixed:redo", "fixed:review", "random", "epsilon", "thompson", "shared", "ucb"}
    assert set(result["policies"]) == expected
    saved = tmp_path / "saved.toml"  # --save-rates writes what --rates reads back, number for number
    code, _, err = run_cli(capsys, "correct", "simulate", "--rates", path, "--episodes", "5", "--save-rates", saved)
    assert code == 0, err
    again = rates_from_toml(saved)
    assert again == rates_from_toml(path) and rates_to_toml(again) == saved.read_text()
    code, _, err = run_cli(capsys, "correct", "simulate", "--episodes", "5")
    assert "traces.jsonl files or --rates" in one_error(code, err)


# ----------------------------------------------------------------------------- the outcome model (ucb)


def test_the_outcome_policy_learns_which_arm_each_context_needs(rates):
    """RATES_TOML: a right answer ('unchanged_correct|>=0.7') should be left alone (every reprompt can
    break it); a wrong one ('anchored|<0.4') should be reprompted, best with `review` (fixes 70%,
    breaks 5%) rather than `redo` (50%, 20%). Over 5 seeds it ends above every fixed policy."""
    last = {"ucb": 0.0, "fixed:redo": 0.0, "fixed:review": 0.0, "never": 0.0}
    for seed in range(5):
        policy = OutcomeUCBPolicy(["redo", "review", STOP], rng=seed)
        last["ucb"] += sum(simulate(rates, policy, 400, seed).reward[-100:]) / 500
        assert policy.best_arm("unchanged_correct|>=0.7|t1") == STOP
        assert policy.best_arm("anchored|<0.4|t1") != STOP
        a, b = policy.q("unchanged_correct|>=0.7|t1")  # q is learned from every decision
        assert a / (a + b) > 0.9 and a + b > 100
        for name in ("fixed:redo", "fixed:review", "never"):
            last[name] += sum(simulate(rates, make_policy(name, rates.arms, seed), 400, seed).reward[-100:]) / 500
    assert last["ucb"] > max(v for k, v in last.items() if k != "ucb") > 0.2


def test_data_that_rules_an_arm_out_prunes_it():
    policy = OutcomeUCBPolicy(["good", "bad", STOP], rng=0, prune_after=10)
    world = random.Random(1)
    for _ in range(60):
        for arm, p_fix in (("good", 0.9), ("bad", 0.0)):
            right = world.random() < 0.3
            new = right if right else world.random() < p_fix
            policy.update("anchored|<0.4|t1", arm, float(new) - float(right) - 0.1, Outcome(right, new, 100))
    assert policy.pruned("bad") and not policy.pruned("good") and STOP in policy.live_arms()
    assert policy.select("wavering|>=0.7|t2") == "good"  # an unseen context: what the arms taught elsewhere


def test_the_outcome_policy_state_survives_a_kill_exactly(rates):
    """Run 400 episodes straight, or 203, a save through JSON, a reload and 197 more: the same choices,
    the same state (the pruned set and when it was computed included)."""
    arms = ["redo", "review", STOP]
    whole = OutcomeUCBPolicy(arms, rng=11, prune_after=5)
    straight = simulate(rates, whole, 400, seed=12)
    first = OutcomeUCBPolicy(arms, rng=11, prune_after=5)
    env = random.Random(12)  # what simulate(..., seed=12) draws from, continued across the cut
    part = simulate(rates, first, 203, env).reward
    resumed = Policy.from_json(json.loads(json.dumps(first.to_json())))
    assert isinstance(resumed, OutcomeUCBPolicy) and resumed.to_json() == first.to_json()
    rest = simulate(rates, resumed, 197, env).reward
    assert part + rest == straight.reward
    assert resumed.to_json() == whole.to_json()


def test_outcomes_are_logged_and_replayed_and_old_updates_are_read_from_their_reward():
    ctx = "anchored|<0.4|t1"
    live = OutcomeUCBPolicy(["a", "b", STOP], rng=0)
    credit = Credit(live, lam=0.001)
    arm = credit.choose(ctx, prev_correct=False)
    credit.observe(new_correct=True, tokens=100)  # a fix
    logged = [u.to_dict() for u in credit.updates]
    fix = {"context": ctx, "arm": arm, "reward": pytest.approx(0.9), "prev_correct": False, "new_correct": True}
    assert logged == [fix | {"tokens": 100}]
    stop = Credit(OutcomeUCBPolicy(["a", STOP], rng=0, min_tries=0, exploration=0))
    assert stop.choose("anchored|>=0.7|t1", prev_correct=True) == STOP
    expected = {"context": "anchored|>=0.7|t1", "arm": STOP, "reward": 0.0}
    assert stop.updates[0].to_dict() == expected | {"prev_correct": True, "new_correct": True, "tokens": 0}

    replayed = OutcomeUCBPolicy(["a", "b", STOP], rng=0)
    replayed.select(ctx)  # the live policy chose once: keep the counters and the generator level
    assert apply_episode(replayed, "q1", logged) and not apply_episode(replayed, "q1", logged)
    assert replayed.to_json() | {"applied": []} == live.to_json() | {"applied": []}

    # a trace written before outcomes were logged: +0.9 is a fix, -1.1 a break, -0.1 neither
    old = OutcomeUCBPolicy(["a", STOP], rng=0)
    apply_episode(old, "q2", [{"context": ctx, "arm": "a", "reward": 0.9}, {"context": ctx, "arm": "a", "reward": -1.1},
                              {"context": ctx, "arm": "a", "reward": -0.1}])  # fmt: skip
    assert old.stats["ctx"][ctx]["f:a"] == [1.0, 1.0] and old.stats["ctx"][ctx]["b:a"] == [1.0, 1.0]
    assert old.cost("a") == pytest.approx(0.1) and old.tries("a") == 3


def test_a_confident_answer_is_riskier_to_reprompt():
    """Before any data the chance that the answer is right follows the confidence bin."""
    policy = OutcomeUCBPolicy(["a", STOP], rng=0)
    means = [a / (a + b) for a, b in (policy.q(f"anchored|{c}|t1") for c in ("<0.4", "<0.7", ">=0.7"))]
    assert means == sorted(means) and means[0] < 0.5 < means[-1]
    assert policy.expected_reward("anchored|>=0.7|t1", "a") < 0 < policy.expected_reward("anchored|<0.4|t1", "a")
    greedy = OutcomeUCBPolicy(["a", STOP], rng=0, min_tries=0, exploration=0)  # the prior alone decides
    assert greedy.select("anchored|>=0.7|t1") == STOP and greedy.select("anchored|<0.4|t1") == "a"


def test_bad_outcome_policy_settings_are_refused():
    with pytest.raises(Exception, match="strength > 0"):
        OutcomeUCBPolicy(["a", STOP], strength=0)
    with pytest.raises(Exception, match="prune_after"):
        OutcomeUCBPolicy(["a", STOP], prune_after=0)
