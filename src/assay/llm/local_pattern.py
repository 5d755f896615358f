"""A small regular-expression engine for constrained generation (JSON Schema `pattern`).

`compile_pattern(regex)` turns a pattern into an NFA that can be stepped one character at a time,
which is what a token-by-token decoder needs: after each token it knows the set of live states,
whether the text so far is a complete match, and the shortest way to finish one.

Supported: literals, `.`, escapes (`\\d \\w \\s \\D \\W \\S`, escaped punctuation, `\\n \\t`),
classes `[a-f0-9_]` / `[^...]`, groups `( )` / `(?: )`, alternation `|`, quantifiers
`? * + {n} {n,} {n,m}` (a trailing lazy `?` is accepted and ignored), and `^` / `$` anchors at the
ends. The generated text is always a full match, which also satisfies an unanchored pattern (JSON
Schema patterns are searches). Look-arounds, back-references and `\\b` raise `PatternError`.
`\\d` and `\\w` are ASCII, as in JSON Schema's ECMA-262 dialect.
"""

from __future__ import annotations

import string
from dataclasses import dataclass, field
from functools import lru_cache

from assay.errors import AssayError

# Counted repetition is unrolled into copies of the sub-automaton; past this many states a pattern
# (e.g. `.{0,100000}`) is refused rather than built.
MAX_STATES = 20_000
# Representative characters for sets that are negated (`[^"]`, `.`): the first one a set admits is
# used when the decoder has to finish a match without the model.
_FILLERS = "a0xA_ -.#"


class PatternError(AssayError):
    """A `pattern` uses regex syntax the constrained decoder does not support."""


@dataclass(frozen=True)
class CharSet:
    """A set of characters: `chars`, or everything but `chars` when `negated`."""

    chars: frozenset[str]
    negated: bool = False

    def __contains__(self, char: str) -> bool:
        return (char in self.chars) != self.negated

    def example(self) -> str:
        """One character of the set, preferring plain ones (used to finish a match cheaply)."""
        if not self.negated:
            return min(self.chars, key=lambda c: (c not in string.ascii_letters + string.digits, c))
        return next(c for c in _FILLERS + string.printable if c not in self.chars)


_DIGITS = frozenset(string.digits)
_WORD = frozenset(string.ascii_letters + string.digits + "_")
_SPACE = frozenset(" \t\n\r\f\v")
_CLASS_ESCAPES = {
    "d": CharSet(_DIGITS),
    "D": CharSet(_DIGITS, True),
    "w": CharSet(_WORD),
    "W": CharSet(_WORD, True),
    "s": CharSet(_SPACE),
    "S": CharSet(_SPACE, True),
}
_CHAR_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "f": "\f", "v": "\v"}
_UNSUPPORTED_ESCAPES = set("bBAZzu123456789kpPx")


# --- parsing: regex text -> AST -------------------------------------------------------------------
# AST nodes are tuples: ("set", CharSet) | ("seq", [nodes]) | ("alt", [nodes]) | ("rep", node, lo, hi|None)


