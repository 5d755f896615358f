"""The reprompting policy: a contextual bandit over reprompt templates plus a "stop" arm.

- Arms: the template ids plus `STOP` (send no reprompt; the episode ends with the current answer).
- Context: (predicted failure mode, confidence bin, turn bin); see `Context.make`.
- Reward of a reprompt: `reward(prev_correct, new_correct, tokens, lam)` = (new - prev) - lam * tokens,
  credited to the (context, arm) that PRODUCED the new answer. Choosing STOP earns `STOP_REWARD` = 0
  (nothing changes, nothing is spent), so STOP wins exactly where reprompting has negative expected reward.
- Learners: `ThompsonPolicy` (Beta posterior per (context, arm)) and `EpsilonGreedyPolicy` (running mean,
  decaying epsilon). Baselines: `NeverRepromptPolicy`, `FixedPolicy`, `RandomPolicy`.
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

    def update(self, context: Context | str, arm: str, reward: float) -> None:
        """Baselines do not learn; they only check the arm."""
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

    def update(self, context: Context | str, arm: str, reward: float) -> None:
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

    def update(self, context: Context | str, arm: str, reward: float) -> None:
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


class SharedThompsonPolicy(_Random):
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
        super().__init__(arms, rng)
        if prior_alpha <= 0 or prior_beta <= 0 or strength < 0:
            raise AssayError(
                f"need prior_alpha, prior_beta > 0 and strength >= 0 (got {prior_alpha}, {prior_beta}, {strength})"
            )
        if prune_after is not None and prune_after < 1:
            raise AssayError(f"prune_after must be >= 1 or None, got {prune_after}")
        self.strength, self.prior_alpha, self.prior_beta = float(strength), float(prior_alpha), float(prior_beta)
        self.sample_stop, self.prune_after = bool(sample_stop), prune_after
        # level ("ctx", "mode", "global") -> key -> arm -> [S, N]
        self.stats: dict[str, dict[str, dict[str, list[float]]]] = {"ctx": {}, "mode": {}, "global": {}}
        self.updates = 0  # update() calls: the pruned set is recomputed only after new ones
        self._pruned: set[str] = set()
        self._pruned_at = -1

    def _sn(self, level: str, key: str, arm: str) -> tuple[float, float]:
        row = self.stats[level].get(key, {}).get(arm)
        return (0.0, 0.0) if row is None else (row[0], row[1])

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

    def pruned(self, arm: str) -> bool:
        """Whether the data rules `arm` out: tried at least `prune_after` times, and its upper bound
        on p below the best lower bound of another arm (STOP: 1/2) over all contexts, and in every
        failure mode and context where it was tried that often (successive elimination, per level)."""
        return arm in self._pruned_set()

    def _pruned_set(self) -> set[str]:
        """The pruned arms, recomputed every PRUNE_EVERY updates (the last result and when it was
        computed are saved with the state, so a resumed policy prunes as an uninterrupted one)."""
        if self.prune_after is None:
            return set()
        if self._pruned_at >= 0 and self.updates - self._pruned_at < PRUNE_EVERY:
            return self._pruned
        candidate: dict[str, bool] = {}
        levels = [("global", "")] + [("mode", m) for m in self.stats["mode"]] + [("ctx", c) for c in self.stats["ctx"]]
        for level, key in levels:
            bounds = {arm: self._bounds(level, key, arm) for arm in self.arms}
            lowers = sorted((b[1], arm) for arm, b in bounds.items())
            for arm in self.arms:
                if arm == STOP or candidate.get(arm) is False:
                    continue
                n, _, upper = bounds[arm]
                if n < self.prune_after:
                    if level == "global":
                        candidate[arm] = False
                    continue
                best_lower = lowers[-1][0] if lowers[-1][1] != arm else lowers[-2][0]
                candidate[arm] = upper < best_lower
        self._pruned, self._pruned_at = {arm for arm, yes in candidate.items() if yes}, self.updates
        return self._pruned

    def live_arms(self) -> list[str]:
        return [arm for arm in self.arms if not self.pruned(arm)]

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

    def update(self, context: Context | str, arm: str, reward: float) -> None:
        self._check_arm(arm)
        p = _success(reward)
        key = _key(context)
        self.updates += 1
        for level, k in (("ctx", key), ("mode", key.split("|", 1)[0]), ("global", "")):
            for which in (arm, ALL) if arm != STOP else (arm,):
                row = self.stats[level].setdefault(k, {}).setdefault(which, [0.0, 0.0])
                row[0] += p
                row[1] += 1

    def _config(self) -> dict[str, Any]:
        return {
            "strength": self.strength,
            "prior_alpha": self.prior_alpha,
            "prior_beta": self.prior_beta,
            "sample_stop": self.sample_stop,
            "prune_after": self.prune_after,
        }

    def _state(self) -> dict[str, Any]:
        pruned = {"arms": sorted(self._pruned), "at": self._pruned_at}
        return {**super()._state(), "stats": self.stats, "updates": self.updates, "pruned": pruned}

    def _set_state(self, state: dict[str, Any]) -> None:
        super()._set_state(state)
        self.updates = int(state.get("updates", 0))
        pruned = state.get("pruned", {"arms": [], "at": -1})
        self._pruned, self._pruned_at = set(pruned["arms"]), int(pruned["at"])
        self.stats = {
            level: {k: {a: [float(v[0]), float(v[1])] for a, v in row.items()} for k, row in rows.items()}
            for level, rows in state["stats"].items()
        }
        for rows in self.stats.values():
            for row in rows.values():
                for arm in row:
                    if arm != ALL:
                        self._check_arm(arm)


POLICY_KINDS: dict[str, type[Policy]] = {
    p.kind: p
    for p in (
        ThompsonPolicy,
        SharedThompsonPolicy,
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
    """One policy update: which (context, arm) was credited with which reward."""

    context: str
    arm: str
    reward: float


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
            self._credit(context, STOP, STOP_REWARD)
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
        self._credit(context, arm, r)
        return r

    def _credit(self, context: Context | str, arm: str, r: float) -> None:
        if self.apply:
            self.policy.update(context, arm, r)
        self.updates.append(Update(_key(context), arm, r))


def apply_episode(policy: Policy, key: str, updates: list[dict[str, Any]]) -> bool:
    """Apply one finished episode's logged updates ([{"context", "arm", "reward"}], a trace's
    `updates`) unless the episode `key` was applied already; returns whether it was applied."""
    if key in policy.applied:
        return False
    for u in updates:
        policy.update(u["context"], u["arm"], float(u["reward"]))
    policy.applied.add(key)
    return True
