"""A simulator of reprompting episodes, calibrated on real traces (`assay correct simulate`).

Whether a policy learns is a question of sample efficiency: how many episodes until it does as well
as the best fixed policy. Real episodes cost model calls; simulated ones cost microseconds, so a
policy can be run for 1,000 episodes over 20 seeds in seconds. An episode, as the engine runs it:

    right = draw(p_initial)                                   # the initial answer
    for turn in 1..max_turns:
        mc = draw(contexts[right])                            # the predictor's 'mode|confidence'
        arm = policy.select(f"{mc}|{turn_bin(turn)}")
        if arm == stop: update(context, stop, 0, outcome=(right, right, 0)); break
        new = right and not draw(r2w) or not right and draw(w2r)   # rates[(mc, arm)]
        update(context, arm, reward(right, new, tokens, lam), outcome=(right, new, tokens)); right = new

The rates (`Rates`) are per ('mode|confidence', arm): right->wrong, wrong->right and tokens, with the
context distribution given the answer is right or wrong, and P(initial answer right). They come from
`traces.jsonl` files (`rates_from_traces`: counts smoothed toward the arm's pooled rates, then toward
all arms') or from a TOML file (`rates_from_toml`, format in docs/correct.md).
"""

from __future__ import annotations

import json
import math
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from assay.correct.policy import (
    STOP,
    STOP_REWARD,
    EpsilonGreedyPolicy,
    FixedPolicy,
    NeverRepromptPolicy,
    Outcome,
    OutcomeUCBPolicy,
    Policy,
    RandomPolicy,
    SharedThompsonPolicy,
    ThompsonPolicy,
    reward,
    turn_bin,
)
from assay.errors import ConfigError, DataError

ANY = "*"


@dataclass(frozen=True)
class ArmRates:
    right_to_wrong: float
    wrong_to_right: float
    tokens: float


@dataclass
class Rates:
    """What a simulated episode draws from (see the module docstring)."""

    p_initial: float
    contexts: dict[str, dict[str, float]]  # "right" | "wrong" -> 'mode|confidence' -> weight
    table: dict[tuple[str, str], ArmRates]  # ('mode|confidence' or "*", arm) -> rates
    arms: list[str]  # the reprompt arms (STOP is always there too)
    max_turns: int = 2
    lam: float = 0.001
    _cum: dict[str, tuple[list[str], list[float]]] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if not 0 <= self.p_initial <= 1:
            raise ConfigError(f"p_initial must be in [0, 1], got {self.p_initial}")
        for side in ("right", "wrong"):
            weights = self.contexts.get(side) or {}
            if not weights or min(weights.values()) < 0 or sum(weights.values()) <= 0:
                raise ConfigError(f"contexts.{side}: give 'mode|confidence' = weight entries (weights >= 0, some > 0)")
            keys = sorted(weights)
            total, acc, cum = sum(weights.values()), 0.0, []
            for key in keys:
                acc += weights[key] / total
                cum.append(acc)
            self._cum[side] = (keys, cum)
        for (mc, arm), r in self.table.items():
            if not (0 <= r.right_to_wrong <= 1 and 0 <= r.wrong_to_right <= 1 and r.tokens >= 0):
                raise ConfigError(f"rates of ({mc}, {arm}): right_to_wrong and wrong_to_right in [0, 1], tokens >= 0")
        missing = [a for a in self.arms if (ANY, a) not in self.table]
        if missing:
            raise ConfigError(f"no rates for arm(s) {', '.join(missing)} in context '*' (the default of every arm)")

    def rate(self, mc: str, arm: str) -> ArmRates:
        return self.table.get((mc, arm)) or self.table[(ANY, arm)]

    def draw_context(self, right: bool, rng: random.Random) -> str:
        keys, cum = self._cum["right" if right else "wrong"]
        u = rng.random()
        for key, c in zip(keys, cum, strict=True):
            if u < c:
                return key
        return keys[-1]

    def expected_step(self, right: bool, mc: str, arm: str) -> tuple[float, float]:
        """(P(right after), expected reward) of reprompting with `arm` in `mc` from a right/wrong answer."""
        if arm == STOP:
            return float(right), STOP_REWARD
        r = self.rate(mc, arm)
        p = 1 - r.right_to_wrong if right else r.wrong_to_right
        return p, p - float(right) - self.lam * r.tokens

    def context_dependent(self) -> bool:
        """Whether the best first decision differs between the contexts a policy sees: per
        'mode|confidence', each arm's expected one-step reward over the answers behind it (right with
        P(right) P(context | right) / P(context), P(right) = p_initial, as at the first decision)."""
        best = set()
        for mc in set(self.contexts["right"]) | set(self.contexts["wrong"]):
            w = {
                side: (self.p_initial if side == "right" else 1 - self.p_initial)
                * self.contexts[side].get(mc, 0.0)
                / sum(self.contexts[side].values())
                for side in ("right", "wrong")
            }
            total = w["right"] + w["wrong"]

            def value(arm: str, mc: str = mc, w: dict = w, total: float = total) -> float:
                return sum(w[side] / total * self.expected_step(side == "right", mc, arm)[1] for side in w)

            best.add(max([*self.arms, STOP], key=value))
        return len(best) > 1