class _Parser:
    def __init__(self, text: str):
        self.text, self.pos = text, 0

    def error(self, what: str) -> PatternError:
        return PatternError(f"pattern {self.text!r}: {what} (at position {self.pos}) is not supported")

    def peek(self) -> str | None:
        return self.text[self.pos] if self.pos < len(self.text) else None

    def take(self) -> str:
        char = self.text[self.pos]
        self.pos += 1
        return char

    def parse(self) -> tuple:
        node = self.alternation()
        if self.pos != len(self.text):
            raise self.error(f"unexpected {self.peek()!r}")
        return node

    def alternation(self) -> tuple:
        branches = [self.sequence()]
        while self.peek() == "|":
            self.take()
            branches.append(self.sequence())
        return branches[0] if len(branches) == 1 else ("alt", branches)

    def sequence(self) -> tuple:
        items = []
        while self.peek() is not None and self.peek() not in "|)":
            items.append(self.quantified(self.atom()))
        return ("seq", items)

    def atom(self) -> tuple:
        char = self.take()
        if char == "(":
            if self.text.startswith("?:", self.pos):
                self.pos += 2
            elif self.peek() == "?":
                raise self.error("a look-around or named group")
            node = self.alternation()
            if self.peek() != ")":
                raise self.error("an unclosed group")
            self.take()
            return node
        if char == "[":
            return ("set", self.char_class())
        if char == ".":
            return ("set", CharSet(frozenset("\n"), True))
        if char == "\\":
            return ("set", self.escape(in_class=False))
        if char in "*+?{":
            raise self.error(f"a quantifier {char!r} with nothing to repeat")
        if char in "^$":
            raise self.error(f"an anchor {char!r} inside the pattern")
        return ("set", CharSet(frozenset(char)))

    def escape(self, in_class: bool) -> CharSet:
        if self.peek() is None:
            raise self.error("a trailing backslash")
        char = self.take()
        if char in _CLASS_ESCAPES:
            return _CLASS_ESCAPES[char]
        if char in _CHAR_ESCAPES:
            return CharSet(frozenset(_CHAR_ESCAPES[char]))
        if char in _UNSUPPORTED_ESCAPES or (char.isalnum() and not in_class):
            raise self.error(f"the escape \\{char}")
        return CharSet(frozenset(char))

    def char_class(self) -> CharSet:
        negated = self.peek() == "^"
        if negated:
            self.take()
        chars: set[str] = set()
        first = True
        while True:
            if self.peek() is None:
                raise self.error("an unclosed character class")
            char = self.take()
            if char == "]" and not first:
                break
            first = False
            if char == "\\":
                escaped = self.escape(in_class=True)
                if escaped.negated:
                    raise self.error("a negated escape inside a class")
                if len(escaped.chars) > 1:
                    chars |= escaped.chars
                    continue
                (char,) = escaped.chars
            if self.peek() == "-" and self.pos + 1 < len(self.text) and self.text[self.pos + 1] != "]":
                self.take()
                end = self.take()
                if end == "\\":
                    (end,) = self.escape(in_class=True).chars
                if ord(end) < ord(char):
                    raise self.error(f"a reversed range {char}-{end}")
                chars |= {chr(c) for c in range(ord(char), ord(end) + 1)}
            else:
                chars.add(char)
        return CharSet(frozenset(chars), negated)

    def quantified(self, node: tuple) -> tuple:
        char = self.peek()
        if char is None or char not in "*+?{":
            return node
        self.take()
        if char == "*":
            lo, hi = 0, None
        elif char == "+":
            lo, hi = 1, None
        elif char == "?":
            lo, hi = 0, 1
        else:
            close = self.text.find("}", self.pos)
            body = self.text[self.pos : close] if close >= 0 else ""
            parts = body.split(",")
            if (
                close < 0
                or len(parts) > 2
                or not parts[0].isdigit()
                or (len(parts) == 2 and not parts[1].isdigit() and parts[1])
            ):
                raise self.error("a malformed {n,m} quantifier")
            self.pos = close + 1
            lo = int(parts[0])
            hi = lo if len(parts) == 1 else (int(parts[1]) if parts[1] else None)
            if hi is not None and hi < lo:
                raise self.error(f"a quantifier {{{lo},{hi}}} with max < min")
        if self.peek() == "?":  # lazy: matching semantics for a full match are the same
            self.take()
        if self.peek() is not None and self.peek() in "*+{":
            raise self.error("a possessive or doubled quantifier")
        return ("rep", node, lo, hi)


# --- NFA -------------------------------------------------------------------------------------------


