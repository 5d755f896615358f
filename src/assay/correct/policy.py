"""The reprompting policy: a contextual bandit over reprompt templates plus a "stop" arm.

- Arms: the template ids plus `STOP` (send no reprompt; the episode ends with the current answer).
- Context: (predicted failure mode, confidence bin, turn bin); see `Context.make`.
- Reward of a reprompt: `reward(prev_correct, new_correct, tokens, lam)` = (new - prev) - lam * tokens,
  credited to the (context, arm) that PRODUCED the new answer. Choosing STOP earns `STOP_REWARD` = 0
  (nothing changes, nothing is spent), so STOP wins exactly where reprompting has negative expected reward.
- Learners: `OutcomeUCBPolicy` (the default, "ucb": fix/break/right-answer rates learned from each
  update's `Outcome`, shared across contexts and arms, chosen by an upper confidence bound),
  `SharedThompsonPolicy` (hierarchical Beta priors), `ThompsonPolicy` (Beta posterior per (context,
  arm)) and `EpsilonGreedyPolicy` (running mean, decaying epsilon). Baselines: `NeverRepromptPolicy`,
  `FixedPolicy`, `RandomPolicy`.
- Persistence: `to_json()` holds every count, the step counter and the RNG state, so a policy saved with
  `save(path)` and reloaded with `load_policy(path)` makes the same choices as one never interrupted.

`Credit` is the protocol the engine follows so that every update lands on the right action; see
docs/correct.md for the maths.
"""

from __future__ import annotations

import json
import math
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from assay.correct.failure_modes import FAILURE_MODES
from assay.errors import AssayError
from assay.io import atomic_write_json

STOP = "stop"
STOP_REWARD = 0.0
ALL = "*"  # SharedThompsonPolicy's statistics of every reprompt arm together
PRUNE_EVERY = 10  # SharedThompsonPolicy recomputes its pruned arms every this many updates
CONFIDENCE_BINS: tuple[str, ...] = ("<0.4", "<0.7", ">=0.7")
TURN_BINS: tuple[str, ...] = ("t1", "t2", "t3+")
FORMAT = "assay.correct.policy"
FORMAT_VERSION = 1


# ----------------------------------------------------------------------------- contexts and reward


def confidence_bin(confidence: float) -> str:
    """'<0.4', '<0.7' or '>=0.7' for a confidence in [0, 1]."""
    if not (0.0 <= confidence <= 1.0) or math.isnan(confidence):
        raise AssayError(f"confidence must be in [0, 1], got {confidence!r}")
    return "<0.4" if confidence < 0.4 else "<0.7" if confidence < 0.7 else ">=0.7"


def turn_bin(turn: int) -> str:
    """'t1', 't2' or 't3+' for the 1-based number of the reprompt being decided (= answers so far)."""
    if turn < 1:
        raise AssayError(f"turn must be >= 1 (the number of the reprompt being decided), got {turn}")
    return "t1" if turn == 1 else "t2" if turn == 2 else "t3+"


@dataclass(frozen=True)
class Context:
    failure_mode: str
    confidence_bin: str
    turn_bin: str

    @classmethod
    def make(cls, failure_mode: str, confidence: float, turn: int) -> Context:
        """The context before reprompt number `turn` (1-based), with the classifier's predictions."""
        if failure_mode not in FAILURE_MODES:
            raise AssayError(f"unknown failure mode {failure_mode!r} (known: {', '.join(FAILURE_MODES)})")
        return cls(failure_mode, confidence_bin(confidence), turn_bin(turn))

    @property
    def key(self) -> str:
        """'mode|confidence bin|turn bin': the JSON key of this context's statistics."""
        return f"{self.failure_mode}|{self.confidence_bin}|{self.turn_bin}"


def all_contexts() -> list[Context]:
    """Every context: 6 failure modes x 3 confidence bins x 3 turn bins = 54."""
    return [Context(m, c, t) for m in FAILURE_MODES for c in CONFIDENCE_BINS for t in TURN_BINS]


def reward(prev_correct: bool, new_correct: bool, tokens: int, lam: float) -> float:
    """(new - prev) - lam * tokens: +1 for a fix, -1 for a break, minus the token cost of the turn."""
    if tokens < 0 or lam < 0:
        raise AssayError(f"tokens and lam must be >= 0, got tokens={tokens}, lam={lam}")
    return (int(bool(new_correct)) - int(bool(prev_correct))) - lam * tokens


@dataclass(frozen=True)
class Outcome:
    """What the engine knows after a decision besides its reward: whether the answer before it was
    right, whether the answer after it is (for STOP: the same), and the reprompt's tokens (STOP: 0).
    `OutcomeUCBPolicy` learns from these; the other policies need only the reward."""

    prev_correct: bool
    new_correct: bool
    tokens: int = 0

    @classmethod
    def from_update(cls, update: dict[str, Any]) -> Outcome | None:
        """The outcome a logged update holds, or None (traces written before outcomes were logged)."""
        if update.get("prev_correct") is None or update.get("new_correct") is None:
            return None
        return cls(bool(update["prev_correct"]), bool(update["new_correct"]), int(update.get("tokens") or 0))