# ----------------------------------------------------------------------------- calibration


def rates_from_traces(paths: list[str | Path], smoothing: float = 5.0, max_turns: int | None = None) -> Rates:
    """Rates estimated from `traces.jsonl` files. Per ('mode|confidence', arm): right->wrong =
    (k * arm's pooled rate + flips) / (k + reprompts from a right answer), with k = `smoothing`; the
    arm's pooled rate is itself smoothed toward all arms' (k pseudo-counts). Contexts: the empirical
    'mode|confidence' of every decision (reprompt or stop), given the answer before it."""
    from assay.correct.records import read_traces

    initial, steps, contexts = [], [], {"right": {}, "wrong": {}}
    turns_seen = 1
    for path in paths:
        if not Path(path).is_file():
            raise DataError(f"no such traces file: {path}")
        for trace in read_traces(path):
            turns = trace.turns
            initial.append(turns[0].correct)
            turns_seen = max(turns_seen, len(turns) - 1)
            for prev, turn in zip(turns, turns[1:], strict=False):
                if turn.context and turn.prompt_id:
                    mc = turn.context.rsplit("|", 1)[0]
                    steps.append((mc, turn.prompt_id, prev.correct, turn.correct, turn.token_count))
            for u in trace.updates:
                mc = u.context.rsplit("|", 1)[0]
                # the answer before the decision: right iff a stop or a reprompt from a right answer;
                # the reprompts' own are in `steps`, the stops' is the last answer's
                if u.arm == STOP:
                    side = "right" if turns[-1].correct else "wrong"
                    contexts[side][mc] = contexts[side].get(mc, 0) + 1
    for mc, _, prev, _, _ in steps:
        side = "right" if prev else "wrong"
        contexts[side][mc] = contexts[side].get(mc, 0) + 1
    if not initial:
        raise DataError(f"no traces in {', '.join(map(str, paths))}")
    if not steps:
        raise DataError("the traces hold no reprompts (a `never` run): nothing to estimate a reprompt's effect from")
    for side in ("right", "wrong"):  # a side never seen: the other's distribution
        if not contexts[side]:
            contexts[side] = dict(contexts["wrong" if side == "right" else "right"])

    def pooled(rows):
        from_right = [r for r in rows if r[2]]
        from_wrong = [r for r in rows if not r[2]]
        return (
            sum(not r[3] for r in from_right),
            len(from_right),
            sum(r[3] for r in from_wrong),
            len(from_wrong),
            sum(r[4] for r in rows) / max(len(rows), 1),
        )

    def smooth(flips, n, prior):
        return (smoothing * prior + flips) / (smoothing + n)

    f_rw, n_r, f_wr, n_w, tokens_all = pooled(steps)
    all_rw, all_wr = (f_rw + 0.5) / (n_r + 1), (f_wr + 0.5) / (n_w + 1)
    arms = sorted({s[1] for s in steps})
    table: dict[tuple[str, str], ArmRates] = {}
    for arm in arms:
        rows = [s for s in steps if s[1] == arm]
        a_rw, a_nr, a_wr, a_nw, a_tok = pooled(rows)
        arm_rw, arm_wr = smooth(a_rw, a_nr, all_rw), smooth(a_wr, a_nw, all_wr)
        table[(ANY, arm)] = ArmRates(arm_rw, arm_wr, a_tok)
        for mc in sorted({s[0] for s in rows}):
            c_rw, c_nr, c_wr, c_nw, c_tok = pooled([s for s in rows if s[0] == mc])
            table[(mc, arm)] = ArmRates(smooth(c_rw, c_nr, arm_rw), smooth(c_wr, c_nw, arm_wr), c_tok)
    return Rates(
        p_initial=sum(initial) / len(initial),
        contexts=contexts,
        table=table,
        arms=arms,
        max_turns=max_turns or turns_seen,
    )