@dataclass
class Pattern:
    """A compiled pattern: an NFA over characters (`start` and `accept` are state ids).

    A decoder state is a frozenset of NFA states closed under epsilon moves; `step` advances it by
    one character and returns an empty set when the character cannot continue any match.
    """

    source: str
    edges: list[list[tuple[CharSet, int]]] = field(default_factory=list)
    epsilon: list[list[int]] = field(default_factory=list)
    accept: int = -1
    start: frozenset[int] = frozenset()
    distance: list[float] = field(default_factory=list)  # fewest characters from each state to `accept`

    def new_state(self) -> int:
        if len(self.edges) >= MAX_STATES:
            raise PatternError(f"pattern {self.source!r} unrolls to more than {MAX_STATES} states")
        self.edges.append([])
        self.epsilon.append([])
        return len(self.edges) - 1

    def closure(self, states) -> frozenset[int]:
        seen, stack = set(states), list(states)
        while stack:
            for nxt in self.epsilon[stack.pop()]:
                if nxt not in seen:
                    seen.add(nxt)
                    stack.append(nxt)
        return frozenset(seen)

    def step(self, states: frozenset[int], char: str) -> frozenset[int]:
        return self.closure({dst for s in states for cs, dst in self.edges[s] if char in cs})

    def advance(self, states: frozenset[int], text: str) -> frozenset[int]:
        for char in text:
            states = self.step(states, char)
            if not states:
                break
        return states

    def is_match(self, states: frozenset[int]) -> bool:
        return self.accept in states

    def fullmatch(self, text: str) -> bool:
        return self.is_match(self.advance(self.start, text))

    def remaining(self, states: frozenset[int]) -> float:
        """Fewest characters that complete a match from `states` (inf when none can)."""
        return min((self.distance[s] for s in states), default=float("inf"))

    def shortest_completion(self, states: frozenset[int]) -> str:
        """The characters of one shortest completion from `states` ('' when already a match)."""
        out = []
        while not self.is_match(states):
            best = self.remaining(states)
            if best == float("inf"):
                raise PatternError(f"pattern {self.source!r} cannot be completed")
            char = next(
                cs.example()
                for s in states
                for cs, dst in self.edges[s]
                if self.distance[s] == best and self.distance[dst] == best - 1
            )
            out.append(char)
            states = self.step(states, char)
        return "".join(out)

    def completion(self, states: frozenset[int], min_chars: int = 0) -> str:
        """Characters that finish a match from `states`, at least `min_chars` of them where the
        pattern allows (padding with any character that keeps a match reachable, then the shortest
        way to finish)."""
        out = []
        for _ in range(min_chars):
            char = next((cs.example() for s in states for cs, _ in self.edges[s]), None)
            if char is None:  # no longer match exists
                break
            out.append(char)
            states = self.step(states, char)
        return "".join(out) + self.shortest_completion(states)

    def charsets(self) -> list[CharSet]:
        """The distinct character sets on the edges: two characters in exactly the same sets behave
        the same from every state (used to group tokens by their characters' classes)."""
        return list(dict.fromkeys(cs for edges in self.edges for cs, _ in edges))


def _build(pattern: Pattern, node: tuple) -> tuple[int, int]:
    """Thompson construction: returns (entry, exit) states of the fragment for `node`."""
    kind = node[0]
    if kind == "set":
        a, b = pattern.new_state(), pattern.new_state()
        pattern.edges[a].append((node[1], b))
        return a, b
    if kind == "seq":
        a = pattern.new_state()
        cur = a
        for item in node[1]:
            x, y = _build(pattern, item)
            pattern.epsilon[cur].append(x)
            cur = y
        return a, cur
    if kind == "alt":
        a, b = pattern.new_state(), pattern.new_state()
        for branch in node[1]:
            x, y = _build(pattern, branch)
            pattern.epsilon[a].append(x)
            pattern.epsilon[y].append(b)
        return a, b
    _, sub, lo, hi = node
    a = pattern.new_state()
    cur = a
    for _ in range(lo):
        x, y = _build(pattern, sub)
        pattern.epsilon[cur].append(x)
        cur = y
    end = pattern.new_state()
    if hi is None:  # a loop: sub* after the mandatory copies
        x, y = _build(pattern, sub)
        pattern.epsilon[cur] += [x, end]
        pattern.epsilon[y] += [x, end]
    else:
        for _ in range(hi - lo):
            x, y = _build(pattern, sub)
            pattern.epsilon[cur] += [x, end]
            cur = y
        pattern.epsilon[cur].append(end)
    return a, end


def _distances(pattern: Pattern) -> list[float]:
    """Fewest characters from each state to `accept` (0-1 BFS on the reversed graph)."""
    reverse: list[list[tuple[int, int]]] = [[] for _ in pattern.edges]
    for src, edges in enumerate(pattern.edges):
        for _, dst in edges:
            reverse[dst].append((src, 1))
        for dst in pattern.epsilon[src]:
            reverse[dst].append((src, 0))
    dist = [float("inf")] * len(pattern.edges)
    dist[pattern.accept] = 0
    queue = [pattern.accept]
    while queue:  # few states: a plain relaxation to a fixed point is enough
        nxt = []
        for dst in queue:
            for src, w in reverse[dst]:
                if dist[dst] + w < dist[src]:
                    dist[src] = dist[dst] + w
                    nxt.append(src)
        queue = nxt
    return dist


@lru_cache(maxsize=256)
def compile_pattern(regex: str) -> Pattern:
    """Compile `regex` (JSON Schema `pattern` syntax, the subset in the module docstring)."""
    body = regex
    if body.startswith("^"):
        body = body[1:]
    if body.endswith("$") and not body.endswith("\\$"):
        body = body[:-1]
    pattern = Pattern(regex)
    entry, exit_ = _build(pattern, _Parser(body).parse())
    pattern.accept = exit_
    pattern.start = pattern.closure({entry})
    pattern.distance = _distances(pattern)
    if pattern.remaining(pattern.start) == float("inf"):
        raise PatternError(f"pattern {regex!r} matches nothing")
    return pattern