def make_arms(template_ids: list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """The arms for a template library: its ids in order, then STOP (added once)."""
    ids = [t for t in template_ids if t != STOP]
    if len(set(ids)) != len(ids):
        raise AssayError("duplicate template ids among the policy's arms")
    return (*ids, STOP)


# ----------------------------------------------------------------------------- policies


def _key(context: Context | str) -> str:
    return context.key if isinstance(context, Context) else str(context)


def _finite(reward: float) -> float:
    r = float(reward)
    if not math.isfinite(r):
        raise AssayError(f"reward must be a finite number, got {reward!r}")
    return r


def _success(reward: float) -> float:
    """A reward (about [-1, 1]) as the success probability of a fractional Bernoulli observation,
    clip((r + 1) / 2, 0, 1): what the Beta posteriors of the Thompson policies count."""
    return min(1.0, max(0.0, (_finite(reward) + 1.0) / 2.0))


def _clip(p: float) -> float:
    return min(0.98, max(0.02, p))


def _make_rng(rng: random.Random | int | None) -> random.Random:
    return rng if isinstance(rng, random.Random) else random.Random(rng)


def _rng_to_json(rng: random.Random) -> dict[str, Any]:
    version, internal, gauss_next = rng.getstate()
    return {"version": version, "internal": list(internal), "gauss_next": gauss_next}


def _rng_from_json(state: dict[str, Any]) -> random.Random:
    rng = random.Random()
    rng.setstate((state["version"], tuple(state["internal"]), state["gauss_next"]))
    return rng


class Policy:
    """Common interface: `select(context) -> arm`, `update(context, arm, reward)`, JSON persistence."""

    kind: ClassVar[str] = ""
    learns: ClassVar[bool] = False

    def __init__(self, arms: tuple[str, ...] | list[str]):
        arms = tuple(arms)
        if STOP not in arms:
            arms = (*arms, STOP)
        if len(set(arms)) != len(arms):
            raise AssayError("a policy's arms must be distinct")
        self.arms: tuple[str, ...] = arms
        self.step = 0  # select() calls so far, over all contexts
        self.applied: set[str] = set()  # keys of the episodes whose updates are in this state (apply_episode)

    def select(self, context: Context | str) -> str:
        raise NotImplementedError

    def update(self, context: Context | str, arm: str, reward: float, outcome: Outcome | None = None) -> None:
        """Learn that `arm` in `context` earned `reward` (`outcome`: what else the engine saw, for
        the policies that use it). Baselines do not learn; they only check the arm."""
        self._check_arm(arm)

    def _check_arm(self, arm: str) -> None:
        if arm not in self.arms:
            raise AssayError(f"unknown arm {arm!r}: this policy's arms are {', '.join(self.arms)}")

    # -- persistence
    def _config(self) -> dict[str, Any]:
        return {}

    def _state(self) -> dict[str, Any]:
        return {}

    def _set_state(self, state: dict[str, Any]) -> None:
        pass

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "kind": self.kind,
            "arms": list(self.arms),
            "config": self._config(),
            "step": self.step,
            "state": self._state(),
            "applied": sorted(self.applied),
        }

    @classmethod
    def _build(cls, arms: list[str], config: dict[str, Any]) -> Policy:
        return cls(arms, **config)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Policy:
        """The policy `to_json` described; on the base class, whichever kind the data names."""
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise AssayError(f"not a saved reprompt policy (expected format {FORMAT!r})")
        if data.get("version") != FORMAT_VERSION:
            raise AssayError(f"unsupported policy format version {data.get('version')!r} (expected {FORMAT_VERSION})")
        kind = data.get("kind")
        target = POLICY_KINDS.get(kind) if cls is Policy else cls
        if target is None or target.kind != kind:
            expected = cls.kind or "one of " + ", ".join(POLICY_KINDS)
            raise AssayError(f"saved policy is of kind {kind!r}, expected {expected}")
        try:
            policy = target._build(list(data["arms"]), dict(data["config"]))
            policy.step = int(data["step"])
            policy._set_state(data["state"])
            policy.applied = {str(k) for k in data.get("applied", [])}
        except (KeyError, TypeError, ValueError) as exc:
            raise AssayError(f"saved {kind} policy is malformed: {type(exc).__name__}: {exc}") from None
        return policy

    def save(self, path: str | Path) -> None:
        """Write the policy as JSON, atomically."""
        atomic_write_json(path, self.to_json())

    @classmethod
    def load(cls, path: str | Path) -> Policy:
        """Read a policy written by `save`; on a subclass, the saved kind must match."""
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise AssayError(f"cannot read policy file {path}: {exc.strerror or exc}") from None
        except json.JSONDecodeError as exc:
            raise AssayError(f"policy file {path} is not valid JSON ({exc})") from None
        return cls.from_json(data)


class _Random(Policy):
    """A policy with its own seeded RNG, saved with it."""

    def __init__(self, arms: tuple[str, ...] | list[str], rng: random.Random | int | None = None):
        super().__init__(arms)
        self.rng = _make_rng(rng)

    def _state(self) -> dict[str, Any]:
        return {"rng": _rng_to_json(self.rng)}

    def _set_state(self, state: dict[str, Any]) -> None:
        self.rng = _rng_from_json(state["rng"])