def rates_from_toml(path: str | Path) -> Rates:
    """Rates written by hand (docs/correct.md, "Simulating policies"):

    p_initial = 0.6
    max_turns = 2
    lam = 0.001
    [contexts]
    right = {"unchanged_correct|>=0.7" = 0.7, "wavering|<0.4" = 0.3}
    wrong = {"anchored|<0.4" = 0.6, "wavering|<0.4" = 0.4}
    [[rates]]
    arm = "redo"                 # context = "*" (every context) unless given
    right_to_wrong = 0.1
    wrong_to_right = 0.3
    tokens = 120
    """
    from assay.config import read_toml

    data = read_toml(path)  # a missing or malformed file: one ConfigError
    try:
        table = {}
        for row in data.get("rates", []):
            key = (str(row.get("context", ANY)), str(row["arm"]))
            table[key] = ArmRates(float(row["right_to_wrong"]), float(row["wrong_to_right"]), float(row["tokens"]))
        contexts = {side: {str(k): float(v) for k, v in data["contexts"][side].items()} for side in ("right", "wrong")}
        return Rates(
            p_initial=float(data["p_initial"]),
            contexts=contexts,
            table=table,
            arms=sorted({arm for _, arm in table}),
            max_turns=int(data.get("max_turns", 2)),
            lam=float(data.get("lam", 0.001)),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ConfigError(f"rates file {path}: missing or bad field {exc} (format: docs/correct.md)") from None


def rates_to_toml(rates: Rates) -> str:
    """`rates` as a file `rates_from_toml` reads back (the same numbers: floats are written with repr)."""

    def key(k: str) -> str:
        return json.dumps(k)  # a TOML basic string is a JSON string

    lines = [f"p_initial = {rates.p_initial!r}", f"max_turns = {rates.max_turns}", f"lam = {rates.lam!r}", "[contexts]"]
    for side in ("right", "wrong"):
        cells = ", ".join(f"{key(mc)} = {w!r}" for mc, w in sorted(rates.contexts[side].items()))
        lines.append(f"{side} = {{{cells}}}")
    for (mc, arm), r in sorted(rates.table.items(), key=lambda kv: (kv[0][1], kv[0][0] != ANY, kv[0][0])):
        lines += ["", "[[rates]]", f"arm = {key(arm)}"]
        if mc != ANY:
            lines.append(f"context = {key(mc)}")
        lines += [f"right_to_wrong = {r.right_to_wrong!r}", f"wrong_to_right = {r.wrong_to_right!r}",
                  f"tokens = {r.tokens!r}"]  # fmt: skip
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------- running policies


def make_policy(name: str, arms: list[str], seed: int) -> Policy:
    """never, random, epsilon, thompson, shared, ucb, or fixed:ARM."""
    if name == "never":
        return NeverRepromptPolicy()
    if name.startswith("fixed:"):
        arm = name.split(":", 1)[1]
        if arm not in arms:
            raise ConfigError(f"fixed:{arm}: not an arm of these rates ({', '.join(arms[:5])}, ...)")
        return FixedPolicy(arm)
    kinds = {"random": RandomPolicy, "epsilon": EpsilonGreedyPolicy, "thompson": ThompsonPolicy}
    kinds |= {"shared": SharedThompsonPolicy, "ucb": OutcomeUCBPolicy}
    if name not in kinds:
        raise ConfigError(f"unknown policy {name!r}: never, fixed:ARM, random, epsilon, thompson, shared or ucb")
    return kinds[name]([*arms, STOP], rng=seed)


@dataclass
class Episodes:
    """Per episode of one simulated run: reward, final and initial correctness, reprompts."""

    reward: list[float] = field(default_factory=list)
    final: list[bool] = field(default_factory=list)
    initial: list[bool] = field(default_factory=list)
    reprompts: list[int] = field(default_factory=list)


def simulate(rates: Rates, policy: Policy, episodes: int, seed: int | random.Random) -> Episodes:
    """`episodes` episodes of `policy` (which learns from each update as it goes). `seed`: an int, or
    a generator to draw from (so that a run cut in two parts continues the same episodes)."""
    rng = seed if isinstance(seed, random.Random) else random.Random(seed)
    out = Episodes()
    for _ in range(episodes):
        right = rng.random() < rates.p_initial
        start, total, reprompts = right, 0.0, 0
        for turn in range(1, rates.max_turns + 1):
            mc = rates.draw_context(right, rng)
            context = f"{mc}|{turn_bin(turn)}"
            arm = policy.select(context)
            if arm == STOP:
                policy.update(context, STOP, STOP_REWARD, Outcome(right, right, 0))
                break
            r = rates.rate(mc, arm)
            new = (rng.random() >= r.right_to_wrong) if right else (rng.random() < r.wrong_to_right)
            step = reward(right, new, round(r.tokens), rates.lam)
            policy.update(context, arm, step, Outcome(right, new, round(r.tokens)))
            total += step
            reprompts += 1
            right = new
        out.reward.append(total)
        out.final.append(right)
        out.initial.append(start)
        out.reprompts.append(reprompts)
    return out


def summarize(runs: list[Episodes]) -> dict[str, Any]:
    """Means over seeds: reward per episode, final accuracy, the share of episodes that went from a
    right initial answer to a wrong final one, reprompts per episode; and the mean cumulative reward."""
    n = len(runs[0].reward)
    total = [sum(r.reward) / n for r in runs]
    mean = sum(total) / len(total)
    sd = math.sqrt(sum((t - mean) ** 2 for t in total) / max(len(total) - 1, 1))
    cum = [0.0] * n
    for r in runs:
        acc = 0.0
        for i, v in enumerate(r.reward):
            acc += v
            cum[i] += acc / len(runs)
    return {
        "reward_per_episode": mean,
        "reward_sd_over_seeds": sd,
        "final_accuracy": sum(sum(r.final) for r in runs) / (n * len(runs)),
        "right_to_wrong": sum(sum(i and not f for i, f in zip(r.initial, r.final, strict=True)) for r in runs)
        / (n * len(runs)),
        "reprompts_per_episode": sum(sum(r.reprompts) for r in runs) / (n * len(runs)),
        "cumulative_reward": cum,
        "per_seed": total,
    }


def compare(rates: Rates, names: list[str], episodes: int, seeds: int, base_seed: int = 0) -> dict[str, Any]:
    """Every policy of `names` (and "fixed:*" expanded to every arm) over `seeds` seeds; regret
    against the best fixed policy (never included) measured on the same seeds."""
    expanded: list[str] = []
    for name in names:
        expanded += [f"fixed:{a}" for a in rates.arms] if name == "fixed:*" else [name]
    results = {}
    for name in expanded:
        runs = [
            simulate(rates, make_policy(name, rates.arms, base_seed + s), episodes, base_seed + s) for s in range(seeds)
        ]
        results[name] = summarize(runs)
    fixed = {n: r for n, r in results.items() if n == "never" or n.startswith("fixed:")}
    best = max(fixed, key=lambda n: fixed[n]["reward_per_episode"]) if fixed else None
    for r in results.values():
        if best is not None:
            b = results[best]["cumulative_reward"]
            r["regret"] = b[-1] - r["cumulative_reward"][-1]
            r["vs_best_fixed"] = r["reward_per_episode"] - results[best]["reward_per_episode"]
    return {"episodes": episodes, "seeds": seeds, "best_fixed": best, "policies": results}


def format_compare(result: dict[str, Any]) -> str:
    """The comparison as a table, best reward first."""
    best = result["best_fixed"]
    base = result["policies"][best]["reward_per_episode"] if best else None
    lines = [
        f"{result['episodes']} episodes x {result['seeds']} seeds; best fixed policy: {best}",
        f"{'policy':<32} {'reward/ep':>10} {'vs best fixed':>14} {'final acc':>10} "
        f"{'right->wrong':>13} {'reprompts':>10}",
    ]
    for name, r in sorted(result["policies"].items(), key=lambda kv: -kv[1]["reward_per_episode"]):
        share = f"{r['reward_per_episode'] / base:.1%}" if base and base > 0 else f"{r.get('vs_best_fixed', 0):+.3f}"
        lines.append(
            f"{name:<32} {r['reward_per_episode']:>10.4f} {share:>14} {r['final_accuracy']:>10.3f} "
            f"{r['right_to_wrong']:>13.3f} {r['reprompts_per_episode']:>10.2f}"
        )
    return "\n".join(lines)