class ThompsonPolicy(_Random):
    """Thompson sampling with a Beta(alpha, beta) posterior per (context, arm).

    A reward r (about [-1, 1]) becomes a fractional Bernoulli observation with success probability
    p = clip((r + 1) / 2, 0, 1): alpha += p, beta += 1 - p. The posterior mean m maps back to an
    expected reward 2m - 1; STOP's reward 0 gives p = 1/2, so its mean stays at 1/2 (reward 0)
    while its variance shrinks.
    """

    kind = "thompson"
    learns = True

    def __init__(
        self,
        arms: tuple[str, ...] | list[str],
        rng: random.Random | int | None = None,
        prior_alpha: float = 1.0,
        prior_beta: float = 1.0,
    ):
        super().__init__(arms, rng)
        if prior_alpha <= 0 or prior_beta <= 0:
            raise AssayError(f"Beta prior must be positive, got alpha={prior_alpha}, beta={prior_beta}")
        self.prior_alpha, self.prior_beta = float(prior_alpha), float(prior_beta)
        # context key -> arm -> [alpha, beta, n]; contexts appear when first updated
        self.table: dict[str, dict[str, list[float]]] = {}

    def params(self, context: Context | str, arm: str) -> tuple[float, float, int]:
        """(alpha, beta, number of updates) of one (context, arm)."""
        self._check_arm(arm)
        row = self.table.get(_key(context), {}).get(arm)
        return (self.prior_alpha, self.prior_beta, 0) if row is None else (row[0], row[1], int(row[2]))

    def expected_reward(self, context: Context | str, arm: str) -> float:
        a, b, _ = self.params(context, arm)
        return 2.0 * a / (a + b) - 1.0

    def best_arm(self, context: Context | str) -> str:
        """The arm with the highest posterior mean (no sampling): for evaluation."""
        return max(self.arms, key=lambda arm: self.expected_reward(context, arm))

    def select(self, context: Context | str) -> str:
        self.step += 1
        best, best_draw = self.arms[0], -1.0
        for arm in self.arms:
            a, b, _ = self.params(context, arm)
            draw = self.rng.betavariate(a, b)
            if draw > best_draw:
                best, best_draw = arm, draw
        return best

    def update(self, context: Context | str, arm: str, reward: float, outcome: Outcome | None = None) -> None:
        self._check_arm(arm)
        p = _success(reward)
        row = self.table.setdefault(_key(context), {}).setdefault(arm, [self.prior_alpha, self.prior_beta, 0])
        row[0] += p
        row[1] += 1.0 - p
        row[2] += 1

    def _config(self) -> dict[str, Any]:
        return {"prior_alpha": self.prior_alpha, "prior_beta": self.prior_beta}

    def _state(self) -> dict[str, Any]:
        return {**super()._state(), "table": self.table}

    def _set_state(self, state: dict[str, Any]) -> None:
        super()._set_state(state)
        self.table = {
            c: {a: [float(v[0]), float(v[1]), int(v[2])] for a, v in row.items()} for c, row in state["table"].items()
        }
        for row in self.table.values():
            for arm in row:
                self._check_arm(arm)


class EpsilonGreedyPolicy(_Random):
    """Epsilon-greedy over running means: explore uniformly with probability eps_t, else the best mean.

    eps_t = max(epsilon_min, epsilon0 * decay ** t), t = select() calls so far (over all contexts).
    An arm never updated in a context has value `initial_value`; ties are broken uniformly at random.
    """

    kind = "epsilon_greedy"
    learns = True

    def __init__(
        self,
        arms: tuple[str, ...] | list[str],
        rng: random.Random | int | None = None,
        epsilon0: float = 0.3,
        decay: float = 0.995,
        epsilon_min: float = 0.02,
        initial_value: float = 0.0,
    ):
        super().__init__(arms, rng)
        if not (0.0 <= epsilon_min <= 1.0 and 0.0 <= epsilon0 <= 1.0 and 0.0 < decay <= 1.0):
            raise AssayError(
                f"need 0 <= epsilon0, epsilon_min <= 1 and 0 < decay <= 1; got {epsilon0}, {epsilon_min}, {decay}"
            )
        self.epsilon0, self.decay, self.epsilon_min = float(epsilon0), float(decay), float(epsilon_min)
        self.initial_value = float(initial_value)
        self.table: dict[str, dict[str, list[float]]] = {}  # context key -> arm -> [mean, n]

    def epsilon(self, step: int | None = None) -> float:
        t = self.step if step is None else step
        return max(self.epsilon_min, self.epsilon0 * self.decay**t)

    def value(self, context: Context | str, arm: str) -> tuple[float, int]:
        """(running mean reward, number of updates) of one (context, arm)."""
        self._check_arm(arm)
        row = self.table.get(_key(context), {}).get(arm)
        return (self.initial_value, 0) if row is None else (row[0], int(row[1]))

    def expected_reward(self, context: Context | str, arm: str) -> float:
        return self.value(context, arm)[0]

    def best_arm(self, context: Context | str) -> str:
        return max(self.arms, key=lambda arm: self.expected_reward(context, arm))

    def select(self, context: Context | str) -> str:
        eps = self.epsilon()
        self.step += 1
        if self.rng.random() < eps:
            return self.rng.choice(self.arms)
        values = [self.expected_reward(context, arm) for arm in self.arms]
        top = max(values)
        best = [arm for arm, v in zip(self.arms, values, strict=True) if v == top]
        return best[0] if len(best) == 1 else self.rng.choice(best)

    def update(self, context: Context | str, arm: str, reward: float, outcome: Outcome | None = None) -> None:
        self._check_arm(arm)
        r = _finite(reward)
        row = self.table.setdefault(_key(context), {}).setdefault(arm, [self.initial_value, 0])
        row[1] += 1
        row[0] += (r - row[0]) / row[1]

    def _config(self) -> dict[str, Any]:
        return {
            "epsilon0": self.epsilon0,
            "decay": self.decay,
            "epsilon_min": self.epsilon_min,
            "initial_value": self.initial_value,
        }

    def _state(self) -> dict[str, Any]:
        return {**super()._state(), "table": self.table}

    def _set_state(self, state: dict[str, Any]) -> None:
        super()._set_state(state)
        self.table = {c: {a: [float(v[0]), int(v[1])] for a, v in row.items()} for c, row in state["table"].items()}
        for row in self.table.values():
            for arm in row:
                self._check_arm(arm)


class NeverRepromptPolicy(Policy):
    """Baseline: always STOP (the initial answer is final)."""

    kind = "never"

    def __init__(self, arms: tuple[str, ...] | list[str] = (STOP,)):
        super().__init__(arms)

    def select(self, context: Context | str) -> str:
        self.step += 1
        return STOP


class FixedPolicy(Policy):
    """Baseline: always the same template; the engine's max-turns limit ends the episode."""

    kind = "fixed"

    def __init__(self, template_id: str | list[str] | tuple[str, ...]):
        # from_json passes the saved arms (template_id, STOP)
        tid = template_id if isinstance(template_id, str) else next(a for a in template_id if a != STOP)
        if tid == STOP:
            raise AssayError("FixedPolicy needs a template id, not 'stop' (use NeverRepromptPolicy)")
        super().__init__((tid, STOP))
        self.template_id = tid

    def select(self, context: Context | str) -> str:
        self.step += 1
        return self.template_id


class RandomPolicy(_Random):
    """Baseline: a uniformly random arm (STOP included) at every decision."""

    kind = "random"

    def select(self, context: Context | str) -> str:
        self.step += 1
        return self.rng.choice(self.arms)


class _Pooled(_Random):
    """A learner that keeps [S, N] statistics at several levels (level -> key -> statistic -> [S, N])
    and drops the arms its data rules out: tried at least `prune_after` times (None: never prune)
    and, over all contexts and at every other level where tried that often, a 95% upper bound below
    another arm's 95% lower bound (`_bounds`; STOP's are fixed). The pruned set is recomputed every
    PRUNE_EVERY updates and saved with the state (with when it was computed), so a resumed policy
    prunes as an uninterrupted one."""

    LEVELS: ClassVar[tuple[str, ...]] = ()

    def __init__(self, arms: tuple[str, ...] | list[str], rng: random.Random | int | None, prune_after: int | None):
        super().__init__(arms, rng)
        if prune_after is not None and prune_after < 1:
            raise AssayError(f"prune_after must be >= 1 or None, got {prune_after}")
        self.prune_after = prune_after
        self.stats: dict[str, dict[str, dict[str, list[float]]]] = {level: {} for level in self.LEVELS}
        self.updates = 0  # update() calls: the pruned set is recomputed only after new ones
        self._pruned: set[str] = set()
        self._pruned_at = -1

    def _sn(self, level: str, key: str, stat: str) -> tuple[float, float]:
        row = self.stats[level].get(key, {}).get(stat)
        return (0.0, 0.0) if row is None else (row[0], row[1])

    def _add(self, level: str, key: str, stat: str, x: float) -> None:
        row = self.stats[level].setdefault(key, {}).setdefault(stat, [0.0, 0.0])
        row[0] += x
        row[1] += 1

    def _bounds(self, level: str, key: str, arm: str) -> tuple[float, float, float]:
        """(tries, lower, upper) of `arm` from one level's data."""
        raise NotImplementedError

    def _prune_levels(self) -> list[tuple[str, str]]:
        """The (level, key)s the pruning rule checks, all contexts ("global", "") first."""
        raise NotImplementedError

    def _stat_arm(self, stat: str) -> str | None:
        """The arm a statistic's name refers to (None: all arms, or none)."""
        return None

    def pruned(self, arm: str) -> bool:
        """Whether the data rules `arm` out (see the class docstring)."""
        return arm in self._pruned_set()

    def live_arms(self) -> list[str]:
        pruned = self._pruned_set()
        return [arm for arm in self.arms if arm not in pruned]

    def _pruned_set(self) -> set[str]:
        if self.prune_after is None:
            return set()
        if self._pruned_at >= 0 and self.updates - self._pruned_at < PRUNE_EVERY:
            return self._pruned
        candidate: dict[str, bool] = {}
        for level, key in self._prune_levels():
            bounds = {arm: self._bounds(level, key, arm) for arm in self.arms}
            for arm in self.arms:
                if arm == STOP or candidate.get(arm) is False:
                    continue
                n, _, upper = bounds[arm]
                if n < self.prune_after:
                    if level == "global":
                        candidate[arm] = False
                    continue
                candidate[arm] = upper < max(b[1] for other, b in bounds.items() if other != arm)
        self._pruned, self._pruned_at = {arm for arm, yes in candidate.items() if yes}, self.updates
        return self._pruned

    def _state(self) -> dict[str, Any]:
        pruned = {"arms": sorted(self._pruned), "at": self._pruned_at}
        return {**super()._state(), "stats": self.stats, "updates": self.updates, "pruned": pruned}

    def _set_state(self, state: dict[str, Any]) -> None:
        super()._set_state(state)
        self.updates = int(state.get("updates", 0))
        pruned = state.get("pruned", {"arms": [], "at": -1})
        self._pruned, self._pruned_at = set(pruned["arms"]), int(pruned["at"])
        self.stats = {level: {} for level in self.LEVELS} | {
            level: {k: {stat: [float(v[0]), float(v[1])] for stat, v in row.items()} for k, row in rows.items()}
            for level, rows in state["stats"].items()
        }
        named = {self._stat_arm(stat) for rows in self.stats.values() for row in rows.values() for stat in row}
        for arm in self._pruned | (named - {None}):
            self._check_arm(arm)


class SharedThompsonPolicy(_Pooled):
    """Thompson sampling whose (context, arm) posteriors share strength across contexts: hierarchical
    Beta priors, context <- failure mode <- global (docs/correct.md, "Sharing strength").

    Per arm, and for all reprompt arms together (ALL), the fractional successes S = sum of p
    (p = (r + 1) / 2 of each reward r, as in `ThompsonPolicy`) and the count N are kept at three
    levels: the context ('mode|confidence|turn'), its failure mode, and all contexts. Shrinking
    a mean toward a prior m with `strength` pseudo-observations, shrink(m, S, N) = (k m + S) / (k + N):

        everywhere = (prior_alpha + S_ALL) / (prior_alpha + prior_beta + N_ALL)     all contexts
        in_mode    = shrink(everywhere, ALL in the failure mode)                   the context effects
        in_context = shrink(in_mode, ALL in the context)
        arm        = shrink(everywhere, the arm in all contexts)                   the arm effect
        m          = clip(shrink(arm + in_mode - everywhere, the arm in the failure mode)
                          + in_context - in_mode)
        posterior  = Beta(strength * m + S_ctx, strength * (1 - m) + N_ctx - S_ctx)

    so a context seen once borrows what its failure mode, every context and every arm taught.

    STOP: its reward is 0 by definition, so by default (`sample_stop=False`) it is not sampled but
    valued at exactly p = 1/2; the reprompt arms' prior mean, prior_alpha / (prior_alpha +
    prior_beta) = 0.45 by default (an expected reward of -0.1: a reprompt costs tokens and can break a
    right answer), starts them a little below stopping.

    Choosing: the template with the highest draw, then reprompt with it only if a fresh draw of its
    value beats STOP's 1/2 (`select`).

    Pruning (`prune_after` updates at least; None: never): an arm whose 95% upper bound on p is
    below another arm's lower bound (STOP's is 1/2) over all contexts, and in every failure mode and
    context where it was tried as often, is no longer chosen: the data rules it out.

    With strength = 0, sample_stop = True and prune_after = None there is no sharing and this is
    `ThompsonPolicy` exactly (the same draws from the same generator).
    """

    kind = "shared"
    learns = True
    LEVELS = ("ctx", "mode", "global")

    def __init__(
        self,
        arms: tuple[str, ...] | list[str],
        rng: random.Random | int | None = None,
        strength: float = 4.0,
        prior_alpha: float = 0.9,
        prior_beta: float = 1.1,
        sample_stop: bool = False,
        prune_after: int | None = 10,
    ):
        super().__init__(arms, rng, prune_after)  # stats: level -> key -> arm (or ALL) -> [S, N]
        if prior_alpha <= 0 or prior_beta <= 0 or strength < 0:
            raise AssayError(
                f"need prior_alpha, prior_beta > 0 and strength >= 0 (got {prior_alpha}, {prior_beta}, {strength})"
            )
        self.strength, self.prior_alpha, self.prior_beta = float(strength), float(prior_alpha), float(prior_beta)
        self.sample_stop = bool(sample_stop)

    def params(self, context: Context | str, arm: str) -> tuple[float, float]:
        """(alpha, beta) of the Beta posterior of one (context, arm)."""
        self._check_arm(arm)
        key = _key(context)
        s, n = self._sn("ctx", key, arm)
        if self.strength == 0:
            return self.prior_alpha + s, self.prior_beta + n - s
        m = self._prior(key, arm)
        return self.strength * m + s, self.strength * (1 - m) + n - s

    def _prior(self, key: str, arm: str) -> float:
        """The prior mean of (context, arm): the arm's effect (its mean over all contexts) plus the
        context's (all arms' mean in this failure mode, then in this context, against all arms'
        mean anywhere), each shrunk toward the level above; the arm's own data in the failure mode
        in between. See docs/correct.md, "Sharing strength"."""
        k, mode = self.strength, key.split("|", 1)[0]

        def shrink(prior: float, level: str, where: str, which: str) -> float:
            s, n = self._sn(level, where, which)
            return (k * prior + s) / (k + n)

        s0, n0 = self._sn("global", "", ALL)
        everywhere = (self.prior_alpha + s0) / (self.prior_alpha + self.prior_beta + n0)
        in_mode = shrink(everywhere, "mode", mode, ALL)
        in_context = shrink(in_mode, "ctx", key, ALL)
        if arm == STOP:  # sampled like an arm only in the no-sharing form
            return shrink(shrink(everywhere, "global", "", arm), "mode", mode, arm)
        arm_effect = shrink(everywhere, "global", "", arm) - everywhere
        m = shrink(_clip(everywhere + arm_effect + in_mode - everywhere), "mode", mode, arm)
        return _clip(m + in_context - in_mode)

    def expected_reward(self, context: Context | str, arm: str) -> float:
        if arm == STOP and not self.sample_stop:
            return STOP_REWARD
        a, b = self.params(context, arm)
        return 2.0 * a / (a + b) - 1.0

    def best_arm(self, context: Context | str) -> str:
        """The arm with the highest posterior mean (no sampling): for evaluation."""
        return max(self.live_arms(), key=lambda arm: self.expected_reward(context, arm))

    def _bounds(self, level: str, key: str, arm: str) -> tuple[float, float, float]:
        """(count, lower, upper) 95% bounds on p of `arm` at one level (STOP: exactly 1/2)."""
        if arm == STOP and not self.sample_stop:
            return math.inf, 0.5, 0.5
        s, n = self._sn(level, key, arm)
        a, b = self.prior_alpha + s, self.prior_beta + n - s
        mean = a / (a + b)
        half = 1.96 * math.sqrt(mean * (1 - mean) / (a + b + 1))
        return n, mean - half, mean + half

    def _prune_levels(self) -> list[tuple[str, str]]:
        return [("global", "")] + [("mode", m) for m in self.stats["mode"]] + [("ctx", c) for c in self.stats["ctx"]]

    def _stat_arm(self, stat: str) -> str | None:
        return None if stat == ALL else stat

    def select(self, context: Context | str) -> str:
        """Sharing (the default): the template with the highest Thompson draw, then reprompt with it
        only if a fresh draw of its value beats STOP's (1/2). One fresh draw, not the winning one: the
        largest of 36 draws would beat stopping almost always, even where every reprompt hurts.
        Without sharing (`sample_stop`): every arm's draw, STOP's included, and the largest wins."""
        self.step += 1
        pruned = self._pruned_set()
        best, best_draw = STOP, -1.0
        for arm in self.arms:
            if arm in pruned or (arm == STOP and not self.sample_stop):
                continue
            draw = self.rng.betavariate(*self.params(context, arm))
            if draw > best_draw:
                best, best_draw = arm, draw
        if self.sample_stop or best == STOP:
            return best
        return best if self.rng.betavariate(*self.params(context, best)) > 0.5 else STOP

    def update(self, context: Context | str, arm: str, reward: float, outcome: Outcome | None = None) -> None:
        self._check_arm(arm)
        p = _success(reward)
        key = _key(context)
        self.updates += 1
        for level, k in (("ctx", key), ("mode", key.split("|", 1)[0]), ("global", "")):
            for which in (arm, ALL) if arm != STOP else (arm,):
                self._add(level, k, which, p)

    def _config(self) -> dict[str, Any]:
        return {
            "strength": self.strength,
            "prior_alpha": self.prior_alpha,
            "prior_beta": self.prior_beta,
            "sample_stop": self.sample_stop,
            "prune_after": self.prune_after,
        }


class OutcomeUCBPolicy(_Pooled):
    """The default learner: a model of what a reprompt does, shared across contexts and arms, and an
    upper confidence bound on its value (docs/correct.md, "The outcome model").

    A reprompt's expected reward in context x with arm a is

        value(x, a) = (1 - q_x) f_xa - q_x b_xa - c_a        (STOP: 0)

    q_x: the chance the current answer is right; f_xa: the chance the arm fixes a wrong answer; b_xa:
    the chance it breaks a right one; c_a: its token cost (lam * tokens, learned from the rewards).
    Each is learned from what the engine saw (`Outcome`): q from every decision, f from reprompts of
    wrong answers, b from reprompts of right ones, which is far less noisy than the reward alone.

    Sharing strength: each is a Beta posterior whose prior mean comes from the level above, with
    `strength` pseudo-observations (shrink(m, S, N) = (k m + S) / (k + N)):
      - q: the prior P_RIGHT of the confidence bin (reprompting a confident answer is risky)
           <- every context of that confidence bin <- the failure mode <- the context;
      - f and b: a base rate <- all arms everywhere <- all arms in the failure mode <- all arms in
           the context (the context effect), plus the arm's effect (its rate everywhere against all
           arms'), then the arm in the failure mode, then the arm in the context.

    Choosing: first every template is tried `min_tries` times (over all contexts, fewest first);
    then the arm with the largest mean + `exploration` * sd of its value, or STOP if none is above 0.
    Arms the data rules out (`prune_after` tries, 95% upper bound below another arm's 95% lower
    bound or 0, everywhere and in every failure mode tried that often) are dropped, rechecked every
    PRUNE_EVERY updates; the pruned set is saved with the state.

    An update without an outcome (a trace logged before outcomes were) is read from its reward: about
    +1 a fix, about -1 a break; a reward near 0 teaches only the token cost.
    """

    kind = "ucb"
    learns = True
    LEVELS = ("ctx", "mode", "conf", "global")
    P_RIGHT: ClassVar[dict[str, float]] = {"<0.4": 0.3, "<0.7": 0.5, ">=0.7": 0.7}
    BASE_RATE = 0.2  # prior mean of f and b before any data

    def __init__(
        self,
        arms: tuple[str, ...] | list[str],
        rng: random.Random | int | None = None,
        strength: float = 4.0,
        exploration: float = 1.0,
        min_tries: int = 3,
        prune_after: int | None = 10,
    ):
        super().__init__(arms, rng, prune_after)
        if strength <= 0 or exploration < 0 or min_tries < 0:
            raise AssayError(
                f"need strength > 0, exploration >= 0 and min_tries >= 0 (got {strength}, {exploration}, {min_tries})"
            )
        self.strength, self.exploration, self.min_tries = float(strength), float(exploration), int(min_tries)
        # stats: level -> key -> statistic -> [S, N]; statistics: "q", "f:ARM", "b:ARM", "f:*", "b:*"
        # (all arms), "c:ARM", "c:*" (cost: S = summed cost)

    # -- the model
    @staticmethod
    def _levels(key: str) -> tuple[str, str]:
        """(failure mode, confidence bin) of a context key ('' where the key has no such part)."""
        parts = key.split("|")
        return parts[0], parts[1] if len(parts) > 2 else ""

    def _shrink(self, prior: float, level: str, key: str, stat: str) -> float:
        s, n = self._sn(level, key, stat)
        return (self.strength * prior + s) / (self.strength + n)

    def _beta(self, prior: float, key: str, stat: str) -> tuple[float, float]:
        s, n = self._sn("ctx", key, stat)
        return self.strength * prior + s, self.strength * (1 - prior) + n - s

    def q(self, context: Context | str) -> tuple[float, float]:
        """(alpha, beta) of P(the current answer is right) in `context`."""
        key = _key(context)
        mode, conf = self._levels(key)
        m = self._shrink(self.P_RIGHT.get(conf, 0.5), "conf", conf, "q")
        return self._beta(self._shrink(m, "mode", mode, "q"), key, "q")

    def rate(self, context: Context | str, kind: str, arm: str) -> tuple[float, float]:
        """(alpha, beta) of the fix ("f") or break ("b") rate of `arm` in `context`."""
        key = _key(context)
        mode, _ = self._levels(key)
        every = self._shrink(self.BASE_RATE, "global", "", f"{kind}:{ALL}")
        in_mode = self._shrink(every, "mode", mode, f"{kind}:{ALL}")
        in_context = self._shrink(in_mode, "ctx", key, f"{kind}:{ALL}")
        arm_effect = self._shrink(every, "global", "", f"{kind}:{arm}") - every
        m = self._shrink(_clip(in_mode + arm_effect), "mode", mode, f"{kind}:{arm}")
        return self._beta(_clip(m + in_context - in_mode), key, f"{kind}:{arm}")

    def cost(self, arm: str) -> float:
        """The arm's mean token cost (lam * tokens), else all arms', else 0."""
        for stat in (f"c:{arm}", f"c:{ALL}"):
            s, n = self._sn("global", "", stat)
            if n:
                return s / n
        return 0.0

    def value(self, context: Context | str, arm: str) -> tuple[float, float]:
        """(mean, sd) of the expected reward of `arm` in `context` (STOP: exactly (0, 0))."""
        self._check_arm(arm)
        if arm == STOP:
            return STOP_REWARD, 0.0
        return self._value(context, arm, _beta_moments(*self.q(context)))

    def _value(self, context: Context | str, arm: str, q: tuple[float, float]) -> tuple[float, float]:
        """`value` of a reprompt arm given the (mean, variance) of q, which is the same for every arm."""
        f = _beta_moments(*self.rate(context, "f", arm))
        b = _beta_moments(*self.rate(context, "b", arm))
        return _value_moments(q, f, b, self.cost(arm))

    def expected_reward(self, context: Context | str, arm: str) -> float:
        return self.value(context, arm)[0]

    def best_arm(self, context: Context | str) -> str:
        """The arm with the highest expected reward (no exploration): for evaluation."""
        return max(self.live_arms(), key=lambda arm: self.expected_reward(context, arm))

    def tries(self, arm: str) -> int:
        """Reprompts with `arm` so far, over all contexts."""
        return int(self._sn("global", "", f"c:{arm}")[1])

    # -- pruning
    def _prune_levels(self) -> list[tuple[str, str]]:
        return [("global", "")] + [("mode", m) for m in sorted(self.stats["mode"])]

    def _stat_arm(self, stat: str) -> str | None:
        arm = stat.split(":", 1)[1] if ":" in stat else ALL
        return None if arm == ALL else arm

    def _bounds(self, level: str, key: str, arm: str) -> tuple[float, float, float]:
        """(tries, lower, upper) 95% bounds of `arm`'s value from one level's own data (flat priors)."""
        if arm == STOP:
            return math.inf, 0.0, 0.0
        n = self._sn(level, key, f"f:{arm}")[1] + self._sn(level, key, f"b:{arm}")[1]
        q, f, b = (
            _beta_moments(*(1.0 + x for x in _sf(self._sn(level, key, stat)))) for stat in ("q", f"f:{arm}", f"b:{arm}")
        )
        mean, sd = _value_moments(q, f, b, self.cost(arm))
        return n, mean - 1.96 * sd, mean + 1.96 * sd

    # -- choosing and learning
    def select(self, context: Context | str) -> str:
        self.step += 1
        live = [arm for arm in self.live_arms() if arm != STOP]
        tries = {arm: self.tries(arm) for arm in live}
        fewest = min(tries.values(), default=self.min_tries)
        if fewest < self.min_tries:
            return self.rng.choice([arm for arm in live if tries[arm] == fewest])
        best, best_bound = STOP, STOP_REWARD
        q = _beta_moments(*self.q(context))
        for arm in live:
            mean, sd = self._value(context, arm, q)
            if mean + self.exploration * sd > best_bound:
                best, best_bound = arm, mean + self.exploration * sd
        return best

    def update(self, context: Context | str, arm: str, reward: float, outcome: Outcome | None = None) -> None:
        self._check_arm(arm)
        r = _finite(reward)
        key = _key(context)
        mode, conf = self._levels(key)
        self.updates += 1
        if outcome is None:  # read what the reward tells: a fix, a break, or neither
            prev = False if r > 0.5 else True if r < -0.5 else None
            new = None if prev is None else not prev
        else:
            prev, new = outcome.prev_correct, outcome.new_correct
        rows: list[tuple[str, float]] = []
        if prev is not None:
            rows.append(("q", float(prev)))
        if arm != STOP:
            if prev is not None:
                kind, hit = ("b", not new) if prev else ("f", bool(new))
                rows += [(f"{kind}:{arm}", float(hit)), (f"{kind}:{ALL}", float(hit))]
            cost = (int(bool(new)) - int(bool(prev))) - r if prev is not None else -r
            rows += [(f"c:{arm}", max(cost, 0.0)), (f"c:{ALL}", max(cost, 0.0))]
        for level, where in (("ctx", key), ("mode", mode), ("conf", conf), ("global", "")):
            for stat, x in rows:
                if level == "conf" and stat != "q" or level != "global" and stat.startswith("c:"):
                    continue
                self._add(level, where, stat, x)

    # -- persistence
    def _config(self) -> dict[str, Any]:
        return {
            "strength": self.strength,
            "exploration": self.exploration,
            "min_tries": self.min_tries,
            "prune_after": self.prune_after,
        }


def _value_moments(
    q: tuple[float, float], f: tuple[float, float], b: tuple[float, float], cost: float
) -> tuple[float, float]:
    """(mean, sd) of (1 - q) f - q b - cost for independent q, f, b given as (mean, variance)."""
    (q, vq), (f, vf), (b, vb) = q, f, b
    mean = (1 - q) * f - q * b - cost
    return mean, math.sqrt(((1 - q) ** 2 + vq) * vf + (q * q + vq) * vb + (f + b) ** 2 * vq)


def _beta_moments(a: float, b: float) -> tuple[float, float]:
    """Mean and variance of Beta(a, b)."""
    n = a + b
    m = a / n
    return m, m * (1 - m) / (n + 1)


def _sf(sn: tuple[float, float]) -> tuple[float, float]:
    """(successes, failures) from (S, N)."""
    return sn[0], sn[1] - sn[0]


POLICY_KINDS: dict[str, type[Policy]] = {
    p.kind: p
    for p in (
        ThompsonPolicy,
        SharedThompsonPolicy,
        OutcomeUCBPolicy,
        EpsilonGreedyPolicy,
        NeverRepromptPolicy,
        FixedPolicy,
        RandomPolicy,
    )
}


def load_policy(path: str | Path) -> Policy:
    """Any saved policy, of whichever kind its file names."""
    return Policy.load(path)


# ----------------------------------------------------------------------------- credit assignment


@dataclass(frozen=True)
class Update:
    """One policy update: which (context, arm) was credited with which reward, and its outcome."""

    context: str
    arm: str
    reward: float
    outcome: Outcome | None = None

    def to_dict(self) -> dict[str, Any]:
        """As a trace logs it: context, arm, reward, then prev_correct, new_correct, tokens."""
        out: dict[str, Any] = {"context": self.context, "arm": self.arm, "reward": self.reward}
        if self.outcome is not None:
            o = self.outcome
            out |= {"prev_correct": o.prev_correct, "new_correct": o.new_correct, "tokens": o.tokens}
        return out


class Credit:
    """Credit each reward to the action that produced the answer it is computed from.

    Per episode, after answer i (i = 0 is the initial answer) and before reprompt i + 1:

        arm = credit.choose(Context.make(mode_pred, confidence, turn=i + 1), prev_correct=correct_i)
        if arm == STOP: break                    # STOP was credited STOP_REWARD (0) already
        answer, tokens = ask(model, template[arm])
        credit.observe(new_correct=check(answer), tokens=tokens)   # updates (that context, arm)

    An episode cut off by the engine's max-turns limit ends after its last `observe`, with no STOP
    update (STOP was not chosen). `choose` while a reprompt awaits its answer, or `observe` with none
    pending, raises: either would shift a reward onto the wrong action.

    apply=False only records the updates in `self.updates` and leaves the policy alone: the engine
    applies an episode's updates with `apply_episode` once its trace is written, so a question that
    fails halfway, or is rerun after a kill, never counts twice.
    """

    def __init__(self, policy: Policy, lam: float = 0.001, apply: bool = True):
        if lam < 0:
            raise AssayError(f"lam must be >= 0, got {lam}")
        self.policy, self.lam, self.apply = policy, float(lam), apply
        self.updates: list[Update] = []
        self._pending: tuple[Context | str, str, bool] | None = None

    @property
    def pending(self) -> bool:
        return self._pending is not None

    def choose(self, context: Context | str, prev_correct: bool) -> str:
        if self._pending is not None:
            raise AssayError("the previous reprompt's answer was not observed: call observe() before choose()")
        arm = self.policy.select(context)
        if arm == STOP:
            self._credit(context, STOP, STOP_REWARD, Outcome(bool(prev_correct), bool(prev_correct), 0))
        else:
            self._pending = (context, arm, bool(prev_correct))
        return arm

    def observe(self, new_correct: bool, tokens: int) -> float:
        """Reward of the pending reprompt from the answer it produced; returns it."""
        if self._pending is None:
            raise AssayError("observe() called with no reprompt pending: call choose() first")
        context, arm, prev = self._pending
        self._pending = None
        r = reward(prev, new_correct, tokens, self.lam)
        self._credit(context, arm, r, Outcome(prev, bool(new_correct), int(tokens)))
        return r

    def _credit(self, context: Context | str, arm: str, r: float, outcome: Outcome) -> None:
        if self.apply:
            self.policy.update(context, arm, r, outcome)
        self.updates.append(Update(_key(context), arm, r, outcome))


def apply_episode(policy: Policy, key: str, updates: list[dict[str, Any]]) -> bool:
    """Apply one finished episode's logged updates ([{"context", "arm", "reward", and optionally
    "prev_correct", "new_correct", "tokens"}], a trace's `updates`) unless the episode `key` was
    applied already; returns whether it was applied."""
    if key in policy.applied:
        return False
    for u in updates:
        policy.update(u["context"], u["arm"], float(u["reward"]), Outcome.from_update(u))
    policy.applied.add(key)
    return True
